"""Send fuzz requests to a running extender over loopback HTTP and check that it holds.

It holds when: no answer is a 5xx, no well-formed HTTP request loses its connection, every
answer comes within the scheduler's 5 s timeout, the server's RSS after the run is within
10% of before (after a warm-up that fills the bounded caches), and a fixed probe request
gets the same decisions before and after (once the fuzzed pods' in-flight holds lapse).
Requests come from Hypothesis strategies (strategies.py) in seeded chunks, so a run is
reproducible from its seed; it stops after `requests` or `seconds`.

    python -m tests.fuzz.driver --url http://127.0.0.1:8888 --pid PID --requests 1000000
(`make fuzz` starts a local control plane and an extender and runs this against them.)
"""

from __future__ import annotations

import argparse
import http.client
import socket
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import localcluster
import orjson

from tests.fuzz.strategies import FuzzRequest, for_each_batch

PROBE_SETTLE_SECONDS = 20.0
"""In-flight holds last 10 s (StageTtl.held, extender/state/provisional.py) and are swept
every second."""

ANSWER_WITHIN_SECONDS = 5.0
RSS_GROWTH_LIMIT = 0.10
WARM_UP = 3_000
"""Requests before the RSS baseline: enough for the bounded caches to fill (the rules
memo keeps up to 1,024 pod intents, and nearly every fuzzed pod is a new intent)."""
LONG_RUN_WARM_UP_SECONDS = 90.0
"""In a long run, also past one assumption TTL (60 s): a pod only a filter call told the
cache of is kept that long, so at ~500 requests/s ~15,000 such pods are held at any
time. That plateau belongs in the baseline; growth beyond it would be a leak."""
CHUNK = 100
"""Hypothesis examples per seeded chunk (each a batch of strategies.BATCH requests)."""


@dataclass
class FuzzReport:
    seed: int
    sent: int = 0
    seconds: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    slowest_seconds: float = 0.0
    violations: list[str] = field(default_factory=list)
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    probe_unchanged: bool = False
    # (requests sent, RSS KiB) after each chunk: a plateau and a leak read apart.
    rss_samples: list[tuple[int, int]] = field(default_factory=list)

    @property
    def rss_growth(self) -> float:
        return self.rss_after_kib / max(self.rss_before_kib, 1) - 1.0

    @property
    def holds(self) -> bool:
        return not self.violations and self.probe_unchanged and self.rss_growth <= RSS_GROWTH_LIMIT

    def summary(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"seed {self.seed}: {self.sent} requests in {self.seconds:.0f} s "
            f"({self.sent / max(self.seconds, 1e-9):.0f}/s); answers {statuses}; slowest "
            f"{self.slowest_seconds * 1000:.0f} ms; RSS {self.rss_before_kib / 1024:.1f} -> "
            f"{self.rss_after_kib / 1024:.1f} MiB ({self.rss_growth:+.1%}); probe "
            f"{'unchanged' if self.probe_unchanged else 'CHANGED'}; "
            f"{len(self.violations)} violation(s)"
        )

    def rss_course(self, points: int = 10) -> str:
        """About `points` of the RSS samples, evenly spaced over the run."""
        if not self.rss_samples:
            return "not sampled"
        step = max(1, len(self.rss_samples) // points)
        picked = self.rss_samples[step - 1 :: step]
        if picked[-1] != self.rss_samples[-1]:
            picked.append(self.rss_samples[-1])
        return ", ".join(f"{sent:,}: {kib / 1024:.1f}" for sent, kib in picked)

    def markdown(self, command: str) -> str:
        """The report `make fuzz` writes: what ran, each check against its threshold (fixed
        in this module before any run), the verdict."""
        statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.statuses.items()))
        kinds = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.kinds.items()))
        checks = [
            ("answers that are a 5xx, or a well-formed request's lost connection",
             f"{len(self.violations)}", "0", not self.violations),
            ("slowest answer", f"{self.slowest_seconds * 1000:.0f} ms",
             f"< {ANSWER_WITHIN_SECONDS * 1000:.0f} ms",
             self.slowest_seconds < ANSWER_WITHIN_SECONDS),
            ("RSS after the run vs after the warm-up",
             f"{self.rss_before_kib / 1024:.1f} -> {self.rss_after_kib / 1024:.1f} MiB "
             f"({self.rss_growth:+.1%})", f"<= {RSS_GROWTH_LIMIT:+.0%}",
             self.rss_growth <= RSS_GROWTH_LIMIT),
            ("the probe's filter and prioritize answers before and after",
             "unchanged" if self.probe_unchanged else "changed", "unchanged",
             self.probe_unchanged),
        ]  # fmt: skip
        lines = [
            "# Fuzz",
            "",
            f"Generated by `{command}` at commit {_commit()}, finished "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; rerun instead of editing. "
            "What is sent and why: docs/reliability.md, section 1.",
            "",
            f"- seed {self.seed}: {self.sent:,} requests in {self.seconds:.0f} s "
            f"({self.sent / max(self.seconds, 1e-9):.0f}/s)",
            f"- requests by kind: {kinds}",
            f"- answers: {statuses}",
            f"- RSS as the run went (requests sent: MiB): {self.rss_course()}",
            "",
            "| check | figure | threshold | holds |",
            "|---|---|---|---|",
            *(
                f"| {name} | {figure} | {limit} | {'yes' if ok else '**NO**'} |"
                for name, figure, limit, ok in checks
            ),
            "",
            f"Verdict: {'holds' if self.holds else '**does not hold**'}"
            + (f"; first violations: {'; '.join(self.violations[:5])}" if self.violations else ""),
        ]
        return "\n".join(lines) + "\n"


