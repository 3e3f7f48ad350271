"""Part 3: resident memory of a `serve`-equivalent process.

bench.server: the modules `serve` loads (runtime, kubernetes-asyncio
client), create_app and a cache decoded from JSON pages of 500 objects as the watch
does, after a full GC. RSS is read from /proc when it serves (idle) and again after one
second of filter + prioritize traffic (what a working process holds); VmHWM is the peak,
which includes the transient JSON pages and decoded lists the List step holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench import OUT, fixtures
from bench.procs import Child, LoadGen, hwm_mb, rss_mb
from bench.stats import Spread, spread


@dataclass(frozen=True)
class MemorySettings:
    sizes: tuple[int, ...] = (0, 1000, 5000, 15000)
    repeats: int = 2


@dataclass
class MemoryRow:
    nodes: int
    pods: int
    idle: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)
    peak: list[float] = field(default_factory=list)

    def figure(self, name: str) -> Spread:
        values: list[float] = getattr(self, name)
        return spread(values)


def run_memory(settings: MemorySettings, say: Callable[[str], None]) -> list[MemoryRow]:
    rows = []
    bodies = OUT / "bodies"
    bodies.mkdir(parents=True, exist_ok=True)
    loadgen = LoadGen()
    try:
        for n in settings.sizes:
            row = MemoryRow(n, n * fixtures.PODS_PER_NODE)
            files = fixtures.write_cache_mode_bodies(bodies, n) if n else []
            for _ in range(settings.repeats):
                with Child("bench.server", "--nodes", str(n)) as server:
                    row.idle.append(rss_mb(server.pid))
                    for verb in ("filter", "prioritize") if files else ():
                        loadgen.run(
                            port=server.port,
                            path=f"/{verb}",
                            bodies=files,
                            concurrency=1,
                            duration=0.5,
                            min_requests=5,
                            max_requests=100_000,
                            cap=10.0,
                            warmup=1,
                        )
                    row.loaded.append(rss_mb(server.pid))
                    row.peak.append(hwm_mb(server.pid))
            say(
                f"memory: {n} nodes, {row.pods} pods: RSS idle {row.figure('idle').fmt(0)} MiB, "
                f"after traffic {row.figure('loaded').fmt(0)} MiB, "
                f"peak {row.figure('peak').fmt(0)} MiB"
            )
            rows.append(row)
    finally:
        loadgen.stop()
    return rows
