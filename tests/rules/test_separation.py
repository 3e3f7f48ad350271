"""Separation: interactive pods keep away from batch pods per node, rack or zone, and back."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from extender.policy import Policy, load_policy_text, pod_intent
from extender.rules import separation
from extender.rules.base import Reject
from extender.state import ClusterCache, NodeFeatures
from extender.wire import Pod
from tests.builders import example_policy, make_cache, make_node, make_pod

ZONE = "topology.kubernetes.io/zone"


def load(doc: dict[str, Any]) -> Policy:
    return load_policy_text(yaml.safe_dump(doc))


def running(workload: str, node: str, gpus: int = 1, name: str = "p") -> Pod:
    return make_pod(
        f"{name}-{workload}-{node}", gpus, workload=workload, node=node, phase="Running"
    )


def node_of(cache: ClusterCache, name: str) -> NodeFeatures:
    found = cache.node(name)
    assert found is not None
    return found


def score(cache: ClusterCache, node: str, workload: str) -> float:
    pod = pod_intent(make_pod(workload=workload), cache.policy)
    return separation.score(pod, node_of(cache, node), cache, cache.policy)


def check(cache: ClusterCache, node: str, workload: str) -> Reject | None:
    pod = pod_intent(make_pod(workload=workload), cache.policy)
    return separation.check(pod, node_of(cache, node), cache, cache.policy)


@pytest.mark.parametrize(
    ("batch_gpus", "expected"),
    [(0, 1.0), (1, 0.4375), (2, 0.375), (4, 0.25), (8, 0.0)],
    ids=["none", "one-of-eight", "quarter", "half", "full"],
)
def test_any_avoided_pod_halves_the_soft_score_and_more_gpus_lower_it_further(
    batch_gpus: int, expected: float
) -> None:
    pods = [running("batch", "n1", batch_gpus)] if batch_gpus else []
    cache = make_cache(example_policy(), [make_node("n1", gpus=8)], pods)

    assert score(cache, "n1", "interactive") == pytest.approx(expected)
    assert check(cache, "n1", "interactive") is None  # soft never filters


def test_pods_of_the_same_workload_do_not_lower_the_score() -> None:
    cache = make_cache(
        example_policy(), [make_node("n1", gpus=8)], [running("interactive", "n1", 6)]
    )

    assert score(cache, "n1", "interactive") == 1.0


def test_batch_pods_avoid_nodes_hosting_interactive_pods() -> None:
    cache = make_cache(
        example_policy(),
        [make_node("n1", gpus=8), make_node("n2", gpus=8)],
        [running("interactive", "n1", 2)],
    )

    assert score(cache, "n1", "batch") == pytest.approx(0.5 * 0.75)
    assert score(cache, "n2", "batch") == 1.0


@pytest.fixture
def hard_interactive(example_doc: dict[str, Any]) -> Policy:
    example_doc["workloadClasses"]["interactive"]["separation"]["mode"] = "hard"
    return load(example_doc)


def test_hard_separation_refuses_a_node_running_avoided_pods(hard_interactive: Policy) -> None:
    cache = make_cache(
        hard_interactive,
        [make_node("n1"), make_node("n2")],
        [running("batch", "n1")],
    )

    assert check(cache, "n1", "interactive") == Reject(
        "separation",
        "batch pods run here; interactive pods keep hard separation from them per "
        "kubernetes.io/hostname",
        True,
    )
    assert check(cache, "n2", "interactive") is None


def test_hard_separation_is_symmetric(hard_interactive: Policy) -> None:
    # batch itself is only soft, but interactive pods refuse to share with it.
    cache = make_cache(
        hard_interactive,
        [make_node("n1"), make_node("n2")],
        [running("interactive", "n1")],
    )

    assert check(cache, "n1", "batch") == Reject(
        "separation",
        "interactive pods run here and keep hard separation from batch per kubernetes.io/hostname",
        True,
    )
    assert check(cache, "n2", "batch") is None


def test_off_mode_neither_filters_nor_scores(example_doc: dict[str, Any]) -> None:
    example_doc["workloadClasses"]["interactive"]["separation"]["mode"] = "off"
    example_doc["workloadClasses"]["batch"]["separation"]["mode"] = "off"
    policy = load(example_doc)
    cache = make_cache(policy, [make_node("n1")], [running("batch", "n1")])
    pod = pod_intent(make_pod(workload="interactive"), policy)

    assert not separation.applies(pod, list(cache.nodes()), policy)
    assert check(cache, "n1", "interactive") is None


def test_a_workload_with_nothing_to_avoid_has_no_separation_score(
    example_doc: dict[str, Any],
) -> None:
    example_doc["workloadClasses"]["batch"]["separation"] = {"avoid": []}
    policy = load(example_doc)

    pod = pod_intent(make_pod(workload="batch"), policy)

    assert not separation.applies(pod, [], policy)
    assert separation.applies(pod_intent(make_pod(workload="interactive"), policy), [], policy)


@pytest.fixture
def zoned(example_doc: dict[str, Any]) -> ClusterCache:
    """Interactive pods separate per zone; n1 and n2 share zone a, n3 is alone in zone b."""
    example_doc["workloadClasses"]["interactive"]["separation"]["topologyKey"] = ZONE
    policy = load(example_doc)
    nodes = [
        make_node("n1", gpus=8, labels={ZONE: "a"}),
        make_node("n2", gpus=8, labels={ZONE: "a"}),
        make_node("n3", gpus=8, labels={ZONE: "b"}),
    ]
    return make_cache(policy, nodes, [running("batch", "n2", 4)])


def test_a_pod_avoids_a_node_whose_zone_mate_runs_batch(zoned: ClusterCache) -> None:
    assert score(zoned, "n1", "interactive") == pytest.approx(0.5 * (1 - 4 / 16))
    assert score(zoned, "n2", "interactive") == pytest.approx(0.5 * (1 - 4 / 16))
    assert score(zoned, "n3", "interactive") == 1.0
    # batch still separates per node, so the zone does not matter to it
    assert score(zoned, "n1", "batch") == 1.0


def test_hard_zone_separation_refuses_the_whole_zone(example_doc: dict[str, Any]) -> None:
    sep = example_doc["workloadClasses"]["interactive"]["separation"]
    sep["topologyKey"], sep["mode"] = ZONE, "hard"
    policy = load(example_doc)
    nodes = [
        make_node("n1", labels={ZONE: "a"}),
        make_node("n2", labels={ZONE: "a"}),
        make_node("n3", labels={ZONE: "b"}),
    ]
    cache = make_cache(policy, nodes, [running("batch", "n2")])

    reject = check(cache, "n1", "interactive")

    assert reject is not None
    assert reject.reason.endswith(f"per {ZONE}")
    assert check(cache, "n3", "interactive") is None
    assert check(cache, "n3", "batch") is None
    assert check(cache, "n1", "batch") is None  # zone a has no interactive pods yet


def test_a_node_without_the_zone_label_is_its_own_domain(example_doc: dict[str, Any]) -> None:
    example_doc["workloadClasses"]["interactive"]["separation"]["topologyKey"] = ZONE
    policy = load(example_doc)
    nodes = [make_node("bare-1"), make_node("bare-2")]
    cache = make_cache(policy, nodes, [running("batch", "bare-2", 8)])

    assert score(cache, "bare-1", "interactive") == 1.0
    assert score(cache, "bare-2", "interactive") == 0.0
