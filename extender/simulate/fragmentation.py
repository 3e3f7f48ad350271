"""FGD's fragmentation measure: how much of a node's free GPU capacity typical pods cannot use.

Weng et al., USENIX ATC'23, section 4 ("task-level" and "node-level" fragmentation): the
workload is a distribution of task shapes; a node's fragmentation is the expected amount of
its free GPU milli that a task drawn from it cannot use. We follow the reference
implementation's reading of it (hkust-adsl/kubernetes-scheduler-simulator,
`pkg/utils/frag.go`: `NodeGpuShareFragAmount`, `GetNodePodFrag`, `GetTypicalPods`):

- a task that asks for no GPU, or may not use the node's GPU model, or does not fit the
  node's free CPU or GPUs, sees all the node's free GPU milli as fragment;
- a task that fits sees as fragment only the GPUs whose free share is below its per-GPU
  request;
- memory plays no part;
- the distribution ("typical pods") is the trace's own pods grouped by (CPU, per-GPU share,
  GPU count, GPU model constraint), most frequent first, cut at the smallest prefix covering
  95% of the pods, and renormalised.

Everything is vectorised over nodes, candidate GPUs and typical pods at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from extender.simulate.cluster import BoolArray, Cluster
from extender.simulate.trace import IntArray, PodTable

FloatArray = npt.NDArray[np.float64]

TYPICAL_COVERAGE = 0.95
"""Share of the trace's pods the typical shapes must cover (reference default: 95%)."""


@dataclass(frozen=True, slots=True, eq=False)
class TypicalPods:
    """Task shapes and their popularity (weights sum to 1), most popular first."""

    cpu_milli: IntArray
    gpu_milli: IntArray
    num_gpu: IntArray
    specs: tuple[tuple[str, ...], ...]
    weight: FloatArray

    def __len__(self) -> int:
        return len(self.specs)


def typical_pods(pods: PodTable, coverage: float = TYPICAL_COVERAGE) -> TypicalPods:
    """The trace's most frequent pod shapes, covering at least `coverage` of its pods."""
    counts = Counter(
        zip(
            pods.cpu_milli.tolist(),
            pods.gpu_milli.tolist(),
            pods.num_gpu.tolist(),
            pods.gpu_specs,
            strict=True,
        )
    )
    # Equal counts are ordered by shape, largest first, as the reference's reversed sort does.
    ranked = sorted(
        counts.items(),
        key=lambda item: (item[1], item[0][0], item[0][1], item[0][2], "|".join(item[0][3])),
        reverse=True,
    )
    needed = coverage * len(pods)
    kept: list[tuple[tuple[int, int, int, tuple[str, ...]], int]] = []
    covered = 0
    for shape, count in ranked:
        if covered >= needed:
            break
        kept.append((shape, count))
        covered += count
    return TypicalPods(
        cpu_milli=np.array([s[0] for s, _ in kept], dtype=np.int64),
        gpu_milli=np.array([s[1] for s, _ in kept], dtype=np.int64),
        num_gpu=np.array([s[2] for s, _ in kept], dtype=np.int64),
        specs=tuple(s[3] for s, _ in kept),
        weight=np.array([c / covered for _, c in kept], dtype=np.float64),
    )


