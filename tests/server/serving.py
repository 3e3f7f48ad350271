"""Run `serve` in-process on loopback against a fake apiserver (a seam for server tests)."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from localcluster import free_port, write_kubeconfig

from extender.server.runtime import ServeOptions, serve
from tests.builders import EXAMPLE_POLICY
from tests.state.fake_apiserver import FakeApiServer


@dataclass
class Running:
    fake: FakeApiServer
    url: str
    policy: Path


@asynccontextmanager
async def serve_inputs(fake: FakeApiServer, directory: Path) -> AsyncIterator[ServeOptions]:
    """`fake` on loopback, a kubeconfig for it and a copy of the example policy: the
    options `serve` needs (a free port chosen), while `fake` runs."""
    apiserver = TestServer(fake.app, host="127.0.0.1")
    await apiserver.start_server()
    try:
        policy = directory / "policy.yaml"
        policy.write_text(EXAMPLE_POLICY.read_text())
        server = str(apiserver.make_url("")).rstrip("/")
        kubeconfig = write_kubeconfig(directory / "kc", server, None, "test")
        yield ServeOptions(policy=policy, port=free_port(), kubeconfig=kubeconfig)
    finally:
        await apiserver.close()


@asynccontextmanager
async def serving(fake: FakeApiServer, directory: Path, **options: Any) -> AsyncIterator[Running]:
    """`serve` on a free loopback port, watching `fake`, with a copy of the example policy."""
    async with serve_inputs(fake, directory) as inputs:
        serve_options = dataclasses.replace(inputs, **options)
        started, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve(serve_options, started=started, stop=stop))
        try:
            await asyncio.wait_for(started.wait(), 10)
            scheme = "https" if serve_options.tls_cert else "http"
            yield Running(fake, f"{scheme}://127.0.0.1:{inputs.port}", inputs.policy)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def get(url: str, ssl_context: ssl.SSLContext | None = None) -> tuple[int, str]:
    connector = aiohttp.TCPConnector(ssl=ssl_context) if ssl_context else None
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as response:
        return response.status, await response.text()
