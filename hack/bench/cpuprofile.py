"""Where an extender's CPU goes per bound pod, under the real scheduler (part 4).

py-spy samples the extender process while kube-scheduler places a run's pods (only while
it runs on a CPU: no idle samples), natively, so time in the kernel's send and in C
libraries lands on the Python line that called them. Each sample's stack falls in the
first category of CATEGORIES it matches; a category's share of the samples times the run's
CPU ms per pod is what it costs per pod.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SAMPLES_PER_SECOND = 250

# (category, frame names any of which puts a stack in it), checked in this order.
CATEGORIES: tuple[tuple[str, frozenset[str]], ...] = (
    # Ours, and the floor's (bench.floor).
    (
        "filter verb: decode, rules, answer",
        frozenset({"filter_handler", "floor_app.<locals>.filter_"}),
    ),
    (
        "prioritize verb: decode, rules, answer",
        frozenset({"prioritize_handler", "floor_app.<locals>.prioritize"}),
    ),
    (
        "bind verb: re-check, record, Binding call",
        frozenset({"bind_handler", "floor_app.<locals>.bind"}),
    ),
    ("watch: events decoded into the cache", frozenset({"_watch", "watch_kind"})),
    (
        "answers written to the scheduler (send included)",
        frozenset({"RequestHandler.finish_response", "StreamResponse.write_eof"}),
    ),
    (
        "API calls: TLS writes and reads",
        frozenset(
            {
                "ClientRequest.write_bytes",
                "ResponseHandler.data_received",
                "ClientSession._request",
                "SSLObject.read",
                "SSLObject.write",
            }
        ),
    ),
    (
        "requests read and parsed",
        frozenset({"RequestHandler.data_received", "RequestHandler.start"}),
    ),
    (
        "middleware: limits, metrics, errors",
        frozenset({"errors_and_metrics", "limits_middleware.<locals>.bounded"}),
    ),
)
EVENT_LOOP = "event loop (uvloop: polling, callbacks)"
OTHER = "other"


@dataclass
class CpuProfile:
    config: str
    nodes: int
    samples: int = 0
    shares: dict[str, float] = field(default_factory=dict)  # category -> share of samples
    top: list[tuple[str, float]] = field(default_factory=list)  # leaf function -> share
    raw_path: Path | None = None


def _py_spy() -> str | None:
    """py-spy beside this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def available() -> str | None:
    """Why no profile can be taken here, or None."""
    if _py_spy() is None:
        return "py-spy is not installed"
    return None


def start(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample `pid` until it exits; the raw (collapsed) stacks go to `out`."""
    return subprocess.Popen(
        [
            _py_spy() or "py-spy",
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(SAMPLES_PER_SECOND),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish(sampler: subprocess.Popen[bytes], out: Path, config: str, nodes: int) -> CpuProfile:
    """Wait for the sampler (its process has exited) and read what it wrote."""
    try:
        _, err = sampler.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        sampler.kill()
        _, err = sampler.communicate()
    if not out.exists():
        raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-300:]}")
    return categorise(out.read_text(), config, nodes, out)


def _frame(text: str) -> str:
    return text.split(" (", 1)[0]


def categorise(collapsed: str, config: str, nodes: int, path: Path | None = None) -> CpuProfile:
    """Shares per category of the collapsed stacks (`frame;frame;... count` lines)."""
    counts: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        n = int(number)
        leaves[stack.split(";")[-1]] += n
        names = set(frames)
        for category, markers in CATEGORIES:
            if names & markers:
                counts[category] += n
                break
        else:
            counts[EVENT_LOOP if frames[-1] == "Runner.run" else OTHER] += n
    total = sum(counts.values())
    profile = CpuProfile(config, nodes, total, raw_path=path)
    if total:
        profile.shares = {c: n / total for c, n in counts.most_common()}
        profile.top = [(leaf, n / total) for leaf, n in leaves.most_common(12)]
    return profile
