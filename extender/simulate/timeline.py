"""Time-ordered replay: pods arrive at their creation time and leave at their deletion time.

Unlike the paper's protocol (no departures, failed pods dropped), a pod that does not fit
waits, as it would stay Pending in a cluster, and is tried again, in arrival order, after
pods leave. Every `sample_every` seconds of trace time the state is recorded: pods
pending, GPUs allocated, and interactive/batch co-location.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from extender.simulate.cluster import Cluster, PodRequest
from extender.simulate.protocol import Placement
from extender.simulate.separation import SeparationObserver
from extender.simulate.trace import MISSING_TIME, PodTable

SAMPLES = 200
RETRY_BATCH = 100


@dataclass(frozen=True, slots=True)
class Sample:
    time: int
    pending: int
    allocated_pct: float
    colocated_pct: float


@dataclass(frozen=True, slots=True)
class Timeline:
    samples: tuple[Sample, ...]
    placed: int
    never_placed: int
    """Pods still pending when the trace ends."""
    mean_wait_seconds: float
    """Mean time from arrival to placement, over the pods that were placed."""
    speedup: float


def speedup_for_load(pods: PodTable, gpu_capacity_milli: int, load: float) -> float:
    """How much to compress arrival times (lifetimes kept) so that, while pods arrive, the
    GPU request of the pods alive is on average `load` x capacity (if all could run). The
    most it can reach is the whole trace's request (every pod alive at once).

    The openb traces span ~150 days of arrivals with a median lifetime of minutes: replayed
    at their own pace they offer ~0.2% of the cluster.
    """
    born = pods.creation_time.astype(np.float64)
    life = np.where(
        pods.deletion_time != MISSING_TIME, pods.deletion_time - pods.creation_time, 0
    ).clip(min=0)
    demand = pods.total_gpu_milli.astype(np.float64)
    if not len(pods) or not demand.any():
        return 1.0
    start = float(born.min())

    def offered(speedup: float) -> float:
        arrive = start + (born - start) / speedup
        # The bulk of the arrivals: a few stragglers must not stretch the window.
        first, last = np.percentile(arrive, [1, 99])
        window = float(last - first) or 1.0
        alive_from = np.maximum(arrive, first)
        inside = (np.minimum(arrive + life, last) - alive_from).clip(min=0)
        return float((demand * inside).sum()) / window / max(gpu_capacity_milli, 1)

    low, high = 1.0, 1e6
    if offered(low) >= load:
        return low
    for _ in range(60):  # bisection in log space: offered load grows with the speedup
        middle = (low * high) ** 0.5
        low, high = (middle, high) if offered(middle) < load else (low, middle)
    return high


def _events(pods: PodTable, speedup: float) -> list[tuple[int, int, int]]:
    """(time, kind, row): kind 0 = leave, 1 = arrive, so leaving frees room first."""
    start = int(pods.creation_time.min()) if len(pods) else 0
    events = []
    for row, (born, died) in enumerate(
        zip(pods.creation_time.tolist(), pods.deletion_time.tolist(), strict=True)
    ):
        arrive = start + round((born - start) / speedup)
        events.append((arrive, 1, row))
        if died != MISSING_TIME and died >= born:
            events.append((arrive + died - born, 0, row))
    events.sort()
    return events


def replay_timeline(
    cluster: Cluster,
    requests: Sequence[PodRequest],
    pods: PodTable,
    scheduler: SeparationObserver,
    rng: np.random.Generator,
    speedup: float = 1.0,
    samples_wanted: int = SAMPLES,
) -> Timeline:
    """Run the trace in time order through `scheduler` (wrapped to measure co-location),
    arrivals compressed by `speedup`."""
    placed_at: dict[int, Placement] = {}
    waiting: deque[int] = deque()
    waits: list[int] = []
    samples: list[Sample] = []
    events = _events(pods, speedup)
    arrived = {row: time for time, kind, row in events if kind == 1}
    next_sample = events[0][0] if events else 0
    capacity = max(cluster.gpu_capacity_milli, 1)

    def try_place(row: int, now: int) -> bool:
        pod = requests[row]
        feasible = cluster.feasible(pod)
        if not feasible.any():
            return False
        choice = scheduler.decide(cluster, pod, feasible, rng)
        if choice is None:
            return False
        cluster.place(choice.node, choice.gpus, pod)
        placed_at[row] = choice
        waits.append(now - arrived[row])
        return True

    last_arrival = max((t for t, kind, _ in events if kind == 1), default=0)
    sample_every = max(1, (last_arrival - next_sample) // samples_wanted)
    for now, kind, row in events:
        while now >= next_sample and next_sample <= last_arrival:
            samples.append(
                Sample(
                    time=next_sample,
                    pending=len(waiting),
                    allocated_pct=100.0 * cluster.allocated_gpu_milli / capacity,
                    colocated_pct=scheduler.colocated_pct(),
                )
            )
            next_sample += sample_every
        if kind == 1:
            if not try_place(row, now):
                waiting.append(row)
            continue
        placement = placed_at.pop(row, None)
        if placement is None:
            if row in waiting:
                waiting.remove(row)  # deleted while still pending
            continue
        cluster.release(placement.node, placement.gpus, requests[row])
        scheduler.release(cluster, requests[row], placement)
        # Room freed: retry who waits, oldest first (the scheduler's queue after a delete).
        retried = [waiting.popleft() for _ in range(min(RETRY_BATCH, len(waiting)))]
        still = [candidate for candidate in retried if not try_place(candidate, now)]
        waiting.extendleft(reversed(still))
    return Timeline(
        samples=tuple(samples),
        placed=len(waits),
        never_placed=len(waiting),
        mean_wait_seconds=float(np.mean(waits)) if waits else 0.0,
        speedup=speedup,
    )
