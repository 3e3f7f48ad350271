"""Replay the shipped openb traces with every reference policy and compare with the FGD paper.

For each trace x policy x seed (42..51) it runs the paper's protocol (extender/simulate) and
prints a Markdown table: our median unallocated GPU % at 100% arrived, its spread over the
seeds, the published median (FGD repository, `experiments/analysis/expected_results/
analysis_allo_discrete.csv`, as quoted in data/README.md), the difference, and the
time per seed.

    nice -n 10 .venv/bin/python hack/validate_reference.py --jobs 1 --output out.md
    .venv/bin/python hack/validate_reference.py --traces default --policies FGD --seeds 42

Exit status 1 with --check when Random, BestFit or FGD is more than --tolerance points off.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from extender.simulate import (
    PAPER_SEEDS,
    NodeTable,
    PodRequest,
    PodTable,
    Spread,
    pod_requests,
    read_nodes,
    read_pods,
    run_seed,
)
from extender.simulate.published import PUBLISHED
from extender.simulate.reference import POLICY_NAMES, TieBreak, reference_policy

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "openb"
NODE_FILE = "openb_node_list_gpu_node.csv"
TRACES = ("default", "gpushare40", "gpushare100", "multigpu20", "cpu050", "gpuspec10", "gpuspec20")
CHECKED_POLICIES = ("Random", "BestFit", "FGD")


@dataclass(frozen=True, slots=True)
class Job:
    data_dir: str
    trace: str
    policy: str
    seed: int
    ties: TieBreak = "node-order"


@dataclass(frozen=True, slots=True)
class Outcome:
    trace: str
    policy: str
    seed: int
    unallocated_pct: float
    failed: int
    arrivals: int
    seconds: float


@functools.cache
def _load(data_dir: str, trace: str) -> tuple[NodeTable, PodTable, list[PodRequest]]:
    nodes = read_nodes(Path(data_dir) / NODE_FILE)
    pods = read_pods(Path(data_dir) / f"openb_pod_list_{trace}.csv")
    return nodes, pods, pod_requests(pods)


def run_job(job: Job) -> Outcome:
    nodes, pods, requests = _load(job.data_dir, job.trace)
    factory = reference_policy(job.policy, job.ties)
    result, _ = run_seed(nodes, pods, factory, job.seed, requests=requests)
    return Outcome(
        job.trace,
        job.policy,
        job.seed,
        result.unallocated_pct,
        result.failed,
        result.arrivals,
        result.seconds,
    )


def run_all(jobs: Sequence[Job], workers: int) -> list[Outcome]:
    """Run every job, `workers` processes at a time (in this process when 1)."""
    outcomes: list[Outcome] = []
    started = time.perf_counter()

    def report(done: Iterable[Outcome]) -> None:
        for outcome in done:
            outcomes.append(outcome)
            print(
                f"[{len(outcomes)}/{len(jobs)} {time.perf_counter() - started:.0f}s] "
                f"{outcome.trace} {outcome.policy} seed {outcome.seed}: "
                f"{outcome.unallocated_pct:.2f}% unallocated ({outcome.seconds:.1f}s)",
                file=sys.stderr,
                flush=True,
            )

    if workers <= 1:
        report(run_job(job) for job in jobs)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            report(pool.map(run_job, jobs))
    return outcomes


def markdown(outcomes: Sequence[Outcome], tolerance: float) -> tuple[str, list[str]]:
    """The comparison table, and the checked cells that miss the tolerance."""
    grouped: dict[tuple[str, str], list[Outcome]] = {}
    for outcome in outcomes:
        grouped.setdefault((outcome.trace, outcome.policy), []).append(outcome)
    lines = [
        "| trace | policy | ours (median) | ours (min-max) | published | difference | s/seed |",
        "|---|---|---|---|---|---|---|",
    ]
    misses: list[str] = []
    for trace in TRACES:
        for policy in POLICY_NAMES:
            runs = grouped.get((trace, policy))
            if not runs:
                continue
            spread = Spread.of([run.unallocated_pct for run in runs])
            published = PUBLISHED[trace][policy]
            diff = spread.median - published
            seconds = sum(run.seconds for run in runs) / len(runs)
            flag = ""
            if policy in CHECKED_POLICIES and abs(diff) > tolerance:
                flag = " **!**"
                misses.append(f"{trace} {policy}: {diff:+.2f}")
            lines.append(
                f"| {trace} | {policy} | {spread.median:.2f} | {spread.low:.2f}-{spread.high:.2f}"
                f" | {published:.2f} | {diff:+.2f}{flag} | {seconds:.1f} |"
            )
    seeds = sorted({outcome.seed for outcome in outcomes})
    lines.append("")
    lines.append(
        f"Unallocated GPU % at 100% arrived; seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}); "
        f"**!** = Random/BestFit/FGD more than {tolerance} points from the published median."
    )
    return "\n".join(lines), misses


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--traces", default=",".join(TRACES), help="comma-separated")
    parser.add_argument("--policies", default=",".join(POLICY_NAMES), help="comma-separated")
    parser.add_argument(
        "--seeds", default=f"{PAPER_SEEDS[0]}-{PAPER_SEEDS[-1]}", help="e.g. 42-51 or 42,43"
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--ties",
        choices=["node-order", "random"],
        default="node-order",
        help="equal scores: the reference fork's seeded node order, or upstream's random pick",
    )
    parser.add_argument("--tolerance", type=float, default=1.0, help="points, for --check")
    parser.add_argument("--check", action="store_true", help="exit 1 when a checked cell misses")
    parser.add_argument("--output", type=Path, help="also write the table here")
    parser.add_argument("--json", type=Path, help="write every seed's outcome here")
    args = parser.parse_args(argv)
    for name in args.traces.split(","):
        if name not in PUBLISHED:
            parser.error(f"unknown trace {name!r}; known: {', '.join(TRACES)}")
    for name in args.policies.split(","):
        if name not in POLICY_NAMES:
            parser.error(f"unknown policy {name!r}; known: {', '.join(POLICY_NAMES)}")
    return args


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = [
        Job(str(args.data_dir), trace, policy, seed, args.ties)
        for trace in args.traces.split(",")
        for policy in args.policies.split(",")
        for seed in parse_seeds(args.seeds)
    ]
    outcomes = run_all(jobs, args.jobs)
    table, misses = markdown(outcomes, args.tolerance)
    print(table)
    if args.output:
        args.output.write_text(table + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1), encoding="utf-8")
    if misses:
        print(f"{len(misses)} checked cell(s) off by more than {args.tolerance}:", file=sys.stderr)
        for miss in misses:
            print(f"  {miss}", file=sys.stderr)
    return 1 if args.check and misses else 0


if __name__ == "__main__":
    sys.exit(main())
