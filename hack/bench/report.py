"""The machine description and the Markdown tables of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata

import localcluster

from bench import REPO
from bench.doctor import DoctorRow
from bench.e2e import SHIPPED, E2EResult, E2ERun
from bench.inprocess import Profile
from bench.latency import LatencyRow
from bench.memory import MemoryRow
from bench.stats import spread


def _cpuinfo() -> tuple[str, int]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return model, os.cpu_count() or 0


def _memory_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return "not found"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def machine() -> dict[str, str]:
    model, cores = _cpuinfo()
    bins = localcluster.default_bin_dir()
    etcd = localcluster.find_etcd()
    commit = _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _version(["git", "-C", str(REPO), "status", "--porcelain", "--", "extender"])
    libs = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("aiohttp", "uvloop", "msgspec", "orjson")
    )
    return {
        "CPU": f"{model}, {cores} cores",
        "memory": f"{_memory_gib():.1f} GiB",
        "kernel": platform.release(),
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "libraries": libs,
        "Kubernetes": f"kube-scheduler {_version([str(bins / 'kube-scheduler'), '--version'])}, "
        f"kube-apiserver {_version([str(bins / 'kube-apiserver'), '--version'])}",
        "etcd": _version([str(etcd), "--version"]) if etcd else "not found",
        "commit": commit + (" (extender/ modified)" if dirty not in ("", "unknown") else ""),
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def latency_table(rows: Sequence[LatencyRow]) -> str:
    header = [
        "mode",
        "nodes",
        "verb",
        "c",
        "ours p50 ms",
        "ours p99 ms",
        "ours p99.9 ms",
        "ours req/s",
        "floor p50 ms",
        "floor p99 ms",
        "floor req/s",
        "p99 ours/floor",
        "req/s ours/floor",
        "n",
    ]
    body = [
        [
            r.mode,
            f"{r.nodes:,}",
            r.verb,
            str(r.concurrency),
            r.figure("ours", "p50").fmt(),
            r.figure("ours", "p99").fmt(),
            r.figure("ours", "p999").fmt(),
            r.figure("ours", "rps").fmt(0),
            r.figure("floor", "p50").fmt(),
            r.figure("floor", "p99").fmt(),
            r.figure("floor", "rps").fmt(0),
            r.ratio("p99").fmt(1),
            r.ratio("rps").fmt(2),
            str(r.samples()),
        ]
        for r in rows
    ]
    return _table(header, body)


def inprocess_table(rows: Sequence[dict[str, object]]) -> str:
    sizes = sorted({int(str(r["nodes"])) for r in rows})
    keys: list[tuple[str, str]] = []
    for r in rows:
        stage = str(r["stage"]).split(" (")[0] if "filter_nodes" in str(r["stage"]) else r["stage"]
        key = (str(r["pod"]), str(stage))
        if key not in keys:
            keys.append(key)
    cells: dict[tuple[str, str, int], str] = {}
    for r in rows:
        stage = str(r["stage"]).split(" (")[0] if "filter_nodes" in str(r["stage"]) else r["stage"]
        seconds = r["seconds"]
        assert isinstance(seconds, list)
        cells[(str(r["pod"]), str(stage), int(str(r["nodes"])))] = spread(
            [s * 1000 for s in seconds]
        ).fmt(3)
    header = ["pod", "stage", *[f"{n:,} nodes (ms)" for n in sizes]]
    body = [[pod, stage, *[cells.get((pod, stage, n), "") for n in sizes]] for pod, stage in keys]
    return _table(header, body)


def profile_section(profile: Profile) -> str:
    busy = profile.busy or 1.0
    groups = sorted(profile.groups.items(), key=lambda kv: -kv[1])
    group_rows = [[name, f"{100 * s / busy:.1f}%"] for name, s in groups]
    top_rows = [[name, f"{100 * s / busy:.1f}%"] for name, s in profile.top]
    rel = profile.text_path.relative_to(REPO)
    return "\n\n".join(
        [
            f"pyinstrument, {profile.nodes:,} nodes, cache mode, filter then prioritize for equal "
            f"times (concurrency 1, both probe pods), sampled over the serving process: "
            f"{profile.total:.1f} s, of which {profile.busy:.1f} s busy (the rest waits for "
            f"the next request). Full call tree: `{rel}` (regenerated by every run).",
            "Self time by package (share of busy time):",
            _table(["package", "self time"], group_rows),
            "Busiest functions (self time, share of busy time):",
            _table(["function", "self time"], top_rows),
        ]
    )


def doctor_table(rows: Sequence[DoctorRow]) -> str:
    lines = [
        "| nodes | filter p99 quiet ms | while doctor runs ms | ratio | reports per run | "
        "s per report |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        quiet = spread([r.p99 for r in row.quiet])
        busy = spread([r.p99 for r in row.busy])
        lines.append(
            f"| {row.nodes:,} | {quiet.fmt(2)} | {busy.fmt(2)} | {row.ratio().fmt(2)} | "
            f"{spread(row.reports).fmt(0)} | {spread(row.report_seconds).fmt(1)} |"
        )
    return "\n".join(lines)


def memory_table(rows: Sequence[MemoryRow]) -> str:
    header = ["nodes", "pods cached", "RSS idle MiB", "RSS after traffic MiB", "peak (VmHWM) MiB"]
    body = [
        [
            f"{r.nodes:,}",
            f"{r.pods:,}",
            r.figure("idle").fmt(0),
            r.figure("loaded").fmt(0),
            r.figure("peak").fmt(0),
        ]
        for r in rows
    ]
    return _table(header, body)


def _extender_cpu(run: E2ERun) -> float | None:
    return run.extender_cpu_ms_per_pod


def _apiserver_cpu(run: E2ERun) -> float | None:
    return run.apiserver_cpu_ms_per_pod


# Issue 17's goals, fixed before any run: the shipped configuration against the floor.
GOAL_RATE = 0.90  # pods/s, at least this share of the floor's, at 1,000 and 5,000 nodes
GOAL_EXTENDER_CPU = 2.0  # extender CPU per bound pod, at most this many times the floor's
GOAL_APISERVER_CPU = 1.1  # apiserver + etcd CPU per bound pod, at most this times the floor's
GOAL_P99 = 1.5  # cache-mode verb p99, at most this times the floor's
GOAL_RSS_MIB = 200  # at 15,000 nodes / 150,000 pods
GOAL_READY_SECONDS = 3.0  # at 5,000 nodes
GOAL_DOCTOR_P99 = 1.10  # filter p99 while doctor runs, at most this times quiet (issue 19)


def _verdict(value: float, limit: float, at_least: bool = False) -> str:
    if value != value:  # NaN: not measured
        return "not measured"
    met = value >= limit if at_least else value <= limit
    return "met" if met else "**not met**"


def goals_table(report: Report) -> str:
    """One row per goal of issue 17 and size: the figure (median of repeats), the limit,
    and whether the median meets it."""
    rows: list[list[str]] = []
    for res in report.e2e or []:
        configs = {r.config for r in res.runs}
        if not {SHIPPED, "floor"} <= configs:
            continue
        size = f"{res.nodes:,} nodes"
        for name, value, limit, at_least in (
            ("pods/s vs floor", res.ratio(SHIPPED, "floor"), GOAL_RATE, True),
            (
                "extender CPU per pod vs floor",
                res.ratio(SHIPPED, "floor", _extender_cpu),
                GOAL_EXTENDER_CPU,
                False,
            ),
            (
                "apiserver+etcd CPU per pod vs floor",
                res.ratio(SHIPPED, "floor", _apiserver_cpu),
                GOAL_APISERVER_CPU,
                False,
            ),
        ):
            sign = ">=" if at_least else "<="
            rows.append(
                [
                    f"{name} (end to end)",
                    size,
                    value.fmt(2),
                    f"{sign} {limit:g}",
                    _verdict(value.median, limit, at_least),
                ]
            )
        if "floor+bind" in configs:
            # No limit: what the one Binding call costs the floor, a bound on the CPU goal
            # for any extender that binds.
            bound = res.ratio("floor+bind", "floor", _extender_cpu)
            rows.append(
                [
                    "extender CPU per pod, floor+bind vs floor: the Binding call alone",
                    size,
                    bound.fmt(2),
                    "-",
                    "bounds the extender CPU goal",
                ]
            )
        if {"floor+bind", "watching"} <= configs:
            # What an extender that binds and keeps a watched cache pays before any verb
            # work: the Binding call, and the watch's events for the pods bound.
            least = res.sum_ratio(("floor+bind", "watching"), "floor", _extender_cpu)
            rows.append(
                [
                    "extender CPU per pod, floor+bind plus watching vs floor: the Binding "
                    "call and a watched cache",
                    size,
                    least.fmt(2),
                    "-",
                    "bounds the extender CPU goal for a cached extender",
                ]
            )
        if res.nodes == 5000 and res.ready().values:
            ready = res.ready()
            rows.append(
                [
                    "ready (start to /readyz 200)",
                    size,
                    f"{ready.fmt(2)} s",
                    f"<= {GOAL_READY_SECONDS:g} s",
                    _verdict(ready.median, GOAL_READY_SECONDS),
                ]
            )
    for row in report.latency or []:
        if row.mode != "cache":
            continue
        ratio = row.ratio("p99")
        rows.append(
            [
                f"{row.verb} p99 vs floor, c={row.concurrency}",
                f"{row.nodes:,} nodes",
                ratio.fmt(1),
                f"<= {GOAL_P99:g}",
                _verdict(ratio.median, GOAL_P99),
            ]
        )
    for doc in report.doctor or []:
        ratio = doc.ratio()
        rows.append(
            [
                "filter p99 while /debug/doctor runs vs quiet (issue 19)",
                f"{doc.nodes:,} nodes",
                ratio.fmt(2),
                f"<= {GOAL_DOCTOR_P99:g}",
                _verdict(ratio.median, GOAL_DOCTOR_P99),
            ]
        )
    for mem in report.memory or []:
        if mem.nodes == 15000:
            peak = mem.figure("peak")
            rows.append(
                [
                    "RSS peak",
                    f"{mem.nodes:,} nodes / {mem.pods:,} pods",
                    f"{peak.fmt(0)} MiB",
                    f"<= {GOAL_RSS_MIB} MiB",
                    _verdict(peak.median, GOAL_RSS_MIB),
                ]
            )
    return _table(["goal", "size", "figure", "limit", "verdict"], rows) if rows else ""


def cpu_profile_section(results: Sequence[E2EResult]) -> str:
    """Per category, the CPU ms per pod of each profiled configuration."""
    parts = []
    for res in results:
        if not res.profiles:
            continue
        configs = [profile.config for _, profile in res.profiles]
        categories = list(dict.fromkeys(c for _, profile in res.profiles for c in profile.shares))
        rows = []
        for category in categories:
            row = [category]
            for run, profile in res.profiles:
                share = profile.shares.get(category, 0.0)
                per_pod = share * (run.extender_cpu_ms_per_pod or 0.0)
                row.append(f"{per_pod:.2f} ({100 * share:.0f}%)")
            rows.append(row)
        rows.append(
            ["all (the run's extender CPU per pod)"]
            + [f"{(run.extender_cpu_ms_per_pod or 0.0):.2f}" for run, _ in res.profiles]
        )
        header = ["where", *(f"{c} ms/pod (share)" for c in configs)]
        files = ", ".join(
            f"`{p.raw_path.relative_to(REPO)}`" for _, p in res.profiles if p.raw_path
        )
        samples = ", ".join(f"{p.config} {p.samples:,}" for _, p in res.profiles)
        parts.append(
            f"**{res.nodes:,} nodes, {res.pods:,} pods**, one extra run per configuration "
            f"(not in the tables above), samples: {samples}. Collapsed stacks: {files}.\n\n"
            + _table(header, rows)
        )
    return "\n\n".join(parts)


def e2e_tables(results: Sequence[E2EResult]) -> str:
    parts = []
    for res in results:
        header = [
            "config",
            "pods/s",
            "vs alone",
            "vs floor",
            "extender CPU ms/pod",
            "vs floor",
            "scheduler CPU ms/pod",
            "apiserver+etcd CPU ms/pod",
            "vs floor",
        ]
        configs = list(dict.fromkeys(r.config for r in res.runs))
        has_floor = "floor" in configs
        body = []
        for config in configs:
            runs = [r for r in res.runs if r.config == config]
            body.append(
                [
                    config,
                    res.rates(config).fmt(1),
                    res.ratio(config, "alone").fmt(2) if "alone" in configs else "-",
                    res.ratio(config, "floor").fmt(2) if "floor" in configs else "-",
                    res.cpu_per_pod(config).fmt(2),
                    res.ratio(config, "floor", _extender_cpu).fmt(2) if has_floor else "-",
                    spread([r.scheduler_cpu_ms_per_pod for r in runs]).fmt(2),
                    spread([r.apiserver_cpu_ms_per_pod for r in runs]).fmt(2),
                    res.ratio(config, "floor", _apiserver_cpu).fmt(2) if has_floor else "-",
                ]
            )
        unbound = sum(r.pods - r.bound for r in res.runs)
        evaluated = max((r.evaluated for r in res.runs), default=0)
        title = (
            f"**{res.nodes:,} nodes, {res.pods:,} pods per run** "
            f"({len(res.runs) // max(1, len(configs))} repeats; scheduler evaluated "
            f"{evaluated:,} nodes per pod"
            + (f"; {unbound} pods NOT bound before the deadline" if unbound else "")
            + ")"
        )
        parts.append(title + "\n\n" + _table(header, body))
    ready = [
        [
            f"{res.nodes:,}",
            f"{res.pods:,} (pending)",
            res.ready().fmt(2),
            str(len(res.ready().values)),
        ]
        for res in results
        if res.ready().values
    ]
    if ready:
        parts.append(
            "Our extender, start of `gpuclass-extender serve` to `/readyz` 200 (process "
            "start, imports, List of nodes and pods):\n\n"
            + _table(["nodes", "pods in the cluster", "seconds", "samples"], ready)
        )
    return "\n\n".join(parts)


@dataclass
class Report:
    command: str
    started: str
    seconds: float = 0.0
    machine: dict[str, str] = field(default_factory=dict)
    latency: list[LatencyRow] | None = None
    inprocess: list[dict[str, object]] | None = None
    profile: Profile | None = None
    memory: list[MemoryRow] | None = None
    e2e: list[E2EResult] | None = None
    doctor: list[DoctorRow] | None = None
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        out = [
            "# Benchmarks",
            "",
            "Generated by `hack/bench` (issue 6); do not edit by hand, rerun instead. Every "
            "figure is the median of its repeats with [min-max]; ratios are taken per repeat "
            "from runs made back to back in the same run, then summarised the same way. "
            "Machines are noisy: compare ratios, not absolute figures across days.",
            "",
            f"- date: {self.started} (took {self.seconds / 60:.1f} min)",
            f"- command: `{self.command}`",
        ]
        out += [f"- {k}: {v}" for k, v in self.machine.items()]
        goals = goals_table(self)
        if goals:
            out += [
                "",
                "## Goals (issue 17)",
                "",
                "The shipped configuration against the floor extender, with limits fixed "
                "before the run (hack/bench/report.py); a verdict reads the median.",
                "",
                goals,
            ]
        if self.latency is not None:
            out += [
                "",
                "## 1. Verb latency over loopback HTTP",
                "",
                "Closed loop, `c` keep-alive connections from a separate load-generator "
                "process (bench/loadgen.py); latency from the first byte sent to the last "
                "byte read. *ours*: create_app + AppRunner + uvloop as `serve` runs it, cache "
                "filled with 10 GPU pods per node (54% bound, 1/3 interactive; the rest "
                "pending); *floor*: bench/floor.py, the do-nothing extender of "
                "performance-notes.md (plus full-Node and bind answers). Filter and "
                "prioritize name all N nodes (cache mode: NodeNames, in one of 4 shuffled orders "
                "per request, as kube-scheduler names the nodes in the order its parallel "
                "checks finished; full mode: ~8 KB Node objects) and alternate an interactive "
                "and a batch pod (~2.7 KB each). Bind "
                "uses a no-op binder. `n` = fewest samples behind one ours figure: p99.9 "
                "needs n >= 1000 to mean more than the maximum.",
                "",
                latency_table(self.latency),
            ]
        if self.inprocess is not None:
            out += [
                "",
                "## 2. In-process cost per verb (no HTTP)",
                "",
                "The same cache and bodies, in one process (bench/inprocess.py): each stage "
                "is the public function the handler calls, on the nodes in node order; "
                "*handler* is the aiohttp handler coroutine awaited on a stub request "
                "(everything but HTTP parsing/writing), with the nodes in a shuffled order "
                "that changes every call, as from kube-scheduler.",
                "",
                inprocess_table(self.inprocess),
            ]
        if self.profile is not None:
            out += ["", "### Profile", "", profile_section(self.profile)]
        if self.memory is not None:
            out += [
                "",
                "## 3. Memory (RSS of a serve-equivalent process)",
                "",
                "bench/server.py: the modules `serve` imports (kubernetes-asyncio included), "
                "create_app, and a cache decoded from JSON pages of 500 as the List does; "
                "10 GPU pods per node, so 15,000 nodes means 150,000 pods. 0 nodes is the "
                "process with nothing cached.",
                "",
                memory_table(self.memory),
            ]
        if self.e2e is not None:
            out += [
                "",
                "## 4. End to end: real kube-scheduler v1.36.3 on the local control plane",
                "",
                "etcd, kube-apiserver, kube-scheduler and the extender on the same cores "
                "(hack/localcluster.py). Fake nodes with 8 GPUs each, one-GPU pods (1/3 "
                "interactive); pods are created while no scheduler runs, then the scheduler "
                'starts and the rate is (pods - 1) / (last - first "Successfully bound" '
                "line of its log). All configs use the shipped scheduler config "
                "(percentageOfNodesToScore 100) with clientConnection qps/burst raised to "
                "5000 (as scheduler_perf does; at the default 50 every config binds ~50-70 "
                "pods/s). *alone*: no extenders block; *watching*: the same, with `serve` running "
                "beside it, called by no one: its CPU is what keeping the cache from the "
                "watch costs per pod bound; *floor*: the floor extender, filter + "
                "prioritize; *floor+bind*: the floor binding too, with the one API call a "
                "bind needs (the bound on any extender with a bind verb); *ours*: "
                "`gpuclass-extender serve`, filter + prioritize; "
                "*shipped*: the shipped config (bind too); *shipped+scored-events*: the "
                "same with `serve --scored-events` (an Event per pod). Order rotates every "
                "repeat; "
                "ratios are per repeat. CPU ms/pod: the process's CPU time while the "
                "scheduler ran, per bound pod (scheduler start-up included).",
                "",
                e2e_tables(self.e2e),
            ]
            profiles = cpu_profile_section(self.e2e)
            if profiles:
                out += [
                    "",
                    "### Where the extender's CPU goes, end to end",
                    "",
                    "py-spy (hack/bench/cpuprofile.py) samples the extender while the "
                    "scheduler places the pods, when it is not idle, natively (the "
                    "kernel's send and C libraries count on the Python line that called "
                    "them); each sample falls in the first category its stack matches; "
                    "share x the run's CPU per pod = ms per pod. Not idle includes runnable "
                    "but waiting for a core: on 2 cores, an answer's send wakes the "
                    "scheduler, which often takes the core, and those samples land on the "
                    "send, so *answers written* overstates what writing costs (`perf stat` on "
                    "the extender during a run gives its system time, every send included).",
                    "",
                    profiles,
                ]
        if self.doctor is not None:
            out += [
                "",
                "## 5. Filter latency while the doctor runs",
                "",
                "bench/doctor.py: one bench/server.py process with `--doctor` serves /filter "
                "from its cache and /debug/doctor from a listing of the same nodes and pods, "
                "decoded and checked in the worker process `serve` uses (niceness 10). "
                "/filter, cache mode, c=1, alternately quiet and while a client asks for "
                "one report after another; ratio per repeat.",
                "",
                doctor_table(self.doctor),
            ]
        if self.notes:
            out += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"
