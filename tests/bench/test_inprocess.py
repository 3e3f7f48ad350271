"""The in-process benchmark still drives the real handlers (a smoke run at a tiny size):
`make bench` is not part of `make test`, so a handler change that breaks its stub request
would otherwise show only when someone measures."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.builders import REPO


def test_the_in_process_benchmark_runs_every_stage_at_a_tiny_size() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", "--nodes", "20", "--full-nodes", "20"],
        cwd=REPO,
        env={"PYTHONPATH": f"{REPO / 'hack'}:{REPO}", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stages = {row["stage"].split(" (")[0] for row in json.loads(result.stdout.splitlines()[-1])}
    assert {"filter handler", "prioritize handler", "filter handler, full-Node"} <= stages
