"""Score: pack fills the fullest node first; spread prefers the emptiest."""

from __future__ import annotations

import pytest

from extender.policy import pod_intent
from extender.rules import packing
from extender.state import ClusterCache
from tests.builders import example_policy, make_cache, make_node, make_pod


@pytest.fixture
def cluster() -> ClusterCache:
    """Three standard nodes with 8 GPUs: 'full' has 6 busy, 'half' 4, 'empty' none."""
    nodes = [make_node(n, "L40S", 8) for n in ("full", "half", "empty")]
    pods = [
        make_pod("f", 6, workload="batch", node="full", phase="Running"),
        make_pod("h", 4, workload="batch", node="half", phase="Running"),
    ]
    return make_cache(example_policy(), nodes, pods)


def scores(cache: ClusterCache, workload: str, gpus: int = 1) -> dict[str, float]:
    pod = pod_intent(make_pod(gpus=gpus, workload=workload), cache.policy)
    return {n.name: packing.score(pod, n, cache, cache.policy) for n in cache.nodes()}


def test_pack_prefers_the_fuller_node(cluster: ClusterCache) -> None:
    got = scores(cluster, "batch")  # the example packs batch

    assert got["full"] > got["half"] > got["empty"]
    assert got["full"] == pytest.approx(7 / 8)
    assert got["empty"] == pytest.approx(1 / 8)


def test_spread_prefers_the_emptier_node(cluster: ClusterCache) -> None:
    got = scores(cluster, "interactive")  # the example spreads interactive

    assert got["empty"] > got["half"] > got["full"]
    assert got["empty"] == pytest.approx(7 / 8)


def test_the_pod_itself_counts_toward_the_allocation(cluster: ClusterCache) -> None:
    assert scores(cluster, "batch", gpus=2)["full"] == 1.0
    assert scores(cluster, "batch", gpus=4)["full"] == 1.0  # clamped, not above 1


def test_a_node_without_gpus_scores_zero() -> None:
    cache = make_cache(example_policy(), [make_node("cpu", None, gpus=0)])

    assert scores(cache, "batch") == {"cpu": 0.0}
    assert scores(cache, "interactive") == {"cpu": 0.0}


@pytest.mark.parametrize(
    ("strategy", "used_after", "capacity", "expected"),
    [
        ("pack", 0, 8000, 0.0),
        ("pack", 8000, 8000, 1.0),
        ("pack", 9000, 8000, 1.0),
        ("spread", 2000, 8000, 0.75),
        ("spread", 9000, 8000, 0.0),
    ],
    ids=["pack-empty", "pack-full", "pack-over", "spread-quarter", "spread-over"],
)
def test_strategies_are_picked_by_name(
    strategy: str, used_after: int, capacity: int, expected: float
) -> None:
    assert packing.STRATEGIES[strategy](used_after, capacity) == expected