class FragmentationModel:
    """Expected GPU fragment (milli-GPU) of nodes of one cluster, for one typical-pod mix.

    Typical pods without GPUs see every free GPU as fragment whatever the node's state, so
    they fold into one weight; the others are kept as arrays of length T (`_t` suffix).
    """

    def __init__(self, typical: TypicalPods, cluster: Cluster) -> None:
        gpu = typical.num_gpu > 0
        self.cpu_only_weight = float(typical.weight[~gpu].sum())
        self.cpu_t = typical.cpu_milli[gpu]
        self.milli_t = typical.gpu_milli[gpu]
        self.num_t = typical.num_gpu[gpu]
        self.weight_t = typical.weight[gpu]
        specs = [spec for spec, has_gpu in zip(typical.specs, gpu.tolist(), strict=True) if has_gpu]
        # access[n, t]: node n's GPU model is one typical pod t may use.
        self.access: BoolArray = np.ones((len(cluster), len(specs)), dtype=np.bool_)
        for t, spec in enumerate(specs):
            self.access[:, t] = cluster.model_mask(spec)

    def _expected(
        self,
        access: BoolArray,
        cpu_free: npt.NDArray[np.int64],
        free_total: npt.NDArray[np.int64],
        fit_count: npt.NDArray[np.int64],
        small_sum: npt.NDArray[np.int64],
    ) -> FloatArray:
        """Expected fragment given, per typical pod, how many GPUs fit it and the rest's sum.

        Arrays broadcast to (..., T) except `free_total` and `cpu_free`, shaped (...).
        """
        fits = access & (fit_count >= self.num_t) & (cpu_free[..., None] >= self.cpu_t)
        unusable = np.where(fits, small_sum, free_total[..., None])
        expected: FloatArray = (unusable * self.weight_t).sum(axis=-1)
        return expected + free_total * self.cpu_only_weight

    def node_state(
        self, gpu_free: npt.NDArray[np.int64], shut: BoolArray | None = None
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Per node and typical pod: which GPUs fit it, how many, and the free sum of the rest.

        `shut` (S, G) marks GPUs these typical pods may not share (separation at GPU level):
        none fits there, and their free share is fragment."""
        fits_gpu = gpu_free[:, :, None] >= self.milli_t  # (S, G, T)
        if shut is not None:
            fits_gpu &= ~shut[:, :, None]
        fit_count = fits_gpu.sum(axis=1)
        small_sum = np.where(fits_gpu, 0, gpu_free[:, :, None]).sum(axis=1)
        return fits_gpu, fit_count, small_sum

    def fragment(self, cluster: Cluster, nodes: IntArray) -> FloatArray:
        """Expected GPU fragment of `nodes` as they are now."""
        gpu_free = cluster.gpu_free[nodes]
        _, fit_count, small_sum = self.node_state(gpu_free)
        return self._expected(
            self.access[nodes], cluster.cpu_free[nodes], gpu_free.sum(axis=1), fit_count, small_sum
        )

    def fragment_after(
        self,
        cluster: Cluster,
        nodes: IntArray,
        cpu_milli: int,
        gpu_milli: int,
        num_gpu: int,
        shut: BoolArray | None = None,
        closes: bool = False,
    ) -> tuple[FloatArray, FloatArray]:
        """Fragment of `nodes` now, and after placing a pod of this shape on each choice.

        Returns (before, after). For a GPU-sharing pod `after` is (S, G): placing it on GPU
        slot g of each node (NaN where that GPU lacks room). Otherwise `after` is (S, 1): a
        whole-GPU pod takes fully free GPUs, which leaves the per-pod counts of the other
        GPUs unchanged whichever ones it takes; a CPU-only pod takes only CPU. `shut`
        (S, G): GPUs the typical pods may not share; `closes`: the sharing pod's GPU is shut
        to them after (it is of a workload class kept apart from theirs).
        """
        gpu_free = cluster.gpu_free[nodes]
        cpu_free = cluster.cpu_free[nodes]
        access = self.access[nodes]
        free_total = gpu_free.sum(axis=1)
        fits_gpu, fit_count, small_sum = self.node_state(gpu_free, shut)
        before = self._expected(access, cpu_free, free_total, fit_count, small_sum)
        cpu_after = cpu_free - cpu_milli
        if num_gpu == 1 and gpu_milli < 1000:
            slot = gpu_free[:, :, None]  # (S, G, 1)
            left = slot - gpu_milli
            fits_left = (left >= self.milli_t) & (not closes)  # (S, G, T)
            count_after = fit_count[:, None, :] - fits_gpu + fits_left
            small_after = (
                small_sum[:, None, :] - np.where(fits_gpu, 0, slot) + np.where(fits_left, 0, left)
            )
            after = self._expected(
                access[:, None, :],
                np.broadcast_to(cpu_after[:, None], gpu_free.shape),
                (free_total - gpu_milli)[:, None] + np.zeros(gpu_free.shape, np.int64),
                count_after,
                small_after,
            )
            return before, np.where(gpu_free >= gpu_milli, after, np.nan)
        after = self._expected(
            access,
            cpu_after,
            free_total - num_gpu * gpu_milli,
            fit_count - num_gpu,
            small_sum,
        )
        return before, after[:, None]
