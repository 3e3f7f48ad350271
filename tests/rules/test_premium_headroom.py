"""Premium headroom: batch may borrow idle premium GPUs only while the reserve stays free."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from extender.policy import Policy, load_policy_text, pod_intent
from extender.rules import premium_headroom
from extender.rules.base import Reject
from extender.state import ClusterCache, NodeFeatures
from extender.wire import Node, Pod
from tests.builders import example_policy, make_cache, make_node, make_pod

# The example keeps 25% of premium GPUs free for interactive pods (hard).


def load(doc: dict[str, Any]) -> Policy:
    return load_policy_text(yaml.safe_dump(doc))


def busy(node: str, gpus: int, workload: str = "batch") -> Pod:
    return make_pod(f"busy-{node}", gpus, workload=workload, node=node, phase="Running")


def node_of(cache: ClusterCache, name: str) -> NodeFeatures:
    found = cache.node(name)
    assert found is not None
    return found


def check(cache: ClusterCache, node: str, workload: str, gpus: int = 1) -> Reject | None:
    pod = pod_intent(make_pod(gpus=gpus, workload=workload), cache.policy)
    return premium_headroom.check(pod, node_of(cache, node), cache, cache.policy)


def scene(used: int, policy: Policy | None = None, extra: tuple[Node, ...] = ()) -> ClusterCache:
    pods = [busy("h1", used)] if used else []
    return make_cache(policy or example_policy(), [make_node("h1", "H100", 8), *extra], pods)


def test_batch_may_use_an_idle_premium_node() -> None:
    assert check(scene(0), "h1", "batch") is None
    assert check(scene(0), "h1", "batch", gpus=6) is None


def test_batch_may_take_gpus_down_to_the_reserve_exactly() -> None:
    assert check(scene(5), "h1", "batch") is None  # 2 of 8 left = 25%


def test_batch_is_refused_when_it_would_eat_into_the_reserve() -> None:
    reject = check(scene(6), "h1", "batch")

    assert reject is not None
    assert (reject.rule, reject.resolvable) == ("premium_headroom", True)
    assert reject.reason.startswith("premium headroom reserved: ")
    assert reject.reason.endswith("premium GPUs kept free for interactive")
    assert check(scene(0), "h1", "batch", gpus=7) is not None


def test_the_workloads_the_reserve_is_for_are_exempt() -> None:
    assert check(scene(7), "h1", "interactive") is None


def test_other_classes_have_no_reserve() -> None:
    cache = scene(8, extra=(make_node("l1", "L40S", 8),))

    assert check(cache, "l1", "batch") is None


def test_the_reserve_counts_the_whole_class_not_one_node() -> None:
    # 16 premium GPUs, reserve 4: 11 busy on h1 leaves 5 free, so h2 can take one more.
    pods = [busy("h1", 8), make_pod("more", 3, workload="batch", node="h2", phase="Running")]
    cache = make_cache(example_policy(), [make_node("h1", "H100"), make_node("h2", "H100")], pods)

    assert check(cache, "h2", "batch") is None
    assert check(cache, "h2", "batch", gpus=2) is not None


@pytest.fixture
def soft(example_doc: dict[str, Any]) -> Policy:
    example_doc["headroom"][0]["mode"] = "soft"
    return load(example_doc)


def test_a_soft_reserve_never_filters_but_scores_zero_when_broken(soft: Policy) -> None:
    for used, expected in [(0, 1.0), (5, 1.0), (6, 0.0)]:
        cache = scene(used, soft)
        pod = pod_intent(make_pod(workload="batch"), soft)

        assert check(cache, "h1", "batch") is None
        assert premium_headroom.score(pod, node_of(cache, "h1"), cache, soft) == expected


def test_the_score_is_full_for_exempt_pods_and_other_classes(soft: Policy) -> None:
    cache = scene(8, soft, extra=(make_node("l1", "L40S"),))
    interactive = pod_intent(make_pod(workload="interactive"), soft)
    batch = pod_intent(make_pod(workload="batch"), soft)

    assert premium_headroom.score(interactive, node_of(cache, "h1"), cache, soft) == 1.0
    assert premium_headroom.score(batch, node_of(cache, "l1"), cache, soft) == 1.0


def test_the_score_applies_only_to_pods_some_reserve_is_not_for() -> None:
    policy = example_policy()

    assert premium_headroom.applies(pod_intent(make_pod(workload="batch"), policy), [], policy)
    assert not premium_headroom.applies(
        pod_intent(make_pod(workload="interactive"), policy), [], policy
    )


def test_a_policy_without_headroom_never_applies(example_doc: dict[str, Any]) -> None:
    example_doc["headroom"] = []
    policy = load(example_doc)
    cache = scene(8, policy)

    assert check(cache, "h1", "batch") is None
    assert not premium_headroom.applies(pod_intent(make_pod(), policy), [], policy)
