"""The FGD paper's reference policies, re-implemented on the vectorised cluster.

Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation
Gradient Descent", USENIX ATC'23, section 6 (baselines) and section 5 (FGD). Scores, their
integer rounding, and the choice of GPUs inside the chosen node follow our reading of the
reference simulator (hkust-adsl/kubernetes-scheduler-simulator), where each policy was the
only score plugin and every feasible node was scored:

- `pkg/simulator/plugin/random_score.go`: one feasible node at random.
- `pkg/simulator/plugin/best_fit_score.go`: least CPU and GPU left after placing, each
  normalised by the largest node spec (128 CPUs, 8 GPUs), weighted 1/2 each.
- `pkg/simulator/plugin/dot_product_score.go` with `pkg/utils/utils.go`
  (`GenerateSchedulingMatchGroups`, "merge" dimensions, "max" normalisation): the smaller
  the dot product of the node's free (CPU, GPU) and the pod's request, the better.
- `pkg/simulator/plugin/gpu_packing_score.go`: first shared GPUs (least free first), then
  free GPUs on used nodes, then empty nodes.
- `pkg/simulator/plugin/gpu_clustering_score.go`: nodes already running pods of the same
  GPU kind (share / k whole GPUs) first, then by GPU use.
- `pkg/simulator/plugin/fgd_score.go` with `pkg/utils/frag.go`: least growth of expected
  fragmentation, squashed by a sigmoid to 0..100 (see `fragmentation.py`).
- `pkg/simulator/plugin/open_gpu_share.go` and `scripts/generate_config_and_run.py`: the
  GPUs inside the node. Random picks a fitting GPU at random, FGD the one its score
  prefers, the others the tightest fitting GPU ("best"); whole-GPU pods always take the
  lowest-numbered free GPUs.

Scores are integers as in the reference (plugin scores are int64), so ties are frequent;
the reference's scheduler fork gives them to the first node of a seeded random node order
(`protocol.select_host`). Pods without GPUs get the same score on every node under
GpuPacking and GpuClustering, so they go to the first feasible node in that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from extender.simulate.cluster import Cluster, PodRequest
from extender.simulate.fragmentation import FragmentationModel, typical_pods
from extender.simulate.protocol import NodeScorer, Scheduler, SchedulerFactory
from extender.simulate.trace import WHOLE_GPU, IntArray, PodTable

MAX_SPEC_CPU_MILLI = 128_000
"""Largest node CPU in the reference's normalisation (`MaxSpecCpu`)."""
MAX_SPEC_GPU_MILLI = 8_000
"""Largest node GPU capacity in the reference's normalisation (`MaxSpecGpu`)."""
MAX_SCORE = 100


def first_whole_gpus(cluster: Cluster, node: int, count: int) -> tuple[int, ...]:
    """The `count` lowest-numbered fully free GPUs of `node`."""
    free = np.flatnonzero(cluster.gpu_free[node] == WHOLE_GPU)
    return tuple(int(g) for g in free[:count])


def tightest_gpu(cluster: Cluster, node: int, milli: int) -> int:
    """The GPU with the least free share that still fits `milli` (lowest index on ties)."""
    free = cluster.gpu_free[node]
    return int(np.argmin(np.where(free >= milli, free, WHOLE_GPU + 1)))


def best_fit_gpus(cluster: Cluster, pod: PodRequest, node: int) -> tuple[int, ...]:
    """The reference's default GPU choice ("best")."""
    if pod.num_gpu == 0:
        return ()
    if pod.is_sharing:
        return (tightest_gpu(cluster, node, pod.gpu_milli),)
    return first_whole_gpus(cluster, node, pod.num_gpu)


class RandomPolicy(NodeScorer):
    """A feasible node uniformly at random; a random fitting GPU for sharing pods."""

    name = "Random"

    def score(
        self, cluster: Cluster, pod: PodRequest, nodes: IntArray, rng: np.random.Generator
    ) -> IntArray:
        # One node drawn at random gets the top score, the rest the lowest (random_score.go).
        scores = np.zeros(len(nodes), dtype=np.int64)
        scores[rng.integers(len(nodes))] = MAX_SCORE
        return scores

    def pick_gpus(
        self, cluster: Cluster, pod: PodRequest, node: int, rng: np.random.Generator
    ) -> tuple[int, ...]:
        if not pod.is_sharing:
            return best_fit_gpus(cluster, pod, node)
        fitting = np.flatnonzero(cluster.gpu_free[node] >= pod.gpu_milli)
        return (int(fitting[rng.integers(len(fitting))]),)


