"""Part 1: verb latency over loopback HTTP, ours against the floor, in the same run.

For each cluster size one process serves our app (bench.server: create_app + AppRunner +
uvloop, the cache filled with the fixtures' pod mix) and one serves the floor; the load
generator (its own process) drives both alternately with the same bodies, so the ratio of
each pair is measured under the same conditions. Filter and prioritize alternate an
interactive and a batch pod; every request names all N nodes (NodeNames) or carries all N
Node objects (full-Node mode). Bind runs after them (it moves pods in the cache).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import OUT, fixtures
from bench.procs import Child, LoadGen
from bench.stats import Spread, percentile, spread


@dataclass(frozen=True)
class LatencySettings:
    cache_sizes: tuple[int, ...] = (100, 1000, 5000, 15000)
    full_sizes: tuple[int, ...] = (100, 1000, 5000)
    bind_sizes: tuple[int, ...] = (1000, 15000)
    concurrencies: tuple[int, ...] = (1, 8)
    repeats: int = 3
    duration: float = 1.5  # seconds per run, once min_requests are done
    min_requests: int = 20
    max_requests: int = 50_000
    cap: float = 10.0  # seconds per run at most


@dataclass(frozen=True)
class Run:
    p50: float  # ms
    p99: float
    p999: float
    rps: float
    n: int


def _run_of(result: dict[str, Any]) -> Run:
    lat = sorted(result["latencies_us"])
    if result["errors"]:
        raise RuntimeError(f"{result['errors']} answers were not 200: {result['first'][:200]}")
    return Run(
        p50=percentile(lat, 50) / 1000,
        p99=percentile(lat, 99) / 1000,
        p999=percentile(lat, 99.9) / 1000,
        rps=len(lat) / result["elapsed"],
        n=len(lat),
    )


@dataclass
class LatencyRow:
    mode: str  # cache | full | - (bind)
    nodes: int
    verb: str
    concurrency: int
    ours: list[Run] = field(default_factory=list)
    floor: list[Run] = field(default_factory=list)

    def figure(self, who: str, name: str) -> Spread:
        runs = self.ours if who == "ours" else self.floor
        return spread([getattr(r, name) for r in runs])

    def ratio(self, name: str) -> Spread:
        """ours / floor per repeat (paired runs)."""
        return spread(
            [
                getattr(o, name) / getattr(f, name)
                for o, f in zip(self.ours, self.floor, strict=True)
            ]
        )

    def samples(self) -> int:
        return min((r.n for r in self.ours), default=0)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def run_latency(settings: LatencySettings, say: Callable[[str], None]) -> list[LatencyRow]:
    bodies = OUT / "bodies"
    bodies.mkdir(parents=True, exist_ok=True)
    rows: list[LatencyRow] = []
    loadgen = LoadGen()
    try:
        sizes = sorted({*settings.cache_sizes, *settings.full_sizes, *settings.bind_sizes})
        for n in sizes:
            cases: list[tuple[LatencyRow, list[str]]] = []
            for mode, wanted, make in (
                ("cache", settings.cache_sizes, fixtures.cache_mode_body),
                ("full", settings.full_sizes, fixtures.full_mode_body),
            ):
                if n not in wanted:
                    continue
                if mode == "cache":
                    files = fixtures.write_cache_mode_bodies(bodies, n)
                else:
                    files = [
                        _write(bodies / f"{mode}-{n}-{w}.json", make(n, w)) for w in fixtures.PROBES
                    ]
                for verb in ("filter", "prioritize"):
                    for c in settings.concurrencies:
                        cases.append((LatencyRow(mode, n, verb, c), files))
            bind_cases: list[tuple[LatencyRow, list[str]]] = []
            if n in settings.bind_sizes:
                files = [
                    _write(bodies / f"bind-{n}-{k}.json", body)
                    for k, body in enumerate(fixtures.bind_bodies(n))
                ]
                bind_cases = [
                    (LatencyRow("-", n, "bind", c), files) for c in settings.concurrencies
                ]
            say(f"latency: {n} nodes: starting our server (cache of {n} nodes, {n * 10} pods)")
            with (
                Child("bench.server", "--nodes", str(n)) as ours,
                Child("bench.floor", "--nodes", str(n)) as floor,
            ):
                say(f"  cache built in {ours.info['build_seconds']:.1f} s")
                for group in (cases, bind_cases):
                    for rep in range(settings.repeats):
                        for row, files in group:
                            for who, server in (("ours", ours), ("floor", floor)):
                                result = loadgen.run(
                                    port=server.port,
                                    path=f"/{row.verb}",
                                    bodies=files,
                                    concurrency=row.concurrency,
                                    duration=settings.duration,
                                    min_requests=settings.min_requests,
                                    max_requests=settings.max_requests,
                                    cap=settings.cap,
                                    warmup=3 if row.concurrency == 1 else 1,
                                )
                                (row.ours if who == "ours" else row.floor).append(_run_of(result))
                            last_o, last_f = row.ours[-1], row.floor[-1]
                            say(
                                f"  rep {rep + 1} {row.mode:5} {row.verb:10} c={row.concurrency} "
                                f"ours p99 {last_o.p99:8.2f} ms {last_o.rps:8.0f}/s (n={last_o.n})"
                                f" | floor p99 {last_f.p99:8.2f} ms {last_f.rps:8.0f}/s"
                            )
                rows.extend(row for row, _ in cases + bind_cases)
    finally:
        loadgen.stop()
        shutil.rmtree(bodies, ignore_errors=True)  # up to ~100 MB, rebuilt every run
    return rows
