"""`gpuclass-extender simulate`: replay a GPU-cluster trace through our rules and others."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from extender.errors import ExtenderError

if TYPE_CHECKING:
    from extender.simulate.runner import RunResult

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
    simulate.add_argument("--seeds", type=seeds, default="42-51", help="default 42-51")
    simulate.add_argument("--jobs", type=int, default=1, help="parallel processes")
    simulate.add_argument("--report", type=Path, help="write report.md and PNG plots here")
    simulate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from extender.simulate.models import MODEL_NAMES, OUR_MODELS
    from extender.simulate.report import markdown, plot, summarise, table
    from extender.simulate.runner import Task, run_all

    args.models = args.models or MODEL_NAMES
    for path in (args.nodes, args.policy, *args.pods):
        if not path.is_file():
            raise ExtenderError(f"{path}: no such file")
    tasks = [
        Task(model, args.nodes, pods, args.policy, seed)
        for pods in args.pods
        for model in args.models
        for seed in args.seeds
    ]
    started = time.perf_counter()

    def progress(done: int, result: RunResult) -> None:
        print(
            f"[{done}/{len(tasks)}] {result.trace} {result.model} seed {result.seed}: "
            f"{result.unallocated_pct:.2f}% unallocated, {result.colocated_pct:.1f}% "
            f"co-located ({result.seconds:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    results = run_all(tasks, jobs=args.jobs, progress=progress)
    summaries = summarise(results)
    print(table(summaries))
    if args.report is not None:
        images = plot(summaries, args.report)
        text = (
            "# Simulation report\n\n"
            f"Command: `gpuclass-extender simulate` with models {', '.join(args.models)}; "
            f"seeds {args.seeds[0]}..{args.seeds[-1]}; policy {args.policy}. "
            f"Our models: {', '.join(m for m in args.models if m in OUR_MODELS)}.\n\n"
            + markdown(summaries, images, args.report)
        )
        (args.report / "report.md").write_text(text)
        print(f"wrote {args.report / 'report.md'}", file=sys.stderr)
    print(f"{len(tasks)} runs in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0