class BestFitPolicy(NodeScorer):
    """Least (CPU, GPU) left after placing: 100 x (1 - sum of halves of normalised leftovers)."""

    name = "BestFit"

    def score(
        self, cluster: Cluster, pod: PodRequest, nodes: IntArray, rng: np.random.Generator
    ) -> IntArray:
        cpu_left = (cluster.cpu_free[nodes] - pod.cpu_milli) / MAX_SPEC_CPU_MILLI * 0.5
        gpu_left = (cluster.gpu_free_total[nodes] - pod.total_gpu_milli) / MAX_SPEC_GPU_MILLI * 0.5
        return np.trunc((1.0 - (cpu_left + gpu_left)) * MAX_SCORE).astype(np.int64)

    def pick_gpus(
        self, cluster: Cluster, pod: PodRequest, node: int, rng: np.random.Generator
    ) -> tuple[int, ...]:
        return best_fit_gpus(cluster, pod, node)


class DotProductPolicy(NodeScorer):
    """Smallest dot product of normalised node free (CPU, GPU) and pod request (Tetris-like)."""

    name = "DotProd"

    def score(
        self, cluster: Cluster, pod: PodRequest, nodes: IntArray, rng: np.random.Generator
    ) -> IntArray:
        cpu = (cluster.cpu_free[nodes] / MAX_SPEC_CPU_MILLI) * (pod.cpu_milli / MAX_SPEC_CPU_MILLI)
        gpu = (cluster.gpu_free_total[nodes] / MAX_SPEC_GPU_MILLI) * (
            pod.total_gpu_milli / MAX_SPEC_GPU_MILLI
        )
        product = (cpu + gpu) / 2
        return np.trunc(MAX_SCORE * (1.0 - product)).astype(np.int64)

    def pick_gpus(
        self, cluster: Cluster, pod: PodRequest, node: int, rng: np.random.Generator
    ) -> tuple[int, ...]:
        return best_fit_gpus(cluster, pod, node)


