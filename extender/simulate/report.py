"""What `simulate` tells a person: a table per trace, a Markdown report and PNG plots."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extender.simulate.protocol import Spread
from extender.simulate.published import PUBLISHED
from extender.simulate.runner import RunResult, TimelineResult


def fmt(spread: Spread, digits: int = 2) -> str:
    """`median [min-max]`, or the median alone when every seed agrees; `-` for no value."""
    if math.isnan(spread.median):
        return "-"
    if spread.low == spread.high:
        return f"{spread.median:.{digits}f}"
    return f"{spread.median:.{digits}f} [{spread.low:.{digits}f}-{spread.high:.{digits}f}]"


@dataclass(frozen=True, slots=True)
class Summary:
    """One model on one trace, over its seeds."""

    trace: str
    model: str
    seeds: int
    unallocated: Spread
    colocated: Spread
    gpu_colocated: Spread
    preferred: Spread
    failed: Spread
    seconds: Spread
    curve: tuple[float, ...]  # median allocation % at each arrived percent
    separation: str = ""  # the frontier point: separation weight, `hard`, or the policy's

    @property
    def published_fgd(self) -> float | None:
        return PUBLISHED.get(self.trace, {}).get("FGD")

    @property
    def published(self) -> float | None:
        """The paper's median for this very policy, when it is one of the references."""
        name = {n.lower(): n for n in PUBLISHED.get(self.trace, {})}.get(self.model)
        return PUBLISHED[self.trace][name] if name else None


def summarise(results: Sequence[RunResult]) -> list[Summary]:
    """Per (trace, model), in the order they first appear."""
    groups: dict[tuple[str, str, str], list[RunResult]] = {}
    for result in results:
        groups.setdefault((result.trace, result.model, result.separation), []).append(result)
    summaries = []
    for (trace, model, separation), runs in groups.items():
        curves = np.array([r.curve for r in runs], dtype=np.float64)
        with warnings.catch_warnings():  # a percent no arrival rounded to stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            median_curve = np.nanmedian(curves, axis=0)
        summaries.append(
            Summary(
                trace=trace,
                model=model,
                seeds=len(runs),
                unallocated=Spread.of([r.unallocated_pct for r in runs]),
                colocated=Spread.of([r.colocated_pct for r in runs]),
                gpu_colocated=Spread.of([r.gpu_colocated_pct for r in runs]),
                preferred=_spread_of_known([r.preferred_pct for r in runs]),
                failed=Spread.of([float(r.failed) for r in runs]),
                seconds=Spread.of([r.seconds for r in runs]),
                curve=tuple(float(x) for x in median_curve),
                separation=separation,
            )
        )
    return summaries


def _spread_of_known(values: Sequence[float]) -> Spread:
    known = [v for v in values if not math.isnan(v)]
    return Spread.of(known) if known else Spread(math.nan, math.nan, math.nan)


HEADER = (
    "| model | unallocated GPU % at 100% arrived | published | interactive GPUs co-located "
    "with batch on a node % | on a shared GPU % | interactive on a preferred class % "
    "| failed pods | s/seed |"
)


def table(summaries: Sequence[Summary]) -> str:
    """Markdown tables, one per trace, medians over seeds with [min-max]."""

    def title(s: Summary) -> str:
        fgd = s.published_fgd
        return f"{s.seeds} seeds" + (f"; FGD's published median {fgd:.2f}" if fgd else "")

    def row(s: Summary) -> str:
        published = f"{s.published:.2f}" if s.published is not None else "-"
        return (
            f"| {s.model} | {fmt(s.unallocated)} | {published} | {fmt(s.colocated, 1)} "
            f"| {fmt(s.gpu_colocated, 1)} | {fmt(s.preferred, 1)} | {fmt(s.failed, 0)} "
            f"| {fmt(s.seconds, 1)} |"
        )

    return _per_trace(summaries, HEADER, title, row)


def _per_trace(
    summaries: Sequence[Summary],
    header: str,
    title: Callable[[Summary], str],
    row: Callable[[Summary], str],
) -> str:
    """A titled table per trace, a row per summary, in the order the traces came."""
    lines: list[str] = []
    for trace in dict.fromkeys(s.trace for s in summaries):
        rows = [s for s in summaries if s.trace == trace]
        lines += [f"**{trace}** ({title(rows[0])})", "", header]
        lines.append("|" + "---|" * header.count(" | ") + "---|")
        lines += [row(s) for s in rows]
        lines.append("")
    return "\n".join(lines)


