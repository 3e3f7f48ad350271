"""Run models x traces x seeds of the paper's protocol, in parallel processes if asked."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extender.policy.compiled import Policy
from extender.policy.loader import load_policy_file
from extender.simulate.cluster import Cluster
from extender.simulate.models import SECOND_SCHEDULER_CONFIG, model_factory
from extender.simulate.protocol import Scheduler, run_seed
from extender.simulate.separation import SeparationObserver
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
    preferred_pct: float
    seconds: float


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


def run_task(task: Task) -> RunResult:
    """One seed of one model, with our separation measures taken on the side."""
    policy = _policy(task.policy)
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
        preferred_pct=separation.preferred_pct,
        seconds=result.seconds,
    )


def run_all(
    tasks: Sequence[Task], jobs: int = 1, progress: Callable[[int, RunResult], None] | None = None
) -> list[RunResult]:
    """Every task, in `jobs` processes; results in the order of `tasks`."""
    results: list[RunResult] = []
    for done, result in enumerate(_results(tasks, jobs), start=1):
        results.append(result)
        if progress is not None:
            progress(done, result)
    return results


def _results(tasks: Sequence[Task], jobs: int) -> Iterator[RunResult]:
    if jobs <= 1:
        yield from map(run_task, tasks)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(run_task, tasks)