class GpuPackingPolicy(NodeScorer):
    """Shared GPUs first (fullest first), then free GPUs of used nodes, then empty nodes."""

    name = "GpuPacking"

    def score(
        self, cluster: Cluster, pod: PodRequest, nodes: IntArray, rng: np.random.Generator
    ) -> IntArray:
        if pod.num_gpu == 0:
            return np.zeros(len(nodes), dtype=np.int64)
        whole_free = cluster.whole_free_gpus[nodes]
        # Empty node: 33 minus its GPU count, but never below that count (reference's cap).
        empty_node = np.maximum(MAX_SCORE // 3 - whole_free, whole_free)
        if pod.is_sharing:
            free = cluster.gpu_free[nodes]
            tightest = np.where(free >= pod.gpu_milli, free, WHOLE_GPU + 1).min(axis=1)
            on_shared = np.maximum(MAX_SCORE - (tightest * 100 // WHOLE_GPU) // 10, MAX_SCORE // 2)
            on_free = max(MAX_SCORE // 2 - 1, MAX_SCORE // 3)
            used_node = np.where(tightest == WHOLE_GPU, on_free, on_shared)
        else:
            used_node = np.full(len(nodes), max(MAX_SCORE // 2 - pod.num_gpu, MAX_SCORE // 3))
        return np.where(whole_free == cluster.gpu_count[nodes], empty_node, used_node).astype(
            np.int64
        )

    def pick_gpus(
        self, cluster: Cluster, pod: PodRequest, node: int, rng: np.random.Generator
    ) -> tuple[int, ...]:
        return best_fit_gpus(cluster, pod, node)


class GpuClusteringPolicy(NodeScorer):
    """Nodes running only pods of the pod's GPU kind first, then mixed, idle, other kinds."""

    name = "GpuClustering"

    def score(
        self, cluster: Cluster, pod: PodRequest, nodes: IntArray, rng: np.random.Generator
    ) -> IntArray:
        if pod.num_gpu == 0:
            return np.zeros(len(nodes), dtype=np.int64)
        kinds = cluster.pod_kinds[nodes]
        same = kinds[:, pod.kind] > 0
        distinct = (kinds > 0).sum(axis=1)
        quarter = MAX_SCORE // 4
        use = quarter * (MAX_SPEC_GPU_MILLI - cluster.gpu_free_total[nodes]) // MAX_SPEC_GPU_MILLI
        band = np.where(
            same,
            np.where(distinct == 1, 3 * quarter, 2 * quarter),
            np.where(distinct == 0, quarter, 0),
        )
        return (use + band).astype(np.int64)

    def pick_gpus(
        self, cluster: Cluster, pod: PodRequest, node: int, rng: np.random.Generator
    ) -> tuple[int, ...]:
        return best_fit_gpus(cluster, pod, node)


@dataclass(slots=True)
class _ShapeScores:
    """FGD scores of one pod shape on every node, valid while the node's version matches."""

    stamp: IntArray
    score: IntArray
    gpu: IntArray


class FgdPolicy(NodeScorer):
    """Least growth of expected fragmentation; the GPU inside the node chosen the same way.

    Score = trunc(100 x sigmoid((fragment before - fragment after) / 1000)). A node's
    scores for a pod shape depend only on that node's state, so they are cached per
    (CPU, per-GPU share, GPU count) and recomputed only for nodes that changed since.
    """

    name = "FGD"

    def __init__(self, model: FragmentationModel, tie_rank: IntArray | None = None) -> None:
        super().__init__(tie_rank)
        self.model = model
        self._cache: dict[tuple[int, int, int], _ShapeScores] = {}

    def score(
        self, cluster: Cluster, pod: PodRequest, nodes: IntArray, rng: np.random.Generator
    ) -> IntArray:
        entry = self._scores(cluster, pod)
        stale = nodes[entry.stamp[nodes] != cluster.version[nodes]]
        if len(stale):
            before, after = self.model.fragment_after(
                cluster, stale, pod.cpu_milli, pod.gpu_milli, pod.num_gpu
            )
            gain = (before[:, None] - after) / WHOLE_GPU
            scores = np.trunc(1.0 / (1.0 + np.exp(-gain)) * MAX_SCORE)
            scores = np.where(np.isnan(scores), -1, scores).astype(np.int64)
            entry.gpu[stale] = np.argmax(scores, axis=1)  # first GPU among equals
            entry.score[stale] = scores.max(axis=1)
            entry.stamp[stale] = cluster.version[stale]
        return entry.score[nodes]

    def pick_gpus(
        self, cluster: Cluster, pod: PodRequest, node: int, rng: np.random.Generator
    ) -> tuple[int, ...]:
        if not pod.is_sharing:
            return best_fit_gpus(cluster, pod, node)
        entry = self._scores(cluster, pod)
        if entry.stamp[node] != cluster.version[node]:
            self.score(cluster, pod, np.array([node]), rng)
        return (int(entry.gpu[node]),)

    def _scores(self, cluster: Cluster, pod: PodRequest) -> _ShapeScores:
        key = (pod.cpu_milli, pod.gpu_milli, pod.num_gpu)
        entry = self._cache.get(key)
        if entry is None:
            size = len(cluster)
            entry = _ShapeScores(
                stamp=np.full(size, -1, dtype=np.int64),
                score=np.zeros(size, dtype=np.int64),
                gpu=np.zeros(size, dtype=np.int64),
            )
            self._cache[key] = entry
        return entry


TieBreak = Literal["node-order", "random"]
"""How equal node scores are decided: "node-order" as the reference's scheduler fork (the
first node of a seeded random node order), "random" as upstream kube-scheduler."""


def _tie_rank(cluster: Cluster, rng: np.random.Generator, ties: TieBreak) -> IntArray | None:
    if ties == "random":
        return None
    # The reference prefixes node names with a seeded permutation and takes the smallest.
    return rng.permutation(len(cluster)).astype(np.int64)


_SIMPLE: dict[str, type[NodeScorer]] = {
    "Random": RandomPolicy,
    "DotProd": DotProductPolicy,
    "GpuClustering": GpuClusteringPolicy,
    "GpuPacking": GpuPackingPolicy,
    "BestFit": BestFitPolicy,
}
POLICY_NAMES = (*_SIMPLE, "FGD")
"""The reference policies by the names the paper's tables use, in their column order."""


def reference_policy(name: str, ties: TieBreak = "node-order") -> SchedulerFactory:
    """A factory for the named reference policy (KeyError for an unknown name)."""
    if name not in POLICY_NAMES:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(POLICY_NAMES)}")

    def make(cluster: Cluster, trace: PodTable, rng: np.random.Generator) -> Scheduler:
        rank = _tie_rank(cluster, rng, ties)
        if name == "FGD":
            return FgdPolicy(FragmentationModel(typical_pods(trace), cluster), rank)
        return _SIMPLE[name](rank)

    return make


REFERENCE_POLICIES: dict[str, SchedulerFactory] = {
    name: reference_policy(name) for name in POLICY_NAMES
}
"""Factories as the reference ran them (ties by a seeded node order), by name."""
