"""`make bench`: run the benchmark suite, print the tables, write docs/benchmarks.md.

    PYTHONPATH=hack .venv/bin/python -m bench [--quick] [--only latency,inprocess,memory,e2e]

The full run (about 20 minutes on 2 cores) writes docs/benchmarks.md; a --quick or --only
run writes hack/bench/out/benchmarks.md instead, unless --out says otherwise. Raw figures
go to hack/bench/out/results.json, servers' logs and the profile to hack/bench/out/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench import OUT, REPO
from bench.e2e import CONFIGS

SECTIONS = ("latency", "inprocess", "memory", "e2e", "doctor")


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats (~5 min)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {SECTIONS}")
    p.add_argument("--out", type=Path, help="Markdown output (default: see above)")
    p.add_argument("--repeats", type=int, help="repeats of every latency and memory figure")
    p.add_argument("--duration", type=float, help="seconds per latency run (default 0.8)")
    p.add_argument("--cache-sizes", type=_sizes, help="latency, cache mode (100,1000,5000,15000)")
    p.add_argument("--full-sizes", type=_sizes, help="latency, full-Node mode (100,1000,5000)")
    p.add_argument("--inprocess-sizes", type=_sizes, help="in-process (1000,5000,15000)")
    p.add_argument("--profile-nodes", type=int, default=5000, help="pyinstrument profile size")
    p.add_argument("--memory-sizes", type=_sizes, help="memory (0,1000,5000,15000)")
    p.add_argument("--e2e-sizes", type=_sizes, help="end to end nodes (1000,5000)")
    p.add_argument("--e2e-pods", type=_sizes, help="pods per run, per size (1000,300)")
    p.add_argument("--e2e-repeats", type=_sizes, help="repeats per size (4,3)")
    p.add_argument(
        "--e2e-configs",
        type=lambda text: tuple(text.split(",")),
        default=CONFIGS,
        help=f"end-to-end configurations ({','.join(CONFIGS)})",
    )
    p.add_argument("--scheduler-qps", type=int, default=5000, help="0: scheduler default (50)")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(args.e2e_configs) - set(CONFIGS):
        p.error(f"--e2e-configs: known configurations are {', '.join(CONFIGS)}")
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        p.error(f"--only: unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    return args


def _command(argv: list[str]) -> str:
    if os.environ.get("MAKELEVEL"):
        extra = os.environ.get("BENCH_ARGS", "").strip()
        return "make bench" + (f" BENCH_ARGS={shlex.quote(extra)}" if extra else "")
    return "PYTHONPATH=hack .venv/bin/python -m bench " + " ".join(shlex.quote(a) for a in argv)


def main(argv: list[str] | None = None) -> int:
    from bench import report
    from bench.doctor import DoctorSettings, run_doctor
    from bench.e2e import E2ESettings, run_e2e
    from bench.inprocess import run_profile
    from bench.latency import LatencySettings, run_latency
    from bench.memory import MemorySettings, run_memory

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    quick = args.quick
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    rep = report.Report(
        command=_command(argv),
        started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=report.machine(),
    )

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {line}", flush=True)

    say("machine: " + "; ".join(f"{k} {v}" for k, v in rep.machine.items()))
    if "latency" in args.only:
        lat = LatencySettings(
            cache_sizes=args.cache_sizes
            or ((100, 1000, 5000) if quick else (100, 1000, 5000, 15000)),
            full_sizes=args.full_sizes or ((100, 1000) if quick else (100, 1000, 5000)),
            bind_sizes=(1000,) if quick else (1000, 15000),
            repeats=args.repeats or (2 if quick else 3),
            duration=args.duration or (0.5 if quick else 0.8),
            cap=3.0 if quick else 4.0,
        )
        lat = dataclasses.replace(
            lat, bind_sizes=tuple(n for n in lat.bind_sizes if n in lat.cache_sizes)
        )
        rep.latency = run_latency(lat, say)
        print("\n" + report.latency_table(rep.latency) + "\n", flush=True)
    if "inprocess" in args.only:
        sizes = args.inprocess_sizes or ((1000, 5000) if quick else (1000, 5000, 15000))
        full = tuple(n for n in sizes if n <= 5000)
        say(f"in-process: {sizes} nodes (full-Node mode {full})")
        rep.inprocess = _inprocess(sizes, full)
        print("\n" + report.inprocess_table(rep.inprocess) + "\n", flush=True)
        rep.profile = run_profile(args.profile_nodes, 2.0 if quick else 4.0, say)
        print(report.profile_section(rep.profile) + "\n", flush=True)
    if "memory" in args.only:
        mem = MemorySettings(
            sizes=args.memory_sizes or ((0, 1000, 5000) if quick else (0, 1000, 5000, 15000)),
            repeats=args.repeats or (1 if quick else 2),
        )
        rep.memory = run_memory(mem, say)
        print("\n" + report.memory_table(rep.memory) + "\n", flush=True)
    if "e2e" in args.only:
        sizes = args.e2e_sizes or ((1000,) if quick else (1000, 5000))
        defaults = E2ESettings()
        pods = args.e2e_pods or ((500,) if quick else defaults.pods)[: len(sizes)]
        repeats = args.e2e_repeats or ((1,) if quick else defaults.repeats)[: len(sizes)]
        e2e = E2ESettings(
            sizes=sizes,
            pods=_per_size(pods, sizes),
            repeats=_per_size(repeats, sizes),
            scheduler_qps=args.scheduler_qps,
            configs=args.e2e_configs,
        )
        rep.e2e = run_e2e(e2e, say)
        print("\n" + report.e2e_tables(rep.e2e) + "\n", flush=True)

    if "doctor" in args.only:
        rep.doctor = run_doctor(DoctorSettings(repeats=2 if quick else 3), say)
        print("\n" + report.doctor_table(rep.doctor) + "\n", flush=True)

    rep.seconds = time.monotonic() - started
    full_run = not quick and list(args.only) == list(SECTIONS)
    out = args.out or (REPO / "docs" / "benchmarks.md" if full_run else OUT / "benchmarks.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(rep.markdown())
    (OUT / "results.json").write_text(json.dumps(_plain(rep), indent=1, default=str))
    say(f"wrote {out} and {OUT / 'results.json'} ({rep.seconds / 60:.1f} min)")
    return 0


def _per_size(values: tuple[int, ...], sizes: tuple[int, ...]) -> tuple[int, ...]:
    """One value per size: the last one given repeats."""
    return tuple(values[min(i, len(values) - 1)] for i in range(len(sizes)))


def _inprocess(sizes: tuple[int, ...], full: tuple[int, ...]) -> list[dict[str, object]]:
    """bench.inprocess in a child process (its caches stay out of this one)."""
    import subprocess

    from bench import child_env

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.inprocess",
            "--nodes",
            ",".join(map(str, sizes)),
            "--full-nodes",
            ",".join(map(str, full)),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=child_env(),
    )
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    sys.exit(main())
