"""Limits: every verb answers within its time budget, with a reason, whatever the client or
the API server does; a flood of requests waits for a slot or is told the server is busy."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from extender.policy import Policy
from extender.server.app import Limits
from extender.server.runtime import app_runner
from tests.builders import example_policy, make_cache
from tests.server.payloads import (
    Client,
    RecordingBinder,
    app_for,
    bind_args,
    fleet_nodes,
    names_args,
    scheduler_pod,
)

BUDGET = 0.3


class StuckBinder(RecordingBinder):
    """An API server that never answers a bind."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()

    async def __call__(self, **call: object) -> None:
        self.started.set()
        await asyncio.Event().wait()


@pytest.fixture
def policy() -> Policy:
    return example_policy()


async def make_client(
    aiohttp_client: AiohttpClient, policy: Policy, binder: RecordingBinder, **limits: Any
) -> Client:
    binder.knows(scheduler_pod("infer-a"), scheduler_pod("infer-b"))
    cache = make_cache(policy, fleet_nodes())
    return await aiohttp_client(app_for(policy, cache, binder=binder, limits=Limits(**limits)))


async def free_gpus(client: Client, node: str) -> list[int]:
    answer = await (await client.get("/debug/cache", params={"node": node})).json()
    return list(answer["freeMilliPerGpu"])


async def test_a_bind_the_api_server_never_answers_is_answered_within_the_budget(
    aiohttp_client: AiohttpClient, policy: Policy
) -> None:
    client = await make_client(aiohttp_client, policy, StuckBinder(), budget_seconds=BUDGET)
    before = await free_gpus(client, "gpu-l40s")
    started = time.monotonic()

    response = await client.post("/bind", data=bind_args(scheduler_pod("infer-a"), "gpu-l40s"))

    assert time.monotonic() - started < BUDGET + 1.0
    assert response.status == 503
    assert await response.json() == {
        "error": "OverBudget",
        "message": "no answer within the 0.3 s request budget (still deciding)",
    }
    # The charge made before the API call is undone.
    assert await free_gpus(client, "gpu-l40s") == before


async def test_a_flood_beyond_the_slots_is_told_the_server_is_busy_and_nothing_hangs(
    aiohttp_client: AiohttpClient, policy: Policy
) -> None:
    client = await make_client(
        aiohttp_client, policy, StuckBinder(), max_concurrent=1, budget_seconds=BUDGET
    )
    body = bind_args(scheduler_pod("infer-a"), "gpu-l40s")
    started = time.monotonic()

    # One slot, six binds the API server never answers: each holds the slot for its budget.
    responses = await asyncio.gather(*(client.post("/bind", data=body) for _ in range(6)))

    assert time.monotonic() - started < BUDGET + 1.0
    answers = [(r.status, await r.json()) for r in responses]
    assert {status for status, _ in answers} == {503}
    errors = [answer["error"] for _, answer in answers]
    # The slot's holder ran out of budget deciding (its bind never answered); those still
    # waiting for the slot when their budget ran out were told the server is busy (the
    # holder frees it at its own deadline, so the next in line may just make it).
    assert errors.count("OverBudget") >= 1
    assert errors.count("Overloaded") >= 4
    budget = "no answer within the 0.3 s request budget"
    for _, answer in answers:
        assert answer["message"] == (
            f"{budget} (still waiting for a free request slot): 1 requests in flight"
            if answer["error"] == "Overloaded"
            else f"{budget} (still deciding)"
        )
    # Probes never wait for a slot; the verbs serve again once the flood is over.
    assert (await client.get("/healthz")).status == 200
    after = await client.post("/filter", data=names_args(scheduler_pod("infer-b"), ["gpu-l40s"]))
    assert after.status == 200
    assert (await after.json())["NodeNames"] == ["gpu-l40s"]


async def test_a_client_that_trickles_its_body_is_cut_off_at_the_budget(
    aiohttp_client: AiohttpClient, policy: Policy
) -> None:
    client = await make_client(aiohttp_client, policy, RecordingBinder(), budget_seconds=BUDGET)
    body = names_args(scheduler_pod("infer-a"), ["gpu-l40s"])
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[:10]
    )
    await writer.drain()
    started = time.monotonic()

    answer = await asyncio.wait_for(reader.read(65536), timeout=5)

    assert time.monotonic() - started < BUDGET + 1.0
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert orjson.loads(payload) == {
        "error": "SlowClient",
        "message": "no answer within the 0.3 s request budget (still reading the request body)",
    }
    writer.close()
    # And the server serves the next client as usual.
    response = await client.post("/filter", data=body)
    assert response.status == 200
    assert (await response.json())["NodeNames"] == ["gpu-l40s"]


async def test_a_client_that_trickles_its_headers_is_disconnected(policy: Policy) -> None:
    app = app_for(policy, make_cache(policy, fleet_nodes()))
    runner = app_runner(app, keepalive_seconds=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /filter HTTP/1.1\r\n")
        started = time.monotonic()

        async def trickle() -> None:
            for _ in range(20):  # one header line every 0.1 s, never the blank line
                await asyncio.sleep(0.1)
                writer.write(b"X-Slow: yes\r\n")

        trickling = asyncio.create_task(trickle())
        assert await asyncio.wait_for(reader.read(1024), timeout=5) == b""  # closed, no answer
        assert time.monotonic() - started < 1.5
        trickling.cancel()
        writer.close()
    finally:
        await runner.cleanup()
