"""Closed-loop HTTP/1.1 load generator, run as its own process (uvloop, raw asyncio streams).

Each of `concurrency` workers owns one keep-alive connection, as the scheduler's Go client
reuses its connections, and sends the next request as soon as the previous answer is read
in full; latency is from the first byte written to the last body byte read. Requests are
prebuilt bytes (the headers Go sends), so the client's own cost per request is small; the
floor extender, measured the same way, shows what is left of it.

Commands arrive as JSON lines on stdin, results leave as JSON lines on stdout:
  {"port": 8888, "path": "/filter", "bodies": ["a.json", ...], "concurrency": 8,
   "duration": 2.0, "min_requests": 50, "max_requests": 20000, "cap": 30.0, "warmup": 5}
  -> {"latencies_us": [...], "elapsed": s, "errors": n, "first": "<start of an answer>"}
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

_bodies: dict[str, bytes] = {}


def _request(path: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
        "Accept-Encoding: gzip\r\n\r\n"
    )
    return head.encode() + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
    end = lower.find(b"\r\n", at + 2)
    body = await reader.readexactly(int(head[at + 17 : end]))
    return status, body


async def run(cmd: dict[str, Any]) -> dict[str, Any]:
    port, path = int(cmd["port"]), str(cmd["path"])
    for name in cmd["bodies"]:
        if name not in _bodies:
            _bodies[name] = Path(name).read_bytes()  # noqa: ASYNC240  (before any timing)
    requests = [_request(path, port, _bodies[name]) for name in cmd["bodies"]]
    concurrency = int(cmd["concurrency"])
    conns = [
        await asyncio.open_connection("127.0.0.1", port, limit=1 << 26) for _ in range(concurrency)
    ]
    first = b""
    errors = 0

    async def warm(k: int) -> None:
        nonlocal first
        reader, writer = conns[k]
        for i in range(int(cmd.get("warmup", 3))):
            writer.write(requests[(k + i) % len(requests)])
            status, body = await _response(reader)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}: {body[:300]!r}")
            first = first or body[:300]

    await asyncio.gather(*(warm(k) for k in range(concurrency)))

    latencies: list[float] = []
    duration, cap = float(cmd["duration"]), float(cmd["cap"])
    min_requests, max_requests = int(cmd["min_requests"]), int(cmd["max_requests"])
    started = time.perf_counter()
    soft_end, hard_end = started + duration, started + cap

    async def worker(k: int) -> None:
        nonlocal errors
        reader, writer = conns[k]
        i = k
        while True:
            now = time.perf_counter()
            count = len(latencies)
            if (
                count >= max_requests
                or now >= hard_end
                or (now >= soft_end and count >= min_requests)
            ):
                return
            request = requests[i % len(requests)]
            i += 1
            t0 = time.perf_counter_ns()
            writer.write(request)
            status, _ = await _response(reader)
            latencies.append((time.perf_counter_ns() - t0) / 1000)
            if status != 200:
                errors += 1

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    for _, writer in conns:
        writer.close()
    return {
        "latencies_us": latencies,
        "elapsed": elapsed,
        "errors": errors,
        "first": first.decode(errors="replace"),
    }


async def serve_commands() -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        try:
            result = await run(json.loads(line))
        except Exception as exc:  # reported to the parent, which decides
            result = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        del result
        gc.collect()  # between runs, never during one


def main() -> int:
    import uvloop

    gc.disable()  # latency samples are floats in a list: no cycles, no pauses wanted
    uvloop.run(serve_commands())
    return 0


if __name__ == "__main__":
    sys.exit(main())
