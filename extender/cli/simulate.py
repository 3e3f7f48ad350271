"""`gpuclass-extender simulate`: replay a GPU-cluster trace through our rules and others."""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from extender.errors import ExtenderError

if TYPE_CHECKING:
    from extender.simulate.runner import RunResult, Task, TimelineResult

# numpy and the simulator are imported only when `simulate` runs: `serve` never needs them.


def seeds(text: str) -> tuple[int, ...]:
    """`42-51`, `42,44` or `42`."""
    chosen: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            chosen.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seeds like 42-51 or 42,44") from None
    return tuple(chosen)


def frontier_points(text: str) -> tuple[str, ...]:
    """`0,0.5,3,hard`: separation weights (non-negative numbers), `hard`, or `policy`."""
    points = []
    for part in (p.strip() for p in text.split(",")):
        if part in ("hard", "policy"):
            points.append("" if part == "policy" else part)
            continue
        try:
            weight = float(part)
        except ValueError:
            weight = -1.0
        if not weight >= 0:
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected a separation weight >= 0, hard or policy"
            )
        points.append(f"{weight:g}")
    return tuple(points)


def models(text: str) -> tuple[str, ...]:
    from extender.simulate.models import MODEL_NAMES

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown model(s) {', '.join(unknown)} (known: {', '.join(MODEL_NAMES)})"
        )
    return names


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = sub.add_parser(
        "simulate",
        help="replay a GPU-cluster trace (openb CSV format) through our rules and others",
        description=(
            "Replays pods through each scheduling model with the FGD paper's protocol "
            "(inflate to 130%% of GPU capacity, seeded shuffle, no departures, failed pods "
            "dropped) and reports unallocated GPUs, co-location and preferred classes."
        ),
    )
    simulate.add_argument("--nodes", type=Path, required=True, help="node list CSV")
    simulate.add_argument(
        "--pods", type=Path, required=True, action="append", help="pod list CSV (repeatable)"
    )
    simulate.add_argument("--policy", type=Path, required=True, help="policy YAML")
    simulate.add_argument(
        "--models",
        type=models,
        help="comma-separated (default: all): default, default+extender, extender-profile, "
        "extender-profile-exact, random, bestfit, dotprod, gpupacking, gpuclustering, fgd",
    )
    simulate.add_argument(
        "--mode",
        choices=["paper", "timeline"],
        default="paper",
        help="paper: the FGD protocol (inflate to 130%%, no departures); timeline: pods "
        "arrive and leave at their trace times, pods that do not fit wait",
    )
    simulate.add_argument(
        "--load",
        type=float,
        default=0.4,
        help="timeline: compress arrivals so the GPUs requested by live pods average this "
        "share of the cluster while pods arrive (default 0.4, peaking near 0.8 on the openb "
        "traces; at their own pace ~0.6%%)",
    )
    simulate.add_argument(
        "--seeds", type=seeds, help="default 42-51 (paper), 42 (timeline: ties only)"
    )
    simulate.add_argument(
        "--scheduler-config",
        type=Path,
        help="KubeSchedulerConfiguration for extender-profile (default: the shipped "
        "manifests/second-scheduler/scheduler-config.yaml)",
    )
    simulate.add_argument(
        "--frontier",
        type=frontier_points,
        help="paper mode: run every model once per separation weight (comma-separated "
        "numbers, `hard` for every separation hard, `policy` for the policy as written) and "
        "report unallocated GPUs against co-location, a line per model",
    )
    simulate.add_argument("--jobs", type=int, default=1, help="parallel processes")
    simulate.add_argument(
        "--report",
        type=Path,
        help="write a Markdown report to this file, its PNG plots beside it in a folder "
        "named after it (docs/quality.md -> docs/quality/)",
    )
    simulate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from extender.simulate.models import MODEL_NAMES, OUR_MODELS, SECOND_SCHEDULER_CONFIG
    from extender.simulate.runner import Task

    command = " ".join(["gpuclass-extender", *sys.argv[1:]]) if sys.argv[1:] else "simulate"
    args.models = args.models or MODEL_NAMES
    args.seeds = args.seeds or ((42,) if args.mode == "timeline" else tuple(range(42, 52)))
    for path in (args.nodes, args.policy, *args.pods, *filter(None, [args.scheduler_config])):
        if not path.is_file():
            raise ExtenderError(f"{path}: no such file")
    config = args.scheduler_config or SECOND_SCHEDULER_CONFIG
    if args.frontier and args.mode != "paper":
        raise ExtenderError("--frontier runs the paper protocol only")
    tasks = [
        Task(model, args.nodes, pods, args.policy, seed, config, args.load, separation)
        for pods in args.pods
        for model in args.models
        for separation in args.frontier or ("",)
        for seed in args.seeds
    ]
    started = time.perf_counter()
    commit = provenance()  # of the code that runs, before anyone changes the tree
    images_to = args.report.with_suffix("") if args.report is not None else None
    if args.mode == "timeline":
        body, images = _timeline(tasks, args.jobs, images_to)
    elif args.frontier:
        body, images = _frontier(tasks, args.jobs, images_to)
    else:
        body, images = _paper(tasks, args.jobs, images_to)
    print(body)
    if args.report is not None:
        from extender.simulate.report import image_links

        text = (
            "# Simulation report\n\n"
            "Generated by `gpuclass-extender simulate`; rerun instead of editing.\n\n"
            f"- command: `{command}`\n"
            f"- commit: {commit}; finished {_now()}\n"
            f"- mode: {args.mode}"
            + (
                f", frontier: {', '.join(p or 'policy' for p in args.frontier)}"
                if args.frontier
                else ""
            )
            + f"; models: {', '.join(args.models)} (ours: "
            f"{', '.join(m for m in args.models if m in OUR_MODELS) or 'none'})\n"
            f"- seeds: {', '.join(map(str, args.seeds))}; policy: `{args.policy}`; "
            f"extender-profile: `{_shown(config)}`\n"
            f"- took {time.perf_counter() - started:.0f} s with {args.jobs} process(es)\n\n"
            + body
            + "\n"
            + image_links(images, args.report.parent)
        )
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
        print(f"wrote {args.report}", file=sys.stderr)
    print(f"{len(tasks)} runs in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


def provenance() -> str:
    """The commit of the code that ran, marked when `extender/` differs from it."""
    package = Path(__file__).resolve().parents[1]

    def git(*argv: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(package), *argv], capture_output=True, text=True, timeout=30
            )
        except OSError:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if commit is None:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--", str(package))
    return commit + (" (extender/ modified)" if dirty else "")


