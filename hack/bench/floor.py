"""The floor extender of performance-notes.md: aiohttp + uvloop + orjson, nothing else.

It parses the request, does one dict look-up per node and answers filter (every known node
passes) and prioritize (a score from the look-up). No Python HTTP extender on this stack
can be faster, so our figures are reported as ratios to it. Beyond the notes it also
answers full-Node requests and bind (`{"Error": ""}`, or with --kubeconfig the one API
call a bind needs, the Binding, made as our bind makes it), so every verb and mode we
measure has a floor. In full-Node mode it decodes with msgspec, reading only each item's
metadata.name and echoing the items' raw bytes (orjson would build every Node as Python
objects, which no fast extender does, so it would be no floor).

    PYTHONPATH=hack python -m bench.floor --nodes 5000 [--port 0] [--kubeconfig PATH]
prints {"port": P, "pid": ...} on stdout once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import orjson
from aiohttp import web

from bench.fixtures import node_names
from extender.errors import KubeError
from extender.state.kube import DirectApi, api_client, bind_pod

KEEPALIVE_SECONDS = 120.0  # as serve's
MAX_BODY = 64 << 20


def _json(value: Any) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")


class _Meta(msgspec.Struct):
    name: str = ""


class _Item(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


class _NodeList(msgspec.Struct):
    items: list[msgspec.Raw] = msgspec.field(default_factory=list)


class _FullArgs(msgspec.Struct):
    Nodes: _NodeList | None = None


class _FullFilterResult(msgspec.Struct):
    Nodes: dict[str, Any]
    NodeNames: None = None
    FailedNodes: dict[str, str] = msgspec.field(default_factory=dict)
    FailedAndUnresolvableNodes: dict[str, str] = msgspec.field(default_factory=dict)
    Error: str = ""


_full_args = msgspec.json.Decoder(_FullArgs)
_item = msgspec.json.Decoder(_Item)
_encoder = msgspec.json.Encoder()


Binder = Callable[..., Awaitable[None]]


def floor_app(names: list[str], binder: Binder | None = None) -> web.Application:
    index = {name: i for i, name in enumerate(names)}

    def nodes_of(body: bytes) -> tuple[list[str], list[msgspec.Raw] | None]:
        """Names (cache mode: orjson), or names and the raw items (full-Node mode: msgspec,
        which reads only metadata.name of each item and keeps the item's bytes)."""
        # Go writes Pod, Nodes, NodeNames in this order, without spaces.
        if not body.rstrip().endswith(b'"NodeNames":null}'):
            names = orjson.loads(body)["NodeNames"]
            if names is not None:
                return names, None
        args = _full_args.decode(body)
        assert args.Nodes is not None
        items = args.Nodes.items
        return [_item.decode(raw).metadata.name for raw in items], items

    async def filter_(request: web.Request) -> web.Response:
        names, items = nodes_of(await request.read())
        known = [index.get(name) is not None for name in names]
        if items is None:
            answer: dict[str, Any] = {
                "NodeNames": [n for n, k in zip(names, known, strict=True) if k],
                "Nodes": None,
                "FailedNodes": {},
                "FailedAndUnresolvableNodes": {},
                "Error": "",
            }
            return _json(answer)
        passed = [item for item, k in zip(items, known, strict=True) if k]
        result = _FullFilterResult(Nodes={"metadata": {}, "items": passed})
        return web.Response(body=_encoder.encode(result), content_type="application/json")

    async def prioritize(request: web.Request) -> web.Response:
        names, _ = nodes_of(await request.read())
        scores = []
        for name in names:
            i = index.get(name)
            if i is not None:
                scores.append({"Host": name, "Score": i % 11})
        return _json(scores)

    async def bind(request: web.Request) -> web.Response:
        args = orjson.loads(await request.read())
        if binder is None:
            return _json({"Error": ""})
        try:
            await binder(
                namespace=args["PodNamespace"],
                name=args["PodName"],
                uid=args["PodUID"],
                node=args["Node"],
            )
        except KubeError as exc:
            return _json({"Error": str(exc)})
        return _json({"Error": ""})

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_routes(
        [
            web.post("/filter", filter_),
            web.post("/prioritize", prioritize),
            web.post("/bind", bind),
            web.get("/healthz", ok),
            web.get("/readyz", ok),
        ]
    )
    return app


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    on_ready: Any = None,
    info: dict[str, Any] | None = None,
) -> None:
    """Serve `app` as `serve` does (AppRunner, no access log, 120 s keep-alive) until
    SIGTERM; prints the bound port as JSON on stdout."""
    import os
    import signal

    runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_ready is not None:
        on_ready()
    print(json.dumps({"port": bound, "pid": os.getpid(), **(info or {})}), flush=True)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", type=Path, help="bind for real, as this user")
    args = parser.parse_args(argv)
    uvloop.run(_serve(args))
    return 0


async def _serve(args: argparse.Namespace) -> None:
    names = node_names(args.nodes)
    if args.kubeconfig is None:
        await serve_app(floor_app(names), args.host, args.port)
        return
    api = await api_client(args.kubeconfig)
    direct = DirectApi(api)
    try:
        await serve_app(floor_app(names, partial(bind_pod, direct)), args.host, args.port)
    finally:
        await direct.close()
        await api.close()


if __name__ == "__main__":
    sys.exit(main())
