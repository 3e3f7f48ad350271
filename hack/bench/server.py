"""Our extender as `serve` runs it (the modules it imports, create_app, aiohttp AppRunner,
uvloop, JSON logs at info), fed by a cache built in-process from bench.fixtures instead
of a List-Watch, with a no-op binder (bind does all its own work, then awaits sleep(0)
instead of the API call).

    PYTHONPATH=hack python -m bench.server --nodes 5000 [--port 0] [--profile OUT]
prints {"port": P, "pid": ..., "build_seconds": ...} on stdout once it serves. With
--profile, pyinstrument samples the whole process from then until SIGTERM and writes
OUT.txt (the call tree) and OUT.json (self time per function, for the report).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.fixtures import build_cache, cluster_pod_dicts, node_dict
from bench.floor import serve_app


async def noop_binder(
    *, namespace: str, name: str, uid: str, node: str, annotations: dict[str, str]
) -> None:
    await asyncio.sleep(0)


def self_times(root: Any) -> dict[str, Any]:
    """Self time per function (file:function) over a pyinstrument frame tree; the
    synthetic [self] and [await] leaves count for the function above them."""
    totals: dict[str, float] = {}
    stack: list[tuple[Any, str]] = [(root, "?")]
    while stack:
        frame, parent = stack.pop()
        if frame.function.startswith("["):
            key = parent
        else:
            key = f"{frame.file_path_short or frame.file_path or '?'}:{frame.function}"
        stack.extend((child, key) for child in frame.children)
        own = frame.time - sum(child.time for child in frame.children)
        if own > 0:
            totals[key] = totals.get(key, 0.0) + own
    return {"total": root.time, "self": totals}


def listing_source(nodes: int) -> Any:
    """A doctor source answering with the fixtures' nodes and pods as raw JSON, as
    `read_listing` would have listed them (no API server in this benchmark)."""
    from extender.doctor.cluster import ClusterListing

    listing = ClusterListing(
        [orjson.dumps(node_dict(i)) for i in range(nodes)],
        [orjson.dumps(pod) for pod in cluster_pod_dicts(nodes)],
    )

    async def source() -> ClusterListing:
        return listing

    return source


def main(argv: list[str] | None = None) -> int:
    import uvloop

    import extender.server.runtime  # noqa: F401  (what `serve` imports: kubernetes-asyncio)
    from extender import logs
    from extender.policy import PolicyStore
    from extender.server.app import create_app

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--profile", type=Path, help="write OUT.txt and OUT.json")
    parser.add_argument(
        "--doctor",
        action="store_true",
        help="serve /debug/doctor on a listing of the same nodes and pods, built in a "
        "worker process as `serve` does",
    )
    args = parser.parse_args(argv)

    logs.configure("info", "json")
    started = time.perf_counter()
    policy, cache = build_cache(args.nodes)
    doctor: dict[str, Any] = {}
    if args.doctor:
        from extender.server.runtime import doctor_worker

        doctor = {"doctor_source": listing_source(args.nodes), "doctor_worker": doctor_worker()}
    app = create_app(PolicyStore(policy), cache, binder=noop_binder, **doctor)
    build_seconds = time.perf_counter() - started

    profiler: Any = None
    if args.profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002, async_mode="disabled")
    uvloop.run(
        serve_app(
            app,
            args.host,
            args.port,
            on_ready=profiler.start if profiler else None,
            info={"build_seconds": build_seconds},
        )
    )
    if profiler is not None:
        profiler.stop()
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        text = profiler.output_text(unicode=True, color=False, show_all=False)
        args.profile.with_suffix(".txt").write_text(text)
        session = profiler.last_session
        args.profile.with_suffix(".json").write_bytes(
            orjson.dumps(self_times(session.root_frame(trim_stem=False)))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
