"""The paper's protocol: inflation to 130%, seeded runs, dropped pods, the allocation curve."""

from __future__ import annotations

import numpy as np
import pytest

from extender.simulate import (
    Cluster,
    Placement,
    PodRequest,
    Replay,
    allocation_curve,
    inflate,
    pod_requests,
    replay,
    run_seed,
    unallocated_at,
)
from extender.simulate.cluster import BoolArray
from extender.simulate.protocol import select_host
from extender.simulate.reference import REFERENCE_POLICIES
from extender.simulate.trace import NodeTable
from tests.simulate.builders import cpu_only, make_cluster, pod_table, share, whole

TRACE = pod_table([share(500), whole(1), whole(2), cpu_only(), share(250)])
CAPACITY = 20_000  # 20 GPUs


def test_inflation_shuffles_the_trace_then_appends_draws_up_to_130_percent() -> None:
    order = inflate(TRACE, CAPACITY, np.random.default_rng(7))
    demand = TRACE.total_gpu_milli[order]
    target = 1.3 * CAPACITY
    assert sorted(order[: len(TRACE)].tolist()) == list(range(len(TRACE)))
    assert len(order) > len(TRACE)
    # Each draw was admitted on its per-GPU share (the reference's test), so a multi-GPU
    # pod may end a little past the target, never by more than its extra GPUs.
    last = order[-1]
    assert demand[:-1].sum() + TRACE.gpu_milli[last] <= target
    assert target - 1000 < demand.sum() <= target + 1000 * (TRACE.num_gpu[last] - 1)


def test_inflation_is_seeded() -> None:
    first = inflate(TRACE, CAPACITY, np.random.default_rng(42))
    again = inflate(TRACE, CAPACITY, np.random.default_rng(42))
    other = inflate(TRACE, CAPACITY, np.random.default_rng(43))
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()


def test_a_trace_above_the_target_is_thinned() -> None:
    big = pod_table([whole(1)] * 40)
    order = inflate(big, CAPACITY, np.random.default_rng(1))
    assert len(set(order.tolist())) == len(order) == 26  # 26 GPUs = 130% of 20


def test_a_trace_without_gpu_pods_cannot_be_inflated() -> None:
    with pytest.raises(ValueError, match="no pod asks for a GPU"):
        inflate(pod_table([cpu_only()]), CAPACITY, np.random.default_rng(1))


class FirstFeasible:
    """Takes the first feasible node and its first fitting GPUs."""

    name = "first"

    def decide(
        self, cluster: Cluster, pod: PodRequest, feasible: BoolArray, rng: np.random.Generator
    ) -> Placement | None:
        node = int(np.flatnonzero(feasible)[0])
        fitting = np.flatnonzero(cluster.gpu_free[node] >= pod.gpu_milli)
        return Placement(node, tuple(int(g) for g in fitting[: pod.num_gpu]))


def test_pods_that_fit_nowhere_fail_and_are_dropped() -> None:
    cluster = make_cluster(("T4", 2))
    pods = [whole(2), share(100), whole(1), cpu_only()]
    result = replay(cluster, pods, np.arange(4), FirstFeasible(), np.random.default_rng(0))
    assert result.placed_node.tolist() == [0, -1, -1, 0]
    assert result.failed == 2
    assert result.arrived_gpu_milli.tolist() == [2000, 2100, 3100, 3100]
    assert result.allocated_gpu_milli.tolist() == [2000, 2000, 2000, 2000]


def test_a_scheduler_may_decline_a_pod() -> None:
    class Never:
        name = "never"

        def decide(
            self, cluster: Cluster, pod: PodRequest, feasible: BoolArray, rng: np.random.Generator
        ) -> Placement | None:
            return None

    result = replay(
        make_cluster(("T4", 2)), [share(10)], np.arange(1), Never(), np.random.default_rng()
    )
    assert result.failed == 1


def test_the_curve_averages_arrivals_that_round_to_each_percent() -> None:
    result = Replay(
        order=np.arange(4),
        placed_node=np.zeros(4, dtype=np.int64),
        arrived_gpu_milli=np.array([0, 1_040, 1_060, 2_000]),
        allocated_gpu_milli=np.array([0, 1_000, 1_020, 1_500]),
        gpu_capacity_milli=100_000,
    )
    curve = allocation_curve(result, max_percent=4)
    assert curve[0] == 0.0
    assert curve[1] == pytest.approx(1.01)  # 1.04% and 1.06% both round to 1
    assert curve[2] == pytest.approx(1.5)
    assert curve[3] == pytest.approx(1.5)  # no arrival at 3%: those at 2..4
    assert np.isnan(curve[4])  # none at 3..5 either
    assert unallocated_at(curve, 2) == pytest.approx(98.5)


def test_the_curve_counts_one_point_per_arrival_rounded_half_to_even() -> None:
    result = Replay(
        order=np.arange(2),
        placed_node=np.zeros(2, dtype=np.int64),
        arrived_gpu_milli=np.array([2_500, 3_500]),
        allocated_gpu_milli=np.array([2_000, 3_000]),
        gpu_capacity_milli=100_000,
    )
    curve = allocation_curve(result, max_percent=4)
    assert curve[2] == pytest.approx(2.0)  # 2.5 rounds to 2
    assert curve[4] == pytest.approx(3.0)  # 3.5 rounds to 4


def test_ties_go_to_the_lowest_rank_or_at_random() -> None:
    nodes = np.array([3, 5, 8])
    scores = np.array([7, 9, 9])
    rank = np.array([0, 0, 0, 0, 0, 4, 0, 0, 2])
    assert select_host(nodes, scores, np.random.default_rng(0), rank) == 8
    picks = {select_host(nodes, scores, np.random.default_rng(s)) for s in range(40)}
    assert picks == {5, 8}


def test_a_run_is_deterministic_and_its_curve_monotone() -> None:
    nodes = NodeTable(
        tuple(f"n{i}" for i in range(6)),
        np.full(6, 32_000),
        np.full(6, 131_072),
        np.array([2, 2, 4, 4, 8, 1]),
        ("T4", "T4", "V100M16", "V100M32", "G2", "P100"),
    )
    # Small requests, so that arrivals pass through every whole percent.
    trace = pod_table([share(100), share(250, cpu=2_000), share(300), cpu_only(4_000)])
    factory = REFERENCE_POLICIES["BestFit"]
    first, curve = run_seed(nodes, trace, factory, 42)
    again, _ = run_seed(nodes, trace, factory, 42, requests=pod_requests(trace))
    assert (first.unallocated_pct, first.failed) == (again.unallocated_pct, again.failed)
    assert first.arrivals > len(trace)
    known = curve[~np.isnan(curve)]
    assert (np.diff(known) >= -1e-9).all()
    assert len(curve) == 131
