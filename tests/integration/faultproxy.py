"""An HTTP proxy between a client and the real kube-apiserver that breaks what it relays.

The client speaks plain HTTP to the proxy on loopback (its kubeconfig's token passes
through); the proxy speaks HTTPS to the API server. With no fault set it relays every
request, watch streams line by line. `fault(mode)` breaks open watch streams at once and
every request after it until `fault(None)`:

- "garbage": a line that is not JSON in each stream; other requests get a body that is not;
- "truncate": half an event, then the end of the stream; other requests a cut-off body;
- "reset": the connection dropped without an answer;
- "stall": silence; other requests wait until the fault ends, then go through.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path

import aiohttp
from aiohttp import web

MODES = ("garbage", "truncate", "reset", "stall")
HALF_EVENT = b'{"type":"MODIFIED","object":{"kind":"Node","metadata":{"na'
FORWARDED_HEADERS = ("Authorization", "Accept", "Content-Type", "User-Agent")


class FaultProxy:
    def __init__(self, upstream: str, ca_file: Path) -> None:
        self.upstream = upstream.rstrip("/")
        self.ca_file = ca_file
        self.mode: str | None = None
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> str:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def fault(self, mode: str | None) -> None:
        """Break (or, with None, mend) the path from now on."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"unknown fault {mode!r}; one of {MODES}")
        asyncio.run_coroutine_threadsafe(self._set(mode), self._loop).result(10)

    async def _set(self, mode: str | None) -> None:
        self.mode = mode
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _start(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context), timeout=aiohttp.ClientTimeout(None)
        )
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        await self._set(None)
        if self._session is not None:
            await self._session.close()  # ends the relayed streams
        if self._runner is not None:
            await self._runner.cleanup()
        # Relays of broken streams may still wait for a client that left.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        while self.mode == "stall":
            await self._changed.wait()
        if self.mode is not None:
            return await self._broken_answer(request, self.mode)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS}
        upstream = await self._session.request(
            request.method,
            self.upstream + request.rel_url.path_qs,
            headers=headers,
            data=await request.read() if request.can_read_body else None,
        )
        try:
            if _is_watch(request) and upstream.status == 200:
                return await self._relay_watch(request, upstream)
            body = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=body,
                content_type=upstream.content_type,
            )
        finally:
            upstream.release()

    async def _broken_answer(self, request: web.Request, mode: str) -> web.StreamResponse:
        if mode != "reset" and not _is_watch(request):
            return web.Response(status=200, body=_broken(mode), content_type="application/json")
        response = web.StreamResponse()
        response.content_type = "application/json"
        if mode != "reset":
            await response.prepare(request)
        return await self._break_stream(request, response, mode)

    async def _relay_watch(
        self, request: web.Request, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        line = asyncio.ensure_future(upstream.content.readline())
        try:
            while True:
                changed = asyncio.ensure_future(self._changed.wait())
                await asyncio.wait({line, changed}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                while self.mode == "stall":  # send nothing until the fault ends
                    await self._changed.wait()
                if self.mode is not None:
                    return await self._break_stream(request, response, self.mode)
                if line.done():
                    data = line.result()
                    if not data:
                        return response
                    await response.write(data)
                    line = asyncio.ensure_future(upstream.content.readline())
        finally:
            line.cancel()

    async def _break_stream(
        self, request: web.Request, response: web.StreamResponse, mode: str
    ) -> web.StreamResponse:
        if mode == "reset":
            assert request.transport is not None
            request.transport.abort()
        else:
            await response.write(_broken(mode))
        return response


def _broken(mode: str) -> bytes:
    """What a "garbage" or "truncate" fault sends instead of the API server's answer."""
    return b"{garbage\n" if mode == "garbage" else HALF_EVENT


def _is_watch(request: web.Request) -> bool:
    # kubernetes-asyncio sends watch=True, client-go watch=true.
    return request.query.get("watch", "").lower() in ("true", "1")
