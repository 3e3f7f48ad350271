"""Cluster accounting: GPUs one by one, CPU and memory, GPU models, and refused placements."""

from __future__ import annotations

import numpy as np
import pytest

from extender.simulate import Cluster, PodRequest
from extender.simulate.cluster import SHARING_KIND
from tests.simulate.builders import cpu_only, make_cluster, share, whole


def test_an_empty_cluster_has_every_gpu_free() -> None:
    cluster = make_cluster(("T4", 2), ("G2", 8), ("V100M16", 1))
    assert cluster.gpu_free.shape == (3, 8)
    assert cluster.gpu_free[0].tolist() == [1000, 1000, 0, 0, 0, 0, 0, 0]
    assert cluster.gpu_free_total.tolist() == [2000, 8000, 1000]
    assert cluster.gpu_capacity_milli == 11_000
    assert cluster.allocated_gpu_milli == 0


def test_a_sharing_pod_takes_its_share_of_one_gpu() -> None:
    cluster = make_cluster(("T4", 2))
    cluster.place(0, (1,), share(300))
    cluster.place(0, (1,), share(500))
    assert cluster.gpu_free[0, :2].tolist() == [1000, 200]
    assert cluster.max_gpu_free[0] == 1000
    assert cluster.whole_free_gpus[0] == 1
    assert cluster.allocated_gpu_milli == 800
    assert cluster.pod_kinds[0, SHARING_KIND] == 2


def test_a_multi_gpu_pod_takes_whole_gpus() -> None:
    cluster = make_cluster(("G2", 8))
    cluster.place(0, (2, 5, 6), whole(3))
    assert cluster.gpu_free[0].tolist() == [1000, 1000, 0, 1000, 1000, 0, 0, 1000]
    assert cluster.whole_free_gpus[0] == 5
    assert cluster.allocated_gpu_milli == 3000
    assert cluster.pod_kinds[0, 3] == 1


def test_cpu_and_memory_are_booked_and_checked() -> None:
    cluster = make_cluster(("T4", 2), ("T4", 2), cpu=10_000, memory=1_000)
    cluster.place(0, (), cpu_only(cpu=6_000, memory=100))
    assert cluster.cpu_free.tolist() == [4_000, 10_000]
    assert cluster.feasible(cpu_only(cpu=5_000, memory=100)).tolist() == [False, True]
    assert cluster.feasible(cpu_only(cpu=1_000, memory=950)).tolist() == [False, True]
    assert cluster.allocated_gpu_milli == 0


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (share(600), [True, False, True]),
        (share(300), [True, True, True]),
        (whole(1), [True, False, True]),
        (whole(2), [False, False, True]),
        (whole(8), [False, False, False]),
        (share(100, spec=("V100M16", "V100M32")), [False, False, True]),
        (share(100, spec=("T4",)), [True, True, False]),
        (cpu_only(), [True, True, True]),
    ],
    ids=[
        "share-600",
        "share-300",
        "one-gpu",
        "two-gpus",
        "too-many",
        "spec-v100",
        "spec-t4",
        "cpu",
    ],
)
def test_feasibility_counts_gpus_one_by_one(pod: PodRequest, expected: list[bool]) -> None:
    # node 0: T4 x2 with one GPU half used; node 1: T4 x1 at 400 free; node 2: V100M32 x4.
    cluster = make_cluster(("T4", 2), ("T4", 1), ("V100M32", 4))
    cluster.place(0, (0,), share(500))
    cluster.place(1, (0,), share(600))
    assert cluster.feasible(pod).tolist() == expected


@pytest.mark.parametrize(
    ("gpus", "pod", "reason"),
    [
        ((2,), share(100), "GPU 2 .* cannot give"),
        ((0,), share(700), "GPU 0 .* cannot give"),
        ((1, 1), share(100), "distinct"),
        ((1,), whole(2), "does not fit"),
        ((), share(1), "distinct"),
    ],
    ids=["no-such-gpu", "no-room-on-gpu", "same-gpu-twice", "too-few-gpus", "no-gpu-given"],
)
def test_an_impossible_placement_is_refused_and_changes_nothing(
    gpus: tuple[int, ...], pod: PodRequest, reason: str
) -> None:
    cluster = make_cluster(("T4", 2))
    cluster.place(0, (0,), share(400))
    before = (cluster.gpu_free.copy(), cluster.cpu_free.copy(), cluster.version.copy())
    with pytest.raises(ValueError, match=reason):
        cluster.place(0, gpus, pod)
    assert (cluster.gpu_free == before[0]).all()
    assert (cluster.cpu_free == before[1]).all()
    assert (cluster.version == before[2]).all()


def test_a_pod_that_does_not_fit_the_node_is_refused() -> None:
    cluster = make_cluster(("T4", 2), cpu=1_000)
    with pytest.raises(ValueError, match="does not fit"):
        cluster.place(0, (0,), share(100, cpu=2_000))
    with pytest.raises(ValueError, match="does not fit"):
        cluster.place(0, (0,), share(100, spec=("A10",)))


def test_placing_bumps_only_that_nodes_version_and_reset_empties() -> None:
    cluster = make_cluster(("T4", 2), ("T4", 2))
    cluster.place(1, (0,), whole(1))
    assert cluster.version.tolist() == [0, 1]
    cluster.reset()
    assert cluster.gpu_free_total.tolist() == [2000, 2000]
    assert cluster.allocated_gpu_milli == 0


def test_mismatched_node_columns_are_rejected() -> None:
    with pytest.raises(ValueError, match="models"):
        Cluster(["a", "b"], [1, 1], [1, 1], [1, 1], ["T4"])


def test_the_one_node_check_agrees_with_the_vector_one() -> None:
    rng = np.random.default_rng(3)
    cluster = make_cluster(("T4", 2), ("G2", 8), ("V100M32", 4), ("P100", 1), cpu=20_000)
    pods = [share(300), share(900, cpu=6_000), whole(1), whole(3), cpu_only(5_000)]
    pods += [share(200, spec=("T4", "P100"))]
    for _ in range(40):
        pod = pods[rng.integers(len(pods))]
        feasible = cluster.feasible(pod)
        assert [cluster.fits_on(n, pod) for n in range(len(cluster))] == feasible.tolist()
        if feasible.any():
            node = int(rng.choice(np.flatnonzero(feasible)))
            free = np.flatnonzero(cluster.gpu_free[node] >= max(pod.gpu_milli, 1))
            cluster.place(node, tuple(int(g) for g in free[: pod.num_gpu]), pod)
