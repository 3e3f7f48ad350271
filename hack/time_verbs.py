"""Rough timing of one filter + prioritize round trip in cache mode (nodeCacheCapable: true).

The server runs in its own process (aiohttp + uvloop, as `serve` does) with a cache of N
GPU nodes of three classes and ~10 GPU pods per node; this process is the client, on one
keep-alive loopback connection, like the scheduler. Usage:
    .venv/bin/python hack/time_verbs.py 1000 5000 [--requests 200]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import socket
import statistics
import sys
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from extender.policy import Policy
from extender.state import ClusterCache
from tests.builders import example_policy, make_cache, make_node, make_pod, pod_dict

PRODUCTS = ("H100", "A100-40GB", "T4")


def build_cache(nodes: int) -> tuple[Policy, ClusterCache]:
    policy = example_policy()
    node_objs = [
        make_node(f"gpu-{i:05}", PRODUCTS[i % 3], gpus=8 if i % 3 != 2 else 4) for i in range(nodes)
    ]
    pods = []
    for i in range(nodes):
        for j in range(10):
            workload = "interactive" if j % 3 == 0 else "batch"
            # Most pods pending or elsewhere; a few GPUs used per node.
            on_node = f"gpu-{i:05}" if j < 2 else ""
            pods.append(
                make_pod(f"p-{i}-{j}", 1, workload=workload, node=on_node, uid=f"u-{i}-{j}")
            )
    return policy, make_cache(policy, node_objs, pods)


def serve(nodes: int, port: int, ready: EventType) -> None:
    import asyncio

    import uvloop
    from aiohttp import web

    from extender.policy import PolicyStore
    from extender.server.app import create_app

    policy, cache = build_cache(nodes)
    app = create_app(PolicyStore(policy), cache)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    uvloop.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(nodes: int, requests: int) -> dict[str, float]:
    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(nodes, port, ready), daemon=True)
    server.start()
    ready.wait(300)
    body = orjson.dumps(
        {
            "Pod": pod_dict("probe", 1, workload="interactive", uid="probe"),
            "Nodes": None,
            "NodeNames": [f"gpu-{i:05}" for i in range(nodes)],
        }
    )
    conn = http.client.HTTPConnection("127.0.0.1", port)
    samples = []
    try:
        for i in range(requests + 10):
            start = time.perf_counter()
            for verb in ("filter", "prioritize"):
                conn.request("POST", f"/{verb}", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                assert response.status == 200, response.status
            if i >= 10:  # warm-up excluded
                samples.append((time.perf_counter() - start) * 1000)
    finally:
        conn.close()
        server.terminate()
    samples.sort()
    return {
        "p50": statistics.median(samples),
        "p99": samples[int(len(samples) * 0.99) - 1],
        "mean": statistics.fmean(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("nodes", type=int, nargs="+")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    print("| nodes named | filter+prioritize p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|")
    for n in args.nodes:
        r = measure(n, args.requests)
        print(f"| {n} | {r['p50']:.2f} | {r['p99']:.2f} | {r['mean']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
