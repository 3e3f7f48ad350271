"""Our own quality measures beside the paper's: how well interactive and batch pods are kept
apart, and how often interactive pods get the GPU class they prefer.

- co-location: the share of interactive pods' GPU milli that sits on a node also holding
  batch pods' GPUs (at the end of a run; pods never leave in the paper's protocol);
- GPU co-location: the same per GPU: interactive milli on GPUs that batch pods share (only
  GPU-sharing pods can share one);
- preferred class: of the interactive GPU pods that arrived while a node of one of their
  preferred classes could take them (fits, and allowed by their required classes), the
  share placed on a preferred class.

A wrapper around any `Scheduler` observes its decisions, so every model, ours or a
reference, is measured the same way. Workload classes come from the policy (the trace's
qos as priorityClassName), as the extender itself would resolve them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from extender.policy.compiled import ClassName, Policy, WorkloadName
from extender.simulate.cluster import BoolArray, Cluster, PodRequest
from extender.simulate.extender_model import model_class, trace_workload
from extender.simulate.protocol import Placement, Scheduler
from extender.simulate.trace import IntArray

INTERACTIVE_QOS = "LS"
BATCH_QOS = "BE"


@dataclass(frozen=True, slots=True)
class SeparationOutcome:
    colocated_pct: float
    """Interactive GPU milli on nodes that also hold batch GPU milli, % of all interactive."""
    gpu_colocated_pct: float
    """Interactive GPU milli on GPUs that also hold batch GPU milli, % of all interactive."""
    preferred_pct: float
    """Interactive pods placed on a preferred class, % of those that had room there (NaN
    when none had: the policy prefers no class, or its classes were always full)."""
    preferred_had_room: int


class SeparationObserver:
    """Wraps a scheduler; counts where interactive and batch pods' GPUs end up."""

    def __init__(self, inner: Scheduler, cluster: Cluster, policy: Policy) -> None:
        self.inner = inner
        self.policy = policy
        self.interactive = policy.priority_class_workloads.get(INTERACTIVE_QOS)
        self.batch = policy.priority_class_workloads.get(BATCH_QOS)
        classes = [model_class(model, policy) for model in cluster.models]
        self.class_names = tuple(sorted({c for c in classes if c is not None}))
        index = {name: i for i, name in enumerate(self.class_names)}
        self.node_class: IntArray = np.array(
            [-1 if c is None else index[c] for c in classes], dtype=np.int64
        )
        # Milli-GPU per node and GPU.
        self.interactive_milli = np.zeros(cluster.gpu_free.shape, dtype=np.int64)
        self.batch_milli = np.zeros(cluster.gpu_free.shape, dtype=np.int64)
        self.had_room = 0
        self.on_preferred = 0
        self._preferred = self._class_mask(
            policy.workloads[self.interactive].preferred_classes if self.interactive else ()
        )

    @property
    def name(self) -> str:
        return self.inner.name

    def _class_mask(self, names: tuple[ClassName, ...] | frozenset[ClassName]) -> BoolArray:
        wanted = {self.class_names.index(n) for n in names if n in self.class_names}
        return np.isin(self.node_class, sorted(wanted))

    def workload_of(self, pod: PodRequest) -> WorkloadName:
        return trace_workload(pod, self.policy)

    def decide(
        self, cluster: Cluster, pod: PodRequest, feasible: BoolArray, rng: np.random.Generator
    ) -> Placement | None:
        choice = self.inner.decide(cluster, pod, feasible, rng)
        if pod.num_gpu == 0:
            return choice
        workload = self.workload_of(pod)
        if workload == self.interactive and self._preferred.any():
            allowed = self._preferred
            if pod.gpu_spec:
                allowed = allowed & cluster.model_mask(pod.gpu_spec)
            if (feasible & allowed).any():
                self.had_room += 1
                if choice is not None and allowed[choice.node]:
                    self.on_preferred += 1
        if choice is not None:
            self._count(workload, pod, choice, +1)
        return choice

    def _count(self, workload: WorkloadName, pod: PodRequest, where: Placement, sign: int) -> None:
        held = {self.interactive: self.interactive_milli, self.batch: self.batch_milli}
        if workload in held:
            held[workload][where.node, list(where.gpus)] += sign * pod.gpu_milli

    def release(self, cluster: Cluster, pod: PodRequest, placement: Placement) -> None:
        """A pod left (time-ordered replays): forget its GPUs, tell the scheduler."""
        self._count(self.workload_of(pod), pod, placement, -1)
        release = getattr(self.inner, "release", None)
        if release is not None:
            release(cluster, pod, placement)

    def colocated_pct(self) -> float:
        """Interactive GPU milli on nodes also holding batch GPU milli, % (now)."""
        interactive = self.interactive_milli.sum(axis=1)
        return _share(interactive, self.batch_milli.sum(axis=1) > 0)

    def gpu_colocated_pct(self) -> float:
        """Interactive GPU milli on GPUs also holding batch GPU milli, % (now)."""
        return _share(self.interactive_milli, self.batch_milli > 0)

    def outcome(self) -> SeparationOutcome:
        return SeparationOutcome(
            colocated_pct=self.colocated_pct(),
            gpu_colocated_pct=self.gpu_colocated_pct(),
            preferred_pct=(
                100.0 * self.on_preferred / self.had_room if self.had_room else math.nan
            ),
            preferred_had_room=self.had_room,
        )


def _share(milli: IntArray, where: BoolArray) -> float:
    total = int(milli.sum())
    return 100.0 * int(milli[where].sum()) / total if total else 0.0
