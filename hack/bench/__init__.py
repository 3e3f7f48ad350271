"""The benchmark suite of issue 6: `make bench` (or `PYTHONPATH=hack python -m bench`).

Modules: fixtures (realistic Nodes, Pods, caches, request bodies), server (our app as
`serve` runs it, fed by an in-process cache), floor (the do-nothing floor extender),
loadgen (the closed-loop load generator, its own process), latency, inprocess, memory,
e2e (the real kube-scheduler on hack/localcluster.py), report (tables, docs/benchmarks.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack"
OUT = HACK / "bench" / "out"

# `tests.builders` and `extender` from the repo, `localcluster` from hack/.
for _path in (str(REPO), str(HACK)):
    if _path not in sys.path:
        sys.path.insert(0, _path)


def child_env() -> dict[str, str]:
    """Environment for our child Python processes: the same import paths."""
    import os

    paths = [str(HACK), str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
    return {**os.environ, "PYTHONPATH": ":".join(dict.fromkeys(paths)), "PYTHONUNBUFFERED": "1"}