def _commit() -> str:
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", "extender"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + (" (with uncommitted changes in extender/)" if dirty else "")


class Target:
    """The extender under test: one keep-alive connection, reopened when the server closes it."""

    def __init__(self, url: str, pid: int | None) -> None:
        parsed = urllib.parse.urlsplit(url)
        assert parsed.hostname in ("127.0.0.1", "localhost", "::1"), "fuzz loopback only"
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.pid = pid
        self.connection: http.client.HTTPConnection | None = None

    def rss_kib(self) -> int:
        return 0 if self.pid is None else localcluster.proc_status_kib(self.pid, "VmRSS")

    def http(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                self.host, self.port, timeout=ANSWER_WITHIN_SECONDS + 5
            )
        try:
            self.connection.request(
                method, path, body=body, headers={"Content-Type": "application/json"}
            )
            response = self.connection.getresponse()
            payload = response.read()
        except BaseException:
            self.connection.close()
            self.connection = None
            raise
        if response.will_close:
            self.connection.close()
            self.connection = None
        return response.status, payload

    def raw(self, data: bytes) -> bytes:
        """Send bytes on a fresh connection, close our side, read what comes back."""
        with socket.create_connection((self.host, self.port), timeout=ANSWER_WITHIN_SECONDS) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                return b""  # the server closed first: an answer of sorts
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)


def probe(target: Target, known: list[str]) -> bytes:
    """Decisions for a fixed pod over the cluster's nodes: must not change under fuzzing."""
    pod = {
        "metadata": {"name": "fuzz-probe", "namespace": "default", "uid": "fuzz-probe"},
        "spec": {
            "schedulerName": "gpu-scheduler",
            "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
    }
    body = orjson.dumps({"Pod": pod, "NodeNames": known, "Nodes": None})
    answers = [target.http("POST", verb, body) for verb in ("/filter", "/prioritize")]
    return orjson.dumps(answers, default=lambda b: b.decode())


def send(target: Target, request: FuzzRequest, report: FuzzReport) -> None:
    started = time.monotonic()
    try:
        if request.raw:
            answer = target.raw(request.body)
            status = (
                answer[9:12].decode(errors="replace") if answer.startswith(b"HTTP/") else "closed"
            )
        else:
            code, _ = target.http(request.method, request.path, request.body)
            status = str(code)
    except (OSError, http.client.HTTPException) as exc:
        status = "dropped"
        if not request.raw:
            report.violations.append(f"connection lost ({exc!r}) on {request.describe()}")
    elapsed = time.monotonic() - started
    report.sent += 1
    report.kinds[request.kind] += 1
    report.statuses[status] += 1
    report.slowest_seconds = max(report.slowest_seconds, elapsed)
    if status.startswith("5"):
        report.violations.append(f"{status} on {request.describe()}")
    if elapsed > ANSWER_WITHIN_SECONDS:
        report.violations.append(f"answer after {elapsed:.1f} s on {request.describe()}")


def fuzz(
    url: str,
    pid: int | None,
    known: list[str],
    *,
    seed: int,
    requests_wanted: int,
    seconds: float,
    progress: Callable[[FuzzReport], None] | None = None,
) -> FuzzReport:
    """Fuzz the extender at `url` (process `pid`, for its RSS) whose cluster has `known` nodes."""
    target = Target(url, pid)
    report = FuzzReport(seed)
    before = probe(target, known)
    started = time.monotonic()
    deadline = started + seconds

    long_run = requests_wanted > 100_000 and seconds > 600
    warm_until = started + (LONG_RUN_WARM_UP_SECONDS if long_run else 0.0)

    def send_batch(batch: list[FuzzRequest]) -> None:
        for request in batch:
            now = time.monotonic()
            if report.sent >= requests_wanted or now >= deadline:
                return
            if not report.rss_before_kib and report.sent >= WARM_UP and now >= warm_until:
                report.rss_before_kib = target.rss_kib()
            send(target, request, report)

    chunk_index = 0
    while report.sent < requests_wanted and time.monotonic() < deadline:
        for_each_batch(known, CHUNK, seed * 1_000_003 + chunk_index, send_batch)
        chunk_index += 1
        report.rss_samples.append((report.sent, target.rss_kib()))
        if progress is not None:
            progress(report)
    report.seconds = time.monotonic() - started
    if not report.rss_before_kib:
        report.rss_before_kib = target.rss_kib()
    report.rss_after_kib = target.rss_kib()
    # Filter calls hold their pods' GPUs against reserved classes for a few seconds (the
    # in-flight holds of ClusterCache); the probe must come back once those have lapsed.
    settle_until = time.monotonic() + PROBE_SETTLE_SECONDS
    while not (unchanged := probe(target, known) == before) and time.monotonic() < settle_until:
        time.sleep(0.5)
    report.probe_unchanged = unchanged
    for path in ("/healthz", "/readyz"):
        status, _ = target.http("GET", path, b"")
        if status != 200:
            report.violations.append(f"{path} answers {status} after the run")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, help="the extender's process, for its RSS")
    parser.add_argument("--nodes", default="", help="comma-separated node names it knows")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=3600)
    args = parser.parse_args(argv)

    def progress(report: FuzzReport) -> None:
        print(f"  {report.sent} sent, {len(report.violations)} violation(s)", file=sys.stderr)

    report = fuzz(
        args.url,
        args.pid,
        [n for n in args.nodes.split(",") if n],
        seed=args.seed,
        requests_wanted=args.requests,
        seconds=args.seconds,
        progress=progress,
    )
    print(report.summary())
    for violation in report.violations[:20]:
        print(f"  {violation}")
    return 0 if report.holds else 1


if __name__ == "__main__":
    sys.exit(main())
