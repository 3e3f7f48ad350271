"""The simulated cluster: free CPU, memory and per-GPU share of every node, as numpy arrays.

GPUs are modelled one by one, as the GPU-sharing device plugin of the FGD paper's simulator
does (hkust-adsl/kubernetes-scheduler-simulator, `pkg/type/open-gpu-share/cache/gpunodeinfo.go`):
a sharing pod takes `gpu_milli` of one GPU, a multi-GPU pod takes whole GPUs. `gpu_free` is a
nodes x max-GPUs array; slots past a node's GPU count stay at 0, so they never fit a pod and
add nothing to sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from extender.simulate.trace import WHOLE_GPU, IntArray, NodeTable, PodTable

BoolArray = npt.NDArray[np.bool_]

SHARING_KIND = 0
"""Column of `Cluster.pod_kinds` counting GPU-sharing pods; column k counts k-whole-GPU pods."""


@dataclass(frozen=True, slots=True)
class PodRequest:
    """What one pod asks for. `gpu_milli` is per GPU (0 for CPU-only pods)."""

    cpu_milli: int
    memory_mib: int
    num_gpu: int = 0
    gpu_milli: int = 0
    gpu_spec: tuple[str, ...] = ()
    qos: str = ""
    """The trace's QoS class (LS, BE, Burstable, Guaranteed); no reference policy reads it."""

    @property
    def total_gpu_milli(self) -> int:
        return self.num_gpu * self.gpu_milli

    @property
    def is_sharing(self) -> bool:
        """Takes part of one GPU (the rest stays usable by other sharing pods)."""
        return self.num_gpu == 1 and self.gpu_milli < WHOLE_GPU

    @property
    def kind(self) -> int:
        """Column of `Cluster.pod_kinds` this pod counts in (-1 for CPU-only pods)."""
        if self.num_gpu == 0:
            return -1
        return SHARING_KIND if self.is_sharing else self.num_gpu


def pod_requests(pods: PodTable) -> list[PodRequest]:
    """One `PodRequest` per row of the table, in order."""
    return [
        PodRequest(int(c), int(m), int(n), int(g), spec, qos)
        for c, m, n, g, spec, qos in zip(
            pods.cpu_milli.tolist(),
            pods.memory_mib.tolist(),
            pods.num_gpu.tolist(),
            pods.gpu_milli.tolist(),
            pods.gpu_specs,
            pods.qos,
            strict=True,
        )
    ]


