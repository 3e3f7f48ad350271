"""The FGD paper's evaluation protocol: inflate the trace, replay it, read off the allocation.

Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation
Gradient Descent", USENIX ATC'23, section 6.1; the details follow the reference simulator
(hkust-adsl/kubernetes-scheduler-simulator), read for understanding:

- `pkg/simulator/core.go` `Simulate` and `pkg/simulator/simulator.go` `SortClusterPods`,
  `TunePodsByNodeTotalResource`, `tuneUpPods`: the trace's pods are shuffled (seeded), then
  pods drawn at random with replacement from the trace are appended until their GPU request
  would pass 130% of the cluster's GPUs. The appended pods are not shuffled again, and the
  stop test compares the per-GPU share of the next draw (a quirk we keep).
- `SchedulePods`: pods arrive one at a time and never leave; a pod that fits nowhere fails
  and is dropped. After every pod (placed or not) the arrived GPU request and the allocated
  GPU share are recorded (`ClusterGpuFragReport`).
- `experiments/analysis/merge_alloc_discrete.py`: the allocation at x% arrived is the mean
  over the pods whose arrived request, in percent of the cluster's GPUs, rounds to x.
- The headline is the unallocated GPU share at 100% arrived, median over seeds 42..51.

Schedulers plug in through `Scheduler`; `NodeScorer` is the kube-scheduler shape (filter,
score every feasible node at once as a numpy array, take the best (ties: see select_host),
then choose GPUs inside the node).
"""

from __future__ import annotations

import statistics
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from extender.simulate.cluster import BoolArray, Cluster, PodRequest, pod_requests
from extender.simulate.trace import IntArray, NodeTable, PodTable

FloatArray = npt.NDArray[np.float64]

PAPER_SEEDS = tuple(range(42, 52))
PAPER_INFLATION = 1.3
"""Workload GPU request as a multiple of the cluster's GPU capacity."""
HEADLINE_PERCENT = 100
_DRAW_CHUNK = 1024


@dataclass(frozen=True, slots=True)
class Placement:
    """A scheduler's decision: the node (its index in the cluster) and the GPU indices on it."""

    node: int
    gpus: tuple[int, ...] = ()
    token: object = None
    """The scheduler's own handle on the pod, given back to `Releasing.release`."""


class Scheduler(Protocol):
    """Chooses where one pod goes, given the cluster and the nodes it fits on.

    `feasible` marks the nodes with room for the pod (never all False when called); the
    scheduler may narrow them with rules of its own and returns None to leave the pod
    unscheduled. `rng` is the run's own generator, for tie-breaking and random policies.
    """

    @property
    def name(self) -> str: ...

    def decide(
        self, cluster: Cluster, pod: PodRequest, feasible: BoolArray, rng: np.random.Generator
    ) -> Placement | None: ...


class Releasing(Protocol):
    """A scheduler that keeps state per placed pod and must hear when one leaves."""

    def release(self, cluster: Cluster, pod: PodRequest, placement: Placement) -> None: ...


SchedulerFactory = Callable[[Cluster, PodTable, np.random.Generator], Scheduler]
"""Builds a scheduler for one run from the (empty) cluster, the trace being replayed and the
run's scheduling generator (for per-run draws such as a node order)."""


def select_host(
    nodes: IntArray,
    scores: IntArray | FloatArray,
    rng: np.random.Generator,
    tie_rank: IntArray | None = None,
) -> int:
    """The node with the highest score. Ties go to the lowest `tie_rank`, or at random.

    Upstream kube-scheduler's `selectHost` picks uniformly among equal scores. The FGD
    simulator runs on a fork (github.com/mental2008/kubernetes v1.20.5-minor,
    `pkg/scheduler/core/generic_scheduler.go`) that takes the lexicographically smallest
    node name instead, after prefixing every node name with a seeded random permutation
    (`syncClusterResourceList` in `pkg/simulator/simulator.go`): a fixed random node order
    per run. Which rule applies changes results a lot for coarse scores.
    """
    best = np.flatnonzero(scores == scores.max())
    if len(best) == 1:
        return int(nodes[best[0]])
    if tie_rank is not None:
        return int(nodes[best[np.argmin(tie_rank[nodes[best]])]])
    return int(nodes[best[rng.integers(len(best))]])


class NodeScorer(ABC):
    """A scheduler that scores all feasible nodes at once, then picks GPUs on the winner.

    `tie_rank[n]` orders nodes for breaking equal scores (lowest wins); None breaks them
    uniformly at random.
    """

    name: str = ""

    def __init__(self, tie_rank: IntArray | None = None) -> None:
        self.tie_rank = tie_rank

    def decide(
        self, cluster: Cluster, pod: PodRequest, feasible: BoolArray, rng: np.random.Generator
    ) -> Placement | None:
        nodes = np.flatnonzero(feasible)
        if len(nodes) == 0:
            return None
        node = select_host(nodes, self.score(cluster, pod, nodes, rng), rng, self.tie_rank)
        return Placement(node, self.pick_gpus(cluster, pod, node, rng))

    @abstractmethod
    def score(
        self, cluster: Cluster, pod: PodRequest, nodes: IntArray, rng: np.random.Generator
    ) -> IntArray:
        """One integer score per node in `nodes` (higher is better)."""

    @abstractmethod
    def pick_gpus(
        self, cluster: Cluster, pod: PodRequest, node: int, rng: np.random.Generator
    ) -> tuple[int, ...]:
        """The GPU indices on `node` the pod takes (empty for CPU-only pods)."""


