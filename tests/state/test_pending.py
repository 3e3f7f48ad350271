"""What the bind verb finds of a pod our filter and prioritize saw, and what bounds it."""

from __future__ import annotations

import msgspec

from extender.state.pending import PendingPlacements
from tests.builders import make_pod
from tests.state.test_cache import Clock


def test_bind_takes_the_pod_and_its_scores_once() -> None:
    pending = PendingPlacements()
    pod = make_pod("chat", uid="u1")
    pending.saw(pod)
    pending.scored(pod, ["a", "b", "c", "d"], [3, 10, 10, 0], "digest")

    placement = pending.take("u1")

    assert placement is not None
    assert placement.pod is pod
    scored = placement.scored
    assert scored is not None
    assert (scored.of("a"), scored.of("b"), scored.of("d")) == (3, 10, 0)
    assert (scored.best, scored.count(10), scored.count(0), scored.candidates) == (10, 2, 1, 4)
    assert pending.take("u1") is None
    assert len(pending) == 0


def test_pods_without_a_uid_or_already_bound_are_not_kept() -> None:
    pending = PendingPlacements()
    pod = make_pod("no-uid")
    pending.saw(
        msgspec.structs.replace(pod, metadata=msgspec.structs.replace(pod.metadata, uid=""))
    )
    pending.saw(make_pod("bound", uid="u2", node="gpu-a"))
    assert len(pending) == 0


def test_a_placement_older_than_the_ttl_is_not_taken_and_expires() -> None:
    clock = Clock()
    pending = PendingPlacements(ttl=60, clock=clock)
    pending.saw(make_pod("old", uid="old"))
    clock.now += 30
    pending.saw(make_pod("new", uid="new"))
    clock.now += 31
    assert pending.take("old") is None
    assert pending.expire() == 0  # "old" went with the take; "new" is 31 s old
    clock.now += 30
    assert pending.expire() == 1
    assert len(pending) == 0


def test_seeing_a_pod_again_renews_it() -> None:
    clock = Clock()
    pending = PendingPlacements(ttl=60, clock=clock)
    pending.saw(make_pod("chat", uid="u1"))
    clock.now += 50
    pending.saw(make_pod("chat", uid="u1"))
    clock.now += 50
    assert pending.take("u1") is not None


def test_the_least_recently_seen_pods_go_first_beyond_the_pod_bound() -> None:
    pending = PendingPlacements(max_pods=2)
    for uid in ("a", "b"):
        pending.saw(make_pod(uid, uid=uid))
    pending.saw(make_pod("a", uid="a"))  # "a" seen again: "b" is now the oldest
    pending.saw(make_pod("c", uid="c"))
    assert len(pending) == 2
    assert pending.take("b") is None
    assert pending.take("a") is not None
    assert pending.take("c") is not None


def test_beyond_the_scored_node_bound_the_oldest_pods_give_up_their_scores() -> None:
    pending = PendingPlacements(max_scored_nodes=5)
    first, second = make_pod("first", uid="u1"), make_pod("second", uid="u2")
    pending.scored(first, ["a", "b", "c"], [1, 2, 3], "d")
    pending.scored(second, ["a", "b", "c"], [1, 2, 3], "d")

    kept_first, kept_second = pending.take("u1"), pending.take("u2")

    assert kept_first is not None
    assert kept_first.scored is None
    assert kept_second is not None
    assert kept_second.scored is not None
    # What was taken no longer counts: two new pods' scores fill the bound, and both keep
    # theirs.
    third, fourth = make_pod("third", uid="u3"), make_pod("fourth", uid="u4")
    pending.scored(third, ["a", "b", "c"], [1] * 3, "d")
    pending.scored(fourth, ["a", "b"], [1] * 2, "d")
    for uid in ("u3", "u4"):
        placement = pending.take(uid)
        assert placement is not None
        assert placement.scored is not None


def test_only_nodes_scored_above_0_are_kept_by_name() -> None:
    """A prioritize call may name thousands of nodes that score 0 (every node the cache
    does not know does): they are counted, not kept, and take none of the bound."""
    pending = PendingPlacements(max_scored_nodes=3)
    unknown = [f"invented-{i}" for i in range(1000)]
    first, second = make_pod("first", uid="u1"), make_pod("second", uid="u2")
    pending.scored(first, [*unknown, "a"], [0] * 1000 + [7], "d")
    pending.scored(second, ["a", "b", *unknown], [7, 7] + [0] * 1000, "d")

    for uid in ("u1", "u2"):
        placement = pending.take(uid)
        assert placement is not None
        scored = placement.scored
        assert scored is not None  # both within the bound of 3 kept names
        assert "invented-0" not in scored.names
        assert (scored.of("invented-0"), scored.of("a"), scored.best) == (0, 7, 7)
        assert scored.candidates == 1001 + (uid == "u2")
    # All scored 0: every candidate ties at the best.
    third = make_pod("third", uid="u3")
    pending.scored(third, unknown, [0] * 1000, "d")
    placement = pending.take("u3")
    assert placement is not None
    assert placement.scored is not None
    assert (placement.scored.best, placement.scored.count(0)) == (0, 1000)
