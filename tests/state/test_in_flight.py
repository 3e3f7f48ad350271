"""Pods between our filter and their bind are held against reserved classes (pitfall P7)."""

from __future__ import annotations

from extender.policy import ClassName, pod_intent
from extender.rules import premium_headroom
from extender.state import ClusterCache
from extender.state.provisional import StageTtl
from tests.builders import example_policy, make_cache, make_node, make_pod

PREMIUM = ClassName("premium")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def premium_cache(clock: Clock | None = None) -> ClusterCache:
    nodes = [make_node("h100", "H100", 8)]
    if clock is None:
        return make_cache(example_policy(), nodes)
    return make_cache(example_policy(), nodes, clock=clock)


def test_a_hold_counts_in_flight_until_the_pod_is_assumed_on_a_node() -> None:
    cache = premium_cache()
    pod = make_pod("train", 2, workload="batch", uid="u1")
    cache.note_pending(pod)
    cache.hold_in_flight("u1", frozenset({PREMIUM}), 2000)
    assert cache.class_usage(PREMIUM).in_flight == 2000
    cache.assume("u1", "h100")
    usage = cache.class_usage(PREMIUM)
    assert (usage.in_flight, usage.free) == (0, 6000)  # now charged to the node instead


def test_a_hold_ends_when_the_watch_shows_the_pod_bound_or_deleted() -> None:
    cache = premium_cache()
    cache.hold_in_flight("u1", frozenset({PREMIUM}), 2000)
    cache.upsert_pod(make_pod("train", 2, workload="batch", uid="u1", node="h100"))
    assert cache.class_usage(PREMIUM).in_flight == 0
    cache.hold_in_flight("u2", frozenset({PREMIUM}), 1000)
    cache.delete_pod("u2")
    assert cache.class_usage(PREMIUM).in_flight == 0


def test_a_hold_expires_when_the_pod_went_elsewhere_or_was_dropped() -> None:
    clock = Clock()
    cache = premium_cache(clock)
    cache.hold_in_flight("u1", frozenset({PREMIUM}), 2000)
    clock.now = StageTtl().held - 1
    assert cache.expire().held == 0
    clock.now = StageTtl().held + 1
    assert cache.expire().held == 1
    assert cache.class_usage(PREMIUM).in_flight == 0


def test_a_hold_on_a_pod_only_a_filter_told_of_ends_with_the_pod() -> None:
    clock = Clock()
    cache = premium_cache(clock)
    cache.note_pending(make_pod("ghost", 2, workload="batch", uid="g"))
    cache.hold_in_flight("g", frozenset({PREMIUM}), 2000)
    clock.now = StageTtl().held

    assert cache.expire().held == 1

    assert cache.pod("g") is None
    assert cache.class_usage(PREMIUM).in_flight == 0
    assert cache.in_flight_of("g", PREMIUM) == 0


def test_an_assumed_pod_filtered_again_is_not_held_twice() -> None:
    cache = premium_cache()
    cache.upsert_pod(make_pod("train", 2, workload="batch", uid="u1"))
    cache.assume("u1", "h100")
    cache.hold_in_flight("u1", frozenset({PREMIUM}), 2000)
    usage = cache.class_usage(PREMIUM)
    assert (usage.in_flight, usage.free) == (0, 6000)  # charged to its node, once
    assert cache.is_assumed("u1")


def test_a_new_policy_drops_the_holds() -> None:
    # Class names may change with it, and the usage the holds were counted in is rebuilt.
    clock = Clock()
    cache = premium_cache(clock)
    cache.upsert_pod(make_pod("train", 2, workload="batch", uid="u1"))
    cache.note_pending(make_pod("new", 2, workload="batch", uid="u2"))  # the watch is behind
    for uid in ("u1", "u2"):
        cache.hold_in_flight(uid, frozenset({PREMIUM}), 2000)

    cache.set_policy(example_policy())

    assert cache.class_usage(PREMIUM).in_flight == 0
    assert [cache.in_flight_of(uid, PREMIUM) for uid in ("u1", "u2")] == [0, 0]
    cache.hold_in_flight("u1", frozenset({PREMIUM}), 2000)
    clock.now = StageTtl().held
    cache.expire()  # ends u1's new hold; u2 is only noted
    assert cache.class_usage(PREMIUM).in_flight == 0


def test_filtering_a_pod_again_replaces_its_hold() -> None:
    cache = premium_cache()
    cache.hold_in_flight("u1", frozenset({PREMIUM}), 2000)
    cache.hold_in_flight("u1", frozenset({PREMIUM}), 2000)
    assert cache.class_usage(PREMIUM).in_flight == 2000


def test_other_pods_in_flight_use_up_the_headroom_but_a_pod_s_own_hold_does_not() -> None:
    # 8 premium GPUs, 2 reserved for interactive: 6 for batch.
    cache = premium_cache()
    policy = cache.policy
    rule = policy.headroom[PREMIUM]
    first = pod_intent(make_pod("a", 4, workload="batch", uid="a"), policy)
    second = pod_intent(make_pod("b", 4, workload="batch", uid="b"), policy)
    assert premium_headroom.leaves_headroom(first, rule, cache)
    cache.hold_in_flight("a", frozenset({PREMIUM}), 4000)
    assert premium_headroom.leaves_headroom(first, rule, cache)  # its own hold
    assert not premium_headroom.leaves_headroom(second, rule, cache)  # 4 + 4 > 6