def inflate(
    pods: PodTable,
    gpu_capacity_milli: int,
    rng: np.random.Generator,
    ratio: float = PAPER_INFLATION,
) -> IntArray:
    """Arrival order (rows of `pods`, with repeats) whose GPU request is about `ratio` x capacity.

    Shuffle the trace; then, if it asks for less than the target, append rows drawn with
    replacement until the next draw's per-GPU share would pass the target; if it asks for
    more, drop random pods until it fits (reference: `tuneUpPods`, `tuneDownPods`).
    """
    demand = pods.total_gpu_milli
    if not demand.any():
        raise ValueError("no pod asks for a GPU: nothing to inflate to a GPU target")
    order = rng.permutation(len(pods)).astype(np.int64)
    total = int(demand.sum())
    target = ratio * gpu_capacity_milli
    if total > target:
        kept = list(order)
        while total > target and kept:
            total -= int(demand[kept.pop(int(rng.integers(len(kept))))])
        return np.array(kept, dtype=np.int64)
    extra: list[IntArray] = []
    while True:
        draws = rng.integers(len(pods), size=_DRAW_CHUNK)
        before = total + np.concatenate(([0], np.cumsum(demand[draws])[:-1]))
        over = np.flatnonzero(before + pods.gpu_milli[draws] > target)
        if len(over):
            extra.append(draws[: over[0]])
            break
        extra.append(draws)
        total += int(demand[draws].sum())
    return np.concatenate([order, *extra]).astype(np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class Replay:
    """What happened to each arriving pod, and the cluster's GPU books after it."""

    order: IntArray
    placed_node: IntArray
    """Node index per arrival, -1 if the pod failed."""
    arrived_gpu_milli: IntArray
    """GPU request of all pods arrived so far, this one included, placed or not."""
    allocated_gpu_milli: IntArray
    gpu_capacity_milli: int

    @property
    def failed(self) -> int:
        return int((self.placed_node < 0).sum())


def replay(
    cluster: Cluster,
    pods: Sequence[PodRequest],
    order: IntArray,
    scheduler: Scheduler,
    rng: np.random.Generator,
) -> Replay:
    """Offer the pods in `order` one at a time; place each where the scheduler says or drop it."""
    count = len(order)
    placed = np.full(count, -1, dtype=np.int64)
    arrived = np.zeros(count, dtype=np.int64)
    allocated = np.zeros(count, dtype=np.int64)
    arrived_so_far = 0
    for k, row in enumerate(order.tolist()):
        pod = pods[row]
        arrived_so_far += pod.total_gpu_milli
        feasible = cluster.feasible(pod)
        if feasible.any():
            choice = scheduler.decide(cluster, pod, feasible, rng)
            if choice is not None:
                cluster.place(choice.node, choice.gpus, pod)
                placed[k] = choice.node
        arrived[k] = arrived_so_far
        allocated[k] = cluster.allocated_gpu_milli
    return Replay(order, placed, arrived, allocated, cluster.gpu_capacity_milli)


def allocation_curve(result: Replay, max_percent: int = 130) -> FloatArray:
    """GPU allocation (% of capacity) at each whole percent 0..max_percent of arrived request.

    Entry x is the mean allocation over the arrivals whose arrived request rounds to x%
    (half to even, as pandas' round does); with none there, those within x +- 1; NaN if
    still none. This is the reference's `merge_alloc_discrete.py`, without its rounding of
    each sample to 0.01.
    """
    scale = 100.0 / result.gpu_capacity_milli
    arrived = np.round(result.arrived_gpu_milli * scale)
    allocated = result.allocated_gpu_milli * scale
    curve = np.full(max_percent + 1, np.nan)
    for percent in range(max_percent + 1):
        here = arrived == percent
        if not here.any():
            here = (arrived >= percent - 1) & (arrived <= percent + 1)
        if here.any():
            curve[percent] = allocated[here].mean()
    return curve


def unallocated_at(curve: FloatArray, percent: int = HEADLINE_PERCENT) -> float:
    """The share of GPUs left unallocated (%) when `percent` of capacity has arrived."""
    return float(100.0 - curve[percent])


@dataclass(frozen=True, slots=True)
class SeedResult:
    seed: int
    unallocated_pct: float
    arrivals: int
    failed: int
    seconds: float


def workload_rng(seed: int) -> np.random.Generator:
    """Generator for inflation and shuffling: the same workload for every policy."""
    return np.random.default_rng([seed, 0])


def scheduling_rng(seed: int) -> np.random.Generator:
    """Generator for the scheduler's own choices, apart from the workload's."""
    return np.random.default_rng([seed, 1])


def run_seed(
    nodes: NodeTable,
    pods: PodTable,
    factory: SchedulerFactory,
    seed: int,
    *,
    ratio: float = PAPER_INFLATION,
    requests: Sequence[PodRequest] | None = None,
) -> tuple[SeedResult, FloatArray]:
    """One run of the protocol: a fresh cluster, the seed's workload, one scheduler."""
    started = time.perf_counter()
    cluster = Cluster.from_nodes(nodes)
    order = inflate(pods, cluster.gpu_capacity_milli, workload_rng(seed), ratio)
    rng = scheduling_rng(seed)
    scheduler = factory(cluster, pods, rng)
    requests = requests if requests is not None else pod_requests(pods)
    result = replay(cluster, requests, order, scheduler, rng)
    curve = allocation_curve(result, max_percent=round(ratio * 100))
    seconds = time.perf_counter() - started
    return SeedResult(seed, unallocated_at(curve), len(order), result.failed, seconds), curve


@dataclass(frozen=True, slots=True)
class Spread:
    """Median, minimum and maximum over seeds."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))
