"""Part 2: what one filter or prioritize costs without HTTP, stage by stage.

Runs in a child process (`python -m bench.inprocess --nodes 1000,5000,15000`), with the
same cache and bodies as the latency runs. Stages are the public functions the handlers
call (decode, pod_intent, filter_nodes, score_nodes, encode); "handler" is the real aiohttp
handler coroutine awaited on a stub request (all of the verb but aiohttp's HTTP parsing
and writing), so handler minus its stages is what the handler adds (metrics, logging,
building the answer). Each figure: per-call time over 3
repeats of an adaptive loop (>= 0.1 s each), median [min-max].
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import OUT, fixtures
from bench.procs import Child, LoadGen


class _StubRequest(dict[Any, Any]):
    """Just what filter_handler and prioritize_handler use of a request: its app, its body,
    and item storage (the handlers note the phase they are in)."""

    def __init__(self, app: Any, body: bytes) -> None:
        super().__init__()
        self.app = app
        self._body = body

    async def read(self) -> bytes:
        return self._body


def _per_call(fn: Callable[[], object], repeats: int = 3, min_time: float = 0.1) -> list[float]:
    """Seconds per call, one figure per repeat."""
    loops = 1
    while True:  # calibrate
        started = time.perf_counter()
        for _ in range(loops):
            fn()
        spent = time.perf_counter() - started
        if spent >= min_time / 4 or loops >= 1 << 20:
            break
        loops *= 2
    loops = max(1, int(loops * min_time / max(spent, 1e-9)))
    figures = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(loops):
            fn()
        figures.append((time.perf_counter() - started) / loops)
    return figures


def measure(nodes: int, full_nodes: bool) -> list[dict[str, Any]]:
    from extender.policy import PolicyStore
    from extender.server.app import create_app

    policy, cache = fixtures.build_cache(nodes)
    app = create_app(PolicyStore(policy), cache)
    loop = asyncio.new_event_loop()
    rows: list[dict[str, Any]] = []
    for workload in fixtures.PROBES:
        for stage, fn in _stages(app, loop, nodes, workload, full_nodes):
            rows.append({"nodes": nodes, "pod": workload, "stage": stage, "seconds": _per_call(fn)})
    loop.close()
    return rows


def _stages(
    app: Any, loop: asyncio.AbstractEventLoop, nodes: int, workload: str, full_nodes: bool
) -> list[tuple[str, Callable[[], object]]]:
    """(stage, one call of it) for one probe pod."""
    from extender.policy import pod_intent
    from extender.rules.engine import filter_nodes, score_nodes
    from extender.server.app import CACHE, STORE, filter_handler, prioritize_handler
    from extender.wire import (
        decode_extender_args,
        encode_priorities,
    )

    cache, policy = app[CACHE], app[STORE].current

    def handler(fn: Any, *bodies: bytes) -> Callable[[], object]:
        """One call of the handler, on each of `bodies` in turn."""
        stubs = itertools.cycle([_StubRequest(app, body) for body in bodies])
        return lambda: loop.run_until_complete(fn(next(stubs)))

    if full_nodes:
        body = fixtures.full_mode_body(nodes, workload)
        return [
            ("full-Node decode (ExtenderArgs)", lambda: decode_extender_args(body)),
            ("filter handler, full-Node (all of it)", handler(filter_handler, body)),
            ("prioritize handler, full-Node (all of it)", handler(prioritize_handler, body)),
        ]
    body = fixtures.cache_mode_body(nodes, workload)
    shuffled = [fixtures.cache_mode_body(nodes, workload, k) for k in range(1, fixtures.ORDERS + 1)]
    names = fixtures.node_names(nodes)
    args = decode_extender_args(body)
    assert args.Pod is not None
    pod = args.Pod
    intent = pod_intent(pod, policy)
    shape_of = cache.shape_lookup
    result = filter_nodes(intent, names, cache.node, cache, policy, shape_of)
    scored, scores = score_nodes(intent, names, cache.node, cache, policy, shape_of)

    def encode_filter() -> bytes:
        # As the handler answers in names mode: a group at a time, each group's names
        # encoded once per grouping.
        return result.encoded()

    def encode_scores() -> bytes:
        return encode_priorities(scored, scores)

    return [
        ("decode (ExtenderArgs)", lambda: decode_extender_args(body)),
        ("pod_intent", lambda: pod_intent(pod, policy)),
        (
            f"filter_nodes ({len(result.passed)} of {nodes} pass)",
            lambda: filter_nodes(intent, names, cache.node, cache, policy, shape_of),
        ),
        ("encode filter answer", encode_filter),
        ("score_nodes", lambda: score_nodes(intent, names, cache.node, cache, policy, shape_of)),
        ("encode prioritize answer", encode_scores),
        ("filter handler (all of it)", handler(filter_handler, *shuffled)),
        ("prioritize handler (all of it)", handler(prioritize_handler, *shuffled)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", required=True, help="comma-separated sizes")
    parser.add_argument("--full-nodes", default="", help="sizes for full-Node mode")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for n in [int(x) for x in args.nodes.split(",") if x]:
        rows += measure(n, full_nodes=False)
    for n in [int(x) for x in args.full_nodes.split(",") if x]:
        rows += measure(n, full_nodes=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ---- profile of the serving process under load ---------------------------------------------


@dataclass
class Profile:
    nodes: int
    text_path: Path
    total: float  # seconds sampled
    busy: float  # of which not waiting in the event loop
    top: list[tuple[str, float]]  # function -> self seconds, busiest first
    groups: dict[str, float]  # package -> self seconds


def _group(key: str) -> str:
    path = key.rsplit(":", 1)[0]
    for marker, name in (
        ("extender/rules", "extender.rules"),
        ("extender/state", "extender.state"),
        ("extender/policy", "extender.policy"),
        ("extender/wire", "extender.wire"),
        ("extender/server", "extender.server"),
        ("prometheus_client", "prometheus_client"),
        ("aiohttp", "aiohttp"),
        ("msgspec", "msgspec"),
        ("asyncio", "asyncio"),
        ("<built-in>", "builtins (C: msgspec, dict, list)"),
    ):
        if marker in path:
            return name
    return "other"


def run_profile(nodes: int, seconds: float, say: Callable[[str], None]) -> Profile:
    """pyinstrument on bench.server at `nodes` while the load generator sends filter and
    prioritize (cache mode, both probe pods, concurrency 1) for `seconds` each."""
    OUT.mkdir(parents=True, exist_ok=True)
    stem = OUT / f"profile-{nodes}"
    files = fixtures.write_cache_mode_bodies(OUT / "bodies", nodes)
    loadgen = LoadGen()
    try:
        with Child("bench.server", "--nodes", str(nodes), "--profile", str(stem)) as server:
            for verb in ("filter", "prioritize"):
                loadgen.run(
                    port=server.port,
                    path=f"/{verb}",
                    bodies=files,
                    concurrency=1,
                    duration=seconds,
                    min_requests=10,
                    max_requests=1_000_000,
                    cap=seconds * 3,
                    warmup=3,
                )
    finally:
        loadgen.stop()
    data = json.loads(stem.with_suffix(".json").read_text())
    own: dict[str, float] = data["self"]
    busy = {k: v for k, v in own.items() if not _is_idle(k)}
    groups: dict[str, float] = {}
    for key, value in busy.items():
        groups[_group(key)] = groups.get(_group(key), 0.0) + value
    top = sorted(busy.items(), key=lambda kv: -kv[1])[:15]
    say(f"profile: {stem.with_suffix('.txt')} ({sum(busy.values()):.2f} s busy)")
    return Profile(nodes, stem.with_suffix(".txt"), data["total"], sum(busy.values()), top, groups)


def _is_idle(key: str) -> bool:
    """Waiting for the next request: time in the event loop's own C code."""
    return key.startswith(("asyncio/runners.py:", "uvloop/__init__.py:", "?"))
