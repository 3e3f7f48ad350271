"""Run models x traces x seeds of the paper's protocol, in parallel processes if asked."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from extender.policy.compiled import Policy
from extender.policy.loader import load_policy_file
from extender.simulate.bounds import with_separation_weight
from extender.simulate.cluster import Cluster, pod_requests
from extender.simulate.models import SECOND_SCHEDULER_CONFIG, model_factory
from extender.simulate.protocol import Scheduler, run_seed, scheduling_rng
from extender.simulate.separation import SeparationObserver
from extender.simulate.timeline import Timeline, replay_timeline, speedup_for_load
from extender.simulate.trace import NodeTable, PodTable, read_nodes, read_pods


@dataclass(frozen=True, slots=True)
class Task:
    """One run: a model on a trace with a seed."""

    model: str
    nodes: Path
    pods: Path
    policy: Path
    seed: int
    scheduler_config: Path = SECOND_SCHEDULER_CONFIG
    """The KubeSchedulerConfiguration `extender-profile` models (default: the shipped one)."""
    load: float = 0.4
    """Time-ordered replays: offered GPU load the arrivals are compressed to."""
    separation: str = ""
    """The policy's separation weight replaced by this number, or every separation made
    `hard`; empty: the policy as written (a point of `simulate --frontier`)."""

    @property
    def trace(self) -> str:
        return trace_name(self.pods)


@dataclass(frozen=True, slots=True)
class RunResult:
    model: str
    trace: str
    seed: int
    unallocated_pct: float
    curve: tuple[float, ...]
    """GPU allocation % at each whole percent 0..130 of arrived GPU request."""
    arrivals: int
    failed: int
    colocated_pct: float
    gpu_colocated_pct: float
    preferred_pct: float
    seconds: float
    separation: str = ""


def trace_name(pods: Path) -> str:
    """`openb_pod_list_gpushare40.csv` -> `gpushare40`; other files by their stem."""
    stem = pods.stem
    return stem.removeprefix("openb_pod_list_")


@functools.lru_cache(maxsize=8)
def _nodes(path: Path) -> NodeTable:
    return read_nodes(path)


@functools.lru_cache(maxsize=8)
def _pods(path: Path) -> PodTable:
    return read_pods(path)


@functools.lru_cache(maxsize=4)
def _policy(path: Path) -> Policy:
    return load_policy_file(path)


def task_policy(task: Task) -> Policy:
    """The task's policy, with the separation weight of its frontier point."""
    policy = _policy(task.policy)
    if not task.separation:
        return policy
    return with_separation_weight(
        policy, None if task.separation == "hard" else float(task.separation)
    )


def run_task(task: Task) -> RunResult:
    """One seed of one model, with our separation measures taken on the side."""
    policy = task_policy(task)
    factory = model_factory(task.model, policy, task.scheduler_config)
    observers: list[SeparationObserver] = []

    def observed(cluster: Cluster, trace: PodTable, rng: np.random.Generator) -> Scheduler:
        observer = SeparationObserver(factory(cluster, trace, rng), cluster, policy)
        observers.append(observer)
        return observer

    result, curve = run_seed(_nodes(task.nodes), _pods(task.pods), observed, task.seed)
    separation = observers[0].outcome()
    return RunResult(
        model=task.model,
        trace=task.trace,
        seed=task.seed,
        unallocated_pct=result.unallocated_pct,
        curve=tuple(float(x) for x in curve),
        arrivals=result.arrivals,
        failed=result.failed,
        colocated_pct=separation.colocated_pct,
        gpu_colocated_pct=separation.gpu_colocated_pct,
        preferred_pct=separation.preferred_pct,
        seconds=result.seconds,
        separation=task.separation,
    )


@dataclass(frozen=True, slots=True)
class TimelineResult:
    """One model replaying a trace in time order (pods leave; pods that do not fit wait)."""

    model: str
    trace: str
    seed: int
    timeline: Timeline
    seconds: float


def run_timeline_task(task: Task) -> TimelineResult:
    policy = _policy(task.policy)
    nodes, pods = _nodes(task.nodes), _pods(task.pods)
    started = time.perf_counter()
    cluster = Cluster.from_nodes(nodes)
    rng = scheduling_rng(task.seed)
    inner = model_factory(task.model, policy, task.scheduler_config)(cluster, pods, rng)
    speedup = speedup_for_load(pods, cluster.gpu_capacity_milli, task.load)
    observer = SeparationObserver(inner, cluster, policy)
    timeline = replay_timeline(cluster, pod_requests(pods), pods, observer, rng, speedup)
    return TimelineResult(
        task.model, task.trace, task.seed, timeline, time.perf_counter() - started
    )


R = TypeVar("R", RunResult, TimelineResult)


def run_all(
    tasks: Sequence[Task],
    run: Callable[[Task], R],
    jobs: int = 1,
    progress: Callable[[int, R], None] | None = None,
) -> list[R]:
    """`run` on every task, in `jobs` processes; results in the order of `tasks`."""
    results: list[R] = []
    for done, result in enumerate(_results(tasks, run, jobs), start=1):
        results.append(result)
        if progress is not None:
            progress(done, result)
    return results


def _results(tasks: Sequence[Task], run: Callable[[Task], R], jobs: int) -> Iterator[R]:
    if jobs <= 1:
        yield from map(run, tasks)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(run, tasks)