class Cluster:
    """Free resources of every node; `place` books a pod onto a node and specific GPUs.

    Arrays are indexed by node position (the node list's order). Callers read them and
    never write them: `place` keeps the derived arrays (`gpu_free_total`, `max_gpu_free`,
    `whole_free_gpus`) and `version` consistent. `version[n]` grows whenever node n changes,
    so schedulers can cache per-node work.
    """

    def __init__(
        self,
        names: Sequence[str],
        cpu_milli: npt.ArrayLike,
        memory_mib: npt.ArrayLike,
        gpus: npt.ArrayLike,
        models: Sequence[str],
        *,
        whole_units: bool = False,
    ) -> None:
        self.names = tuple(names)
        self.whole_units = whole_units
        self.models = tuple(models)
        self.cpu_capacity: IntArray = np.array(cpu_milli, dtype=np.int64)
        self.memory_capacity: IntArray = np.array(memory_mib, dtype=np.int64)
        self.gpu_count: IntArray = np.array(gpus, dtype=np.int64)
        size = len(self.names)
        for label, array in (
            ("cpu_milli", self.cpu_capacity),
            ("memory_mib", self.memory_capacity),
            ("gpus", self.gpu_count),
        ):
            if array.shape != (size,):
                raise ValueError(f"{label} has shape {array.shape}, expected ({size},)")
        if len(self.models) != size:
            raise ValueError(f"{len(self.models)} models for {size} nodes")
        self.max_gpus = int(self.gpu_count.max(initial=0))
        self._model_masks: dict[tuple[str, ...], BoolArray] = {}
        self.reset()

    @classmethod
    def from_nodes(cls, nodes: NodeTable, *, whole_units: bool = False) -> Cluster:
        """The trace's nodes; `whole_units` as a real kube-scheduler counts `nvidia.com/gpu`
        without a sharing device plugin: every GPU pod takes its GPU count in whole units,
        a sharing pod one (its share then only decides which GPU it joins)."""
        return cls(
            nodes.names,
            nodes.cpu_milli,
            nodes.memory_mib,
            nodes.gpus,
            nodes.models,
            whole_units=whole_units,
        )

    def reset(self) -> None:
        """Empty the cluster: every node and GPU free again."""
        size = len(self.names)
        self.cpu_free: IntArray = self.cpu_capacity.copy()
        self.memory_free: IntArray = self.memory_capacity.copy()
        slots = np.arange(max(self.max_gpus, 1))
        self.gpu_exists: BoolArray = slots[None, :] < self.gpu_count[:, None]
        self.gpu_free: IntArray = np.where(self.gpu_exists, WHOLE_GPU, 0).astype(np.int64)
        self.gpu_free_total: IntArray = self.gpu_free.sum(axis=1)
        self.max_gpu_free: IntArray = self.gpu_free.max(axis=1)
        self.whole_free_gpus: IntArray = self.gpu_count.copy()
        # `nvidia.com/gpu` left as the scheduler counts it (whole_units: a pod takes num_gpu).
        self.gpu_units_free: IntArray = self.gpu_count.copy()
        self.pod_kinds: IntArray = np.zeros((size, self.max_gpus + 1), dtype=np.int64)
        self.version: IntArray = np.zeros(size, dtype=np.int64)
        self.allocated_gpu_milli = 0

    def __len__(self) -> int:
        return len(self.names)

    @property
    def gpu_capacity_milli(self) -> int:
        """All GPUs of the cluster, in milli-GPU."""
        return int(self.gpu_count.sum()) * WHOLE_GPU

    @property
    def gpus_total(self) -> int:
        return int(self.gpu_count.sum())

    def model_mask(self, spec: tuple[str, ...]) -> BoolArray:
        """Nodes whose GPU model is one of `spec` (every node when `spec` is empty)."""
        mask = self._model_masks.get(spec)
        if mask is None:
            if spec:
                wanted = set(spec)
                mask = np.array([model in wanted for model in self.models], dtype=np.bool_)
            else:
                mask = np.ones(len(self.names), dtype=np.bool_)
            self._model_masks[spec] = mask
        return mask

    def feasible(self, pod: PodRequest) -> BoolArray:
        """Nodes with room for the pod: CPU, memory, GPU model, and GPUs counted one by one."""
        fits = (self.cpu_free >= pod.cpu_milli) & (self.memory_free >= pod.memory_mib)
        if pod.num_gpu == 0:
            return fits
        fits &= self.model_mask(pod.gpu_spec)
        if self.whole_units:
            fits &= self.gpu_units_free >= pod.num_gpu
        if pod.num_gpu == 1:
            return fits & (self.max_gpu_free >= pod.gpu_milli)
        return fits & (self.whole_free_gpus >= pod.num_gpu)

    def fits_on(self, node: int, pod: PodRequest) -> bool:
        """`feasible` for one node, without computing it for all."""
        if self.cpu_free[node] < pod.cpu_milli or self.memory_free[node] < pod.memory_mib:
            return False
        if pod.num_gpu == 0:
            return True
        if not self.model_mask(pod.gpu_spec)[node]:
            return False
        if self.whole_units and self.gpu_units_free[node] < pod.num_gpu:
            return False
        if pod.num_gpu == 1:
            return bool(self.max_gpu_free[node] >= pod.gpu_milli)
        return bool(self.whole_free_gpus[node] >= pod.num_gpu)

    def place(self, node: int, gpus: Sequence[int], pod: PodRequest) -> None:
        """Book `pod` on `node`, taking `gpu_milli` from each GPU index in `gpus`.

        Raises ValueError (and changes nothing) if the pod does not fit there: a scheduler
        that picks an impossible placement is a bug, not a failed pod.
        """
        if not 0 <= node < len(self.names):
            raise ValueError(f"no node {node}")
        if not self.fits_on(node, pod):
            raise ValueError(f"pod {pod} does not fit node {self.names[node]}")
        if len(gpus) != pod.num_gpu or len(set(gpus)) != len(gpus):
            raise ValueError(f"pod needs {pod.num_gpu} distinct GPU(s), got {list(gpus)}")
        count = int(self.gpu_count[node])
        for gpu in gpus:
            if not 0 <= gpu < count or self.gpu_free[node, gpu] < pod.gpu_milli:
                raise ValueError(
                    f"GPU {gpu} of node {self.names[node]} cannot give {pod.gpu_milli} milli"
                )
        self._book(node, gpus, pod, +1)

    def release(self, node: int, gpus: Sequence[int], pod: PodRequest) -> None:
        """Undo `place` for a pod that leaves (time-ordered replays)."""
        row = self.gpu_free[node]
        if any(row[g] + pod.gpu_milli > WHOLE_GPU for g in gpus):
            raise ValueError(f"pod {pod} does not hold GPUs {list(gpus)} of {self.names[node]}")
        self._book(node, gpus, pod, -1)

    def _book(self, node: int, gpus: Sequence[int], pod: PodRequest, sign: int) -> None:
        self.cpu_free[node] -= sign * pod.cpu_milli
        self.memory_free[node] -= sign * pod.memory_mib
        if pod.num_gpu:
            row = self.gpu_free[node]
            row[list(gpus)] -= sign * pod.gpu_milli
            self.gpu_free_total[node] = row.sum()
            self.max_gpu_free[node] = row.max()
            self.whole_free_gpus[node] = int((row == WHOLE_GPU).sum())
            self.gpu_units_free[node] -= sign * pod.num_gpu
            self.pod_kinds[node, pod.kind] += sign
            self.allocated_gpu_milli += sign * pod.total_gpu_milli
        self.version[node] += 1