def plot(summaries: Sequence[Summary], directory: Path) -> list[Path]:
    """Per trace: allocation ratio vs arrived GPU % (a line per model), and co-location per
    model (bars). Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for trace in dict.fromkeys(s.trace for s in summaries):
        rows = [s for s in summaries if s.trace == trace]
        figure, (curves, bars) = plt.subplots(1, 2, figsize=(13, 4.8), width_ratios=[3, 2])
        for s in rows:
            x = np.arange(len(s.curve))
            curves.plot(x, s.curve, label=s.model, linewidth=1.2)
        top = len(rows[0].curve) - 1
        curves.plot([0, 100, top], [0, 100, 100], color="grey", linestyle=":", linewidth=0.8)
        curves.set_xlabel("arrived GPU request, % of cluster GPUs")
        curves.set_ylabel("GPUs allocated, %")
        curves.set_xlim(60, top)
        curves.set_ylim(55, 100)
        curves.axvline(100, color="grey", linewidth=0.6)
        curves.legend(fontsize=7, loc="lower right")
        curves.set_title(f"{trace}: allocation (median of seeds)")
        names = [s.model for s in rows]
        bars.barh(names, [s.colocated.median for s in rows], color="tab:orange")
        bars.set_xlabel("interactive GPUs on nodes with batch pods, %")
        bars.invert_yaxis()
        bars.tick_params(axis="y", labelsize=7)
        bars.set_title("co-location")
        figure.tight_layout()
        path = directory / f"{trace}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def image_links(images: Sequence[Path], relative_to: Path) -> str:
    parts = []
    for image in images:
        parts.append(f"![{image.stem}]({image.relative_to(relative_to).as_posix()})")
        parts.append("")
    return "\n".join(parts)


TIMELINE_HEADER = (
    "| model | seed | pods placed | still pending at the end | mean wait s | mean pending "
    "| max pending | mean co-located % | s |"
)


def timeline_table(results: Sequence[TimelineResult]) -> str:
    """Per trace, one row per (model, seed) of a time-ordered replay."""
    lines: list[str] = []
    for trace in dict.fromkeys(r.trace for r in results):
        speedup = next(r.timeline.speedup for r in results if r.trace == trace)
        lines += [
            f"**{trace}** (time-ordered: pods leave, pods that do not fit wait; arrivals "
            f"{speedup:.0f}x faster than recorded)",
            "",
        ]
        lines += [TIMELINE_HEADER, "|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in results if r.trace == trace):
            samples = r.timeline.samples
            pending = [s.pending for s in samples] or [0]
            colocated = [s.colocated_pct for s in samples] or [0.0]
            lines.append(
                f"| {r.model} | {r.seed} | {r.timeline.placed} | {r.timeline.never_placed} "
                f"| {r.timeline.mean_wait_seconds:.0f} | {np.mean(pending):.1f} "
                f"| {max(pending)} | {np.mean(colocated):.1f} | {r.seconds:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_timelines(results: Sequence[TimelineResult], directory: Path) -> list[Path]:
    """Per trace: pending pods and co-location over trace time, a line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for trace in dict.fromkeys(r.trace for r in results):
        figure, (pending, colocated) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
        for r in (r for r in results if r.trace == trace):
            hours = [s.time / 3600 for s in r.timeline.samples]
            label = f"{r.model} (seed {r.seed})"
            pending.plot(hours, [s.pending for s in r.timeline.samples], label=label, lw=1)
            colocated.plot(hours, [s.colocated_pct for s in r.timeline.samples], label=label, lw=1)
        pending.set_ylabel("pods pending")
        pending.set_title(f"{trace}: time-ordered replay")
        pending.legend(fontsize=7)
        colocated.set_ylabel("interactive GPUs on nodes with batch, %")
        colocated.set_xlabel("trace time, hours")
        figure.tight_layout()
        path = directory / f"{trace}-timeline.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def write_curves(summaries: Sequence[Summary], directory: Path) -> Path:
    """The allocation at every arrived percent, per trace and model (median of seeds), as
    CSV: the numbers behind the plots."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "allocation.csv"
    width = max(len(s.curve) for s in summaries)
    rows = ["trace,model," + ",".join(f"arrived_{p}" for p in range(width))]
    for s in summaries:
        cells = ["" if math.isnan(x) else f"{x:.3f}" for x in s.curve]
        rows.append(",".join([s.trace, s.model, *cells]))
    path.write_text("\n".join(rows) + "\n")
    return path


FRONTIER_HEADER = (
    "| model | separation weight | unallocated GPU % at 100% arrived | interactive GPUs "
    "co-located with batch on a node % | on a shared GPU % | interactive on a preferred "
    "class % |"
)


def frontier_table(summaries: Sequence[Summary]) -> str:
    """Per trace, each model at each separation weight: the points of the frontier."""

    def row(s: Summary) -> str:
        return (
            f"| {s.model} | {s.separation or 'policy'} | {fmt(s.unallocated)} "
            f"| {fmt(s.colocated, 1)} | {fmt(s.gpu_colocated, 1)} | {fmt(s.preferred, 1)} |"
        )

    return _per_trace(summaries, FRONTIER_HEADER, lambda s: f"{s.seeds} seeds", row)


def plot_frontier(summaries: Sequence[Summary], directory: Path) -> list[Path]:
    """Per trace: unallocated GPUs against co-location, a line per model through its
    separation weights (medians of seeds), each point labelled with its weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for trace in dict.fromkeys(s.trace for s in summaries):
        figure, axes = plt.subplots(figsize=(7.5, 5.2))
        for model in dict.fromkeys(s.model for s in summaries if s.trace == trace):
            points = [s for s in summaries if s.trace == trace and s.model == model]
            x = [s.colocated.median for s in points]
            y = [s.unallocated.median for s in points]
            axes.plot(x, y, marker="o", linewidth=1.2, label=model)
            for s, px, py in zip(points, x, y, strict=True):
                axes.annotate(
                    s.separation, (px, py), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
        axes.set_xlabel("interactive GPUs on nodes with batch pods, %")
        axes.set_ylabel("unallocated GPUs at 100% arrived, %")
        axes.set_title(f"{trace}: separation weight swept (median of seeds)")
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        path = directory / f"{trace}-frontier.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


# The placement goals (issue: "keep interactive and batch apart without stranding GPUs"),
# fixed here before any run and judged on medians of seeds.
GOAL_OURS = "extender-profile"
GOAL_BASELINE = "default"
GOAL_BOUND = "fgd+wishes"
GOAL_COLOCATION_FACTOR = 5.0
GOAL_PREFERRED_PCT = 95.0


def goals_table(summaries: Sequence[Summary]) -> str:
    """Each goal's figure per trace, ours against the default scheduler (and the bound),
    with a verdict: the section of the report a person reads first."""
    lines = [
        "| trace | unallocated: ours / default / bound (goal: ours <= default) "
        "| co-located on a node: default / ours (goal: >= 5x less) "
        "| on a shared GPU: ours (goal: 0) "
        "| interactive on a preferred class: ours (goal: >= 95%) |",
        "|---|---|---|---|---|",
    ]
    by = {(s.trace, s.model): s for s in summaries}
    for trace in dict.fromkeys(s.trace for s in summaries):
        ours, base = by.get((trace, GOAL_OURS)), by.get((trace, GOAL_BASELINE))
        if ours is None or base is None:
            continue
        bound = by.get((trace, GOAL_BOUND))
        unallocated = (
            f"{ours.unallocated.median:.2f} / {base.unallocated.median:.2f} / "
            + (f"{bound.unallocated.median:.2f}" if bound else "-")
            + _verdict(ours.unallocated.median <= base.unallocated.median)
        )
        if base.colocated.median > 0:
            factor = base.colocated.median / max(ours.colocated.median, 1e-9)
            shown = f"{factor:.1f}x" if ours.colocated.median > 0 else "all"
            colocated = (
                f"{base.colocated.median:.1f} / {ours.colocated.median:.1f} ({shown} less)"
                + _verdict(factor >= GOAL_COLOCATION_FACTOR)
            )
        else:
            colocated = "no interactive and batch pods to keep apart"
        shared = f"{ours.gpu_colocated.median:.1f}" + _verdict(ours.gpu_colocated.median == 0)
        preferred = (
            "no interactive pod had a preferred class with room"
            if math.isnan(ours.preferred.median)
            else f"{ours.preferred.median:.1f}"
            + _verdict(ours.preferred.median >= GOAL_PREFERRED_PCT)
        )
        lines.append(f"| {trace} | {unallocated} | {colocated} | {shared} | {preferred} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def _verdict(met: bool) -> str:
    return " met" if met else " **not met**"
