"""FGD's fragmentation measure and typical pods, checked against hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from extender.simulate.fragmentation import FragmentationModel, typical_pods
from tests.simulate.builders import cpu_only, make_cluster, occupy, pod_table, share, whole

# Half the tasks share 500 of a GPU, a quarter take one whole GPU, a quarter no GPU.
MIX = pod_table(
    [share(500, cpu=4_000)] * 2 + [whole(1, cpu=8_000)] + [cpu_only(cpu=2_000)],
)


def test_typical_pods_are_the_most_frequent_shapes_covering_95_percent() -> None:
    trace = pod_table([share(500)] * 10 + [whole(1)] * 9 + [share(100)])
    typical = typical_pods(trace)
    assert typical.gpu_milli.tolist() == [500, 1000]
    assert typical.weight.tolist() == pytest.approx([10 / 19, 9 / 19])


def test_equally_frequent_shapes_are_ordered_largest_first() -> None:
    typical = typical_pods(pod_table([share(100), share(300), whole(2)]), coverage=1.0)
    assert typical.cpu_milli.tolist() == [8_000, 4_000, 4_000]
    assert typical.gpu_milli.tolist() == [1000, 300, 100]


@pytest.mark.parametrize(
    ("free", "cpu_free", "expected"),
    [
        # share-500 fits, only the 300 GPU is lost to it (x .5); whole-1 fits, the 300 is
        # lost (x .25); the CPU-only task cannot use any GPU (1300 x .25).
        ([300, 1000], 10_000, 0.5 * 300 + 0.25 * 300 + 0.25 * 1300),
        # Not enough CPU for the whole-GPU task: all 1300 are lost to it.
        ([300, 1000], 5_000, 0.5 * 300 + 0.25 * 1300 + 0.25 * 1300),
        # No GPU has 500 free: every task sees everything as fragment.
        ([300, 400], 10_000, 700.0),
        ([1000, 1000], 10_000, 0.25 * 2000),
    ],
    ids=["mixed", "cpu-short", "all-small", "empty"],
)
def test_fragment_is_the_expected_gpu_share_typical_pods_cannot_use(
    free: list[int], cpu_free: int, expected: float
) -> None:
    cluster = make_cluster(("T4", 2), cpu=16_000)
    occupy(cluster, 0, free, cpu_free=cpu_free)
    model = FragmentationModel(typical_pods(MIX), cluster)
    assert model.fragment(cluster, np.array([0])).tolist() == pytest.approx([expected])


def test_a_node_whose_model_a_task_refuses_is_all_fragment_to_it() -> None:
    trace = pod_table([share(500, spec=("V100M32",))])
    cluster = make_cluster(("T4", 2), ("V100M32", 2))
    model = FragmentationModel(typical_pods(trace), cluster)
    assert model.fragment(cluster, np.array([0, 1])).tolist() == [2000.0, 0.0]


def test_fragment_after_placing_matches_the_fragment_of_the_placed_state() -> None:
    cluster = make_cluster(("G2", 8), ("G2", 8), cpu=16_000)
    occupy(cluster, 0, [300, 1000, 650, 0, 1000, 500, 1000, 120], cpu_free=12_000)
    occupy(cluster, 1, [1000] * 8, cpu_free=6_000)
    model = FragmentationModel(typical_pods(MIX), cluster)
    nodes = np.array([0, 1])
    for pod in (share(200, cpu=1_000), whole(2, cpu=1_000), cpu_only(cpu=1_000)):
        before, after = model.fragment_after(
            cluster, nodes, pod.cpu_milli, pod.gpu_milli, pod.num_gpu
        )
        assert before.tolist() == pytest.approx(model.fragment(cluster, nodes).tolist())
        for node in nodes.tolist():
            choices = (
                [(g,) for g in range(8) if cluster.gpu_free[node, g] >= pod.gpu_milli]
                if pod.is_sharing
                else [tuple(np.flatnonzero(cluster.gpu_free[node] == 1000)[: pod.num_gpu])]
            )
            for gpus in choices:
                trial = make_cluster(("G2", 8), ("G2", 8), cpu=16_000)
                occupy(trial, node, cluster.gpu_free[node].tolist(), int(cluster.cpu_free[node]))
                trial.place(node, tuple(int(g) for g in gpus), pod)
                column = gpus[0] if pod.is_sharing else 0
                assert after[node, column] == pytest.approx(
                    model.fragment(trial, np.array([node]))[0]
                )


@pytest.mark.parametrize(("closes", "expected_after"), [(False, 500.0), (True, 1000.0)])
def test_a_gpu_shut_to_the_typical_pods_is_all_fragment_to_them(
    closes: bool, expected_after: float
) -> None:
    # GPU 0 has 500 free but is shared by a class kept apart from the typical pods (halves):
    # all 500 are fragment to them. A half placed on GPU 1 leaves 500 there, which they can
    # still use unless the placed pod's class is kept apart from theirs (`closes`).
    cluster = make_cluster(("T4", 2))
    occupy(cluster, 0, [500, 1000])
    model = FragmentationModel(typical_pods(pod_table([share(500)])), cluster)
    shut = np.array([[True, False]])

    before, after = model.fragment_after(cluster, np.array([0]), 4_000, 500, 1, shut, closes)

    assert before.tolist() == [500.0]
    assert after[0, 1] == expected_after
