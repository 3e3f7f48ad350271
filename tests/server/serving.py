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
from localcluster import write_kubeconfig

from extender.server.runtime import Bound, ServeOptions, serve
from tests.builders import EXAMPLE_POLICY
from tests.state.fake_apiserver import FakeApiServer


@dataclass
class Running:
    fake: FakeApiServer
    url: str
    policy: Path
    bound: Bound


@asynccontextmanager
async def serve_inputs(fake: FakeApiServer, directory: Path) -> AsyncIterator[ServeOptions]:
    """`fake` on loopback, a kubeconfig for it and a copy of the example policy: the
    options `serve` needs (port 0: one the OS picks), while `fake` runs."""
    apiserver = TestServer(fake.app, host="127.0.0.1")
    await apiserver.start_server()
    try:
        policy = directory / "policy.yaml"
        policy.write_text(EXAMPLE_POLICY.read_text())
        server = str(apiserver.make_url("")).rstrip("/")
        kubeconfig = write_kubeconfig(directory / "kc", server, None, "test")
        yield ServeOptions(policy=policy, port=0, kubeconfig=kubeconfig)
    finally:
        await apiserver.close()


@asynccontextmanager
async def serving(fake: FakeApiServer, directory: Path, **options: Any) -> AsyncIterator[Running]:
    """`serve` on loopback ports the OS picks, watching `fake`, with a copy of the example
    policy."""
    async with serve_inputs(fake, directory) as inputs:
        serve_options = dataclasses.replace(inputs, **options)
        started: asyncio.Future[Bound] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(serve(serve_options, started=started, stop=stop))
        try:
            bound = await asyncio.wait_for(_first(started, task), 10)
            scheme = "https" if serve_options.tls_cert else "http"
            url = f"{scheme}://127.0.0.1:{bound.port}"
            yield Running(fake, url, inputs.policy, bound)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def get(url: str, ssl_context: ssl.SSLContext | None = None) -> tuple[int, str]:
    connector = aiohttp.TCPConnector(ssl=ssl_context) if ssl_context else None
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as response:
        return response.status, await response.text()


async def _first(started: asyncio.Future[Bound], task: asyncio.Task[None]) -> Bound:
    """The bound ports, or the error that ended `serve` before it bound them."""
    await asyncio.wait((started, task), return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        task.result()  # serve's own error
        raise RuntimeError("serve ended without listening")
    return started.result()
