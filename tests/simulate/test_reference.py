"""Each reference policy on tiny clusters where the right choice is known."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from extender.simulate import Cluster, PodRequest
from extender.simulate.fragmentation import FragmentationModel, typical_pods
from extender.simulate.protocol import NodeScorer
from extender.simulate.reference import (
    REFERENCE_POLICIES,
    BestFitPolicy,
    DotProductPolicy,
    FgdPolicy,
    GpuClusteringPolicy,
    GpuPackingPolicy,
    RandomPolicy,
)
from extender.simulate.trace import IntArray
from tests.simulate.builders import cpu_only, make_cluster, occupy, pod_table, share, whole


def decide(
    policy: NodeScorer, cluster: Cluster, pod: PodRequest, seed: int = 0
) -> tuple[int, tuple[int, ...]]:
    choice = policy.decide(cluster, pod, cluster.feasible(pod), np.random.default_rng(seed))
    assert choice is not None
    return choice.node, choice.gpus


def in_order(size: int) -> IntArray:
    """Ties go to the lowest node index."""
    return np.arange(size)


def test_best_fit_picks_the_node_and_gpu_left_tightest() -> None:
    cluster = make_cluster(("G2", 8), ("T4", 2), ("T4", 2))
    occupy(cluster, 2, [1000, 500])
    assert decide(BestFitPolicy(in_order(3)), cluster, share(300)) == (2, (1,))
    assert decide(BestFitPolicy(in_order(3)), cluster, whole(1)) == (2, (0,))


def test_best_fit_counts_cpu_too() -> None:
    cluster = make_cluster(("T4", 2), ("T4", 2))
    occupy(cluster, 1, [1000, 1000], cpu_free=10_000)
    assert decide(BestFitPolicy(in_order(2)), cluster, cpu_only(cpu=4_000))[0] == 1


def test_dot_product_prefers_the_node_least_aligned_with_the_request() -> None:
    cluster = make_cluster(("G2", 8), ("T4", 2))
    assert decide(DotProductPolicy(in_order(2)), cluster, whole(1)) == (1, (0,))


def test_gpu_packing_fills_shared_gpus_then_used_nodes_then_empty_ones() -> None:
    cluster = make_cluster(("T4", 2), ("T4", 2), ("T4", 2))
    occupy(cluster, 1, [0, 1000])  # used, no shared GPU
    occupy(cluster, 2, [1000, 600])  # a shared GPU with 600 free
    rank = np.array([0, 1, 2])  # the empty node would win every tie
    assert decide(GpuPackingPolicy(rank), cluster, share(300)) == (2, (1,))
    assert decide(GpuPackingPolicy(rank), cluster, share(700))[0] in (1, 2)
    assert decide(GpuPackingPolicy(rank), cluster, whole(1))[0] in (1, 2)


def test_gpu_packing_and_clustering_send_cpu_pods_to_the_first_node_in_tie_order() -> None:
    cluster = make_cluster(("T4", 2), ("T4", 2), ("T4", 2))
    rank = np.array([2, 0, 1])
    assert decide(GpuPackingPolicy(rank), cluster, cpu_only())[0] == 1
    assert decide(GpuClusteringPolicy(rank), cluster, cpu_only())[0] == 1


def test_gpu_clustering_keeps_pods_with_their_own_kind() -> None:
    cluster = make_cluster(("G2", 8), ("G2", 8), ("G2", 8))
    cluster.place(1, (0,), share(100))
    cluster.place(2, (0,), whole(1))
    rank = np.array([0, 1, 2])
    assert decide(GpuClusteringPolicy(rank), cluster, share(300))[0] == 1
    assert decide(GpuClusteringPolicy(rank), cluster, whole(1))[0] == 2
    assert decide(GpuClusteringPolicy(rank), cluster, whole(2))[0] == 0  # the idle node


def test_random_spreads_over_feasible_nodes_and_fitting_gpus_only() -> None:
    cluster = make_cluster(("T4", 2), ("T4", 2), ("T4", 2), ("T4", 2))
    occupy(cluster, 3, [100, 100])  # no room for the pod
    occupy(cluster, 0, [1000, 100])
    picks = Counter(decide(RandomPolicy(in_order(4)), cluster, share(500), s) for s in range(300))
    nodes = Counter(node for node, _ in picks.elements())
    assert set(nodes) == {0, 1, 2}
    assert min(nodes.values()) > 60
    assert {gpus for node, gpus in picks if node == 0} == {(0,)}
    assert {gpus for node, gpus in picks if node == 1} == {(0,), (1,)}


def fgd(trace_pods: list[PodRequest], cluster: Cluster) -> FgdPolicy:
    return FgdPolicy(
        FragmentationModel(typical_pods(pod_table(trace_pods)), cluster), in_order(len(cluster))
    )


def test_fgd_avoids_leaving_an_unusable_gpu_fragment() -> None:
    # The workload is tasks of 600. Putting 200 on the 700-free GPU would leave 500 that
    # no such task can use; BestFit does that, FGD takes the whole free GPU instead.
    cluster = make_cluster(("P100", 1), ("P100", 1))
    occupy(cluster, 0, [700])
    assert decide(BestFitPolicy(in_order(2)), cluster, share(200))[0] == 0
    assert decide(fgd([share(600)], cluster), cluster, share(200)) == (1, (0,))


def test_fgd_picks_the_gpu_inside_the_node_the_same_way() -> None:
    cluster = make_cluster(("T4", 2))
    occupy(cluster, 0, [700, 1000])
    assert decide(fgd([share(600)], cluster), cluster, share(200)) == (0, (1,))
    # For 200-tasks neither choice leaves a fragment: the lower GPU index wins the tie.
    assert decide(fgd([share(200)], cluster), cluster, share(200)) == (0, (0,))


def test_fgd_fills_a_fragment_that_would_be_lost_anyway() -> None:
    # A 300-free GPU is useless to 600-tasks; a 300 pod there removes a fragment.
    cluster = make_cluster(("P100", 1), ("P100", 1))
    occupy(cluster, 0, [300])
    assert decide(fgd([share(600)], cluster), cluster, share(300)) == (0, (0,))


def test_fgd_cached_scores_equal_fresh_ones() -> None:
    rng = np.random.default_rng(5)
    cluster = make_cluster(*[("G2", 8), ("T4", 2), ("V100M32", 4)] * 4, cpu=48_000)
    shapes = [share(250), share(600, cpu=2_000), whole(1), whole(2), cpu_only(6_000)]
    cached = fgd(shapes, cluster)
    for _ in range(60):
        pod = shapes[rng.integers(len(shapes))]
        feasible = cluster.feasible(pod)
        if not feasible.any():
            continue
        nodes = np.flatnonzero(feasible)
        fresh = fgd(shapes, cluster)
        assert (
            cached.score(cluster, pod, nodes, rng).tolist()
            == fresh.score(cluster, pod, nodes, rng).tolist()
        )
        node, gpus = decide(cached, cluster, pod)
        cluster.place(node, gpus, pod)


@pytest.mark.parametrize("name", list(REFERENCE_POLICIES))
def test_every_policy_places_only_where_the_pod_fits(name: str) -> None:
    trace = pod_table([share(300), whole(1), whole(4), cpu_only(), share(900, spec=("T4",))])
    cluster = make_cluster(("G2", 8), ("T4", 2), ("V100M16", 4), cpu=40_000)
    rng = np.random.default_rng(1)
    policy = REFERENCE_POLICIES[name](cluster, trace, rng)
    assert policy.name == name
    pods = [share(300), whole(1), whole(4), cpu_only(), share(900, spec=("T4",))] * 6
    for pod in pods:
        feasible = cluster.feasible(pod)
        if feasible.any():
            choice = policy.decide(cluster, pod, feasible, rng)
            assert choice is not None
            cluster.place(choice.node, choice.gpus, pod)  # raises if it does not fit
    assert cluster.allocated_gpu_milli > 0
