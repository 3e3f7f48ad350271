"""Part 5: filter latency while /debug/doctor builds reports (issue 19).

One bench.server process with --doctor serves the verbs from its cache and /debug/doctor
from a listing of the same cluster, decoded and checked in the worker process `serve`
uses. The load generator drives /filter (cache mode, all N nodes, c=1) for a fixed time,
alternately quiet and while a client asks for one doctor report after another; the ratio
of the two p99s is taken per repeat.
"""

from __future__ import annotations

import shutil
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import OUT, fixtures
from bench.latency import Run, _run_of
from bench.procs import Child, LoadGen
from bench.stats import Spread, spread


@dataclass(frozen=True)
class DoctorSettings:
    nodes: int = 5000
    repeats: int = 3
    duration: float = 6.0  # seconds of load per run: several reports at 5,000 nodes


@dataclass
class DoctorRow:
    nodes: int
    quiet: list[Run] = field(default_factory=list)
    busy: list[Run] = field(default_factory=list)
    reports: list[int] = field(default_factory=list)
    """Doctor reports finished during each busy run."""
    report_seconds: list[float] = field(default_factory=list)

    def ratio(self) -> Spread:
        return spread([b.p99 / q.p99 for b, q in zip(self.busy, self.quiet, strict=True)])


class _DoctorClient:
    """Asks for one doctor report after another until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.done: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _DoctorClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(300)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            with urllib.request.urlopen(self.url, timeout=300) as response:
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"doctor answered {response.status}")
            self.done.append(time.monotonic() - started)


def run_doctor(settings: DoctorSettings, say: Callable[[str], None]) -> list[DoctorRow]:
    bodies = OUT / "bodies"
    bodies.mkdir(parents=True, exist_ok=True)
    n = settings.nodes
    files = fixtures.write_cache_mode_bodies(bodies, n, stem="doctor")
    row = DoctorRow(n)
    loadgen = LoadGen()
    try:
        say(f"doctor: {n} nodes: starting our server with /debug/doctor")
        with Child("bench.server", "--nodes", str(n), "--doctor") as ours:
            url = f"http://127.0.0.1:{ours.port}/debug/doctor"
            first = time.monotonic()
            urllib.request.urlopen(url, timeout=300).read()  # starts the worker process
            say(f"  first report (worker start included) {time.monotonic() - first:.1f} s")

            def load() -> Run:
                return _run_of(
                    loadgen.run(
                        port=ours.port,
                        path="/filter",
                        bodies=files,
                        concurrency=1,
                        duration=settings.duration,
                        min_requests=20,
                        max_requests=1_000_000,
                        cap=settings.duration,
                        warmup=3,
                    )
                )

            for rep in range(settings.repeats):
                row.quiet.append(load())
                with _DoctorClient(url) as doctor:
                    row.busy.append(load())
                row.reports.append(len(doctor.done))
                row.report_seconds.extend(doctor.done)
                say(
                    f"  rep {rep + 1}: filter p99 quiet {row.quiet[-1].p99:.2f} ms, while "
                    f"doctor runs {row.busy[-1].p99:.2f} ms ({len(doctor.done)} reports)"
                )
    finally:
        loadgen.stop()
        shutil.rmtree(bodies, ignore_errors=True)
    return [row]