def _shown(path: Path) -> str:
    """A path as a reader of the report can use it: relative to here when it is below."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _say(done: int, total: int, text: str) -> None:
    print(f"[{done}/{total}] {text}", file=sys.stderr, flush=True)


def _paper(tasks: list[Task], jobs: int, images_to: Path | None) -> tuple[str, list[Path]]:
    from extender.simulate.report import goals_table, plot, summarise, table, write_curves
    from extender.simulate.runner import run_all, run_task

    def progress(done: int, r: RunResult) -> None:
        _say(
            done,
            len(tasks),
            f"{r.trace} {r.model} seed {r.seed}: {r.unallocated_pct:.2f}% unallocated, "
            f"{r.colocated_pct:.1f}% co-located ({r.seconds:.1f} s)",
        )

    summaries = summarise(run_all(tasks, run_task, jobs, progress))
    goals = goals_table(summaries)
    body = (f"**Goals** (medians of seeds)\n\n{goals}\n" if goals else "") + table(summaries)
    if images_to is None:
        return body, []
    curves = write_curves(summaries, images_to)
    note = (
        f"Allocation at every arrived percent: [{curves.name}]({images_to.name}/{curves.name}).\n"
    )
    return body + "\n" + note, plot(summaries, images_to)


def _frontier(tasks: list[Task], jobs: int, images_to: Path | None) -> tuple[str, list[Path]]:
    from extender.simulate.report import frontier_table, plot_frontier, summarise
    from extender.simulate.runner import run_all, run_task

    def progress(done: int, r: RunResult) -> None:
        _say(
            done,
            len(tasks),
            f"{r.trace} {r.model} separation {r.separation or 'policy'} seed {r.seed}: "
            f"{r.unallocated_pct:.2f}% unallocated, {r.colocated_pct:.1f}% co-located",
        )

    summaries = summarise(run_all(tasks, run_task, jobs, progress))
    body = frontier_table(summaries)
    return body, plot_frontier(summaries, images_to) if images_to else []


def _timeline(tasks: list[Task], jobs: int, images_to: Path | None) -> tuple[str, list[Path]]:
    from extender.simulate.report import plot_timelines, timeline_table
    from extender.simulate.runner import run_all, run_timeline_task

    def progress(done: int, r: TimelineResult) -> None:
        _say(
            done,
            len(tasks),
            f"{r.trace} {r.model} seed {r.seed}: {r.timeline.placed} placed, "
            f"{r.timeline.never_placed} never ({r.seconds:.1f} s)",
        )

    results = run_all(tasks, run_timeline_task, jobs, progress)
    return timeline_table(results), plot_timelines(results, images_to) if images_to else []
