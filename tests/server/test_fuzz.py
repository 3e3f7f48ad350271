"""Fuzzed requests to the in-process app: no 5xx, no crash, the state unchanged.

The fast slice of tests/fuzz (tests/integration/test_fuzz.py and `make fuzz` send the same
requests to a real `serve` process over loopback)."""

from __future__ import annotations

from pytest_aiohttp import AiohttpClient

from tests.builders import example_policy, make_cache
from tests.fuzz.strategies import FuzzRequest, for_each_batch
from tests.server.payloads import RecordingBinder, app_for, fleet_nodes, names_args, scheduler_pod

EXAMPLES = 40  # batches of 25 requests
KNOWN = ["gpu-h100", "gpu-l40s", "gpu-t4"]


def generated(count: int, seed: int) -> list[FuzzRequest]:
    found: list[FuzzRequest] = []
    # Raw bytes need a socket: the integration slice sends them.
    for_each_batch(KNOWN, count, seed, lambda batch: found.extend(r for r in batch if not r.raw))
    return found


async def test_fuzzed_requests_get_answers_below_500_and_leave_decisions_alone(
    aiohttp_client: AiohttpClient,
) -> None:
    policy = example_policy()
    binder = RecordingBinder()
    client = await aiohttp_client(app_for(policy, make_cache(policy, fleet_nodes()), binder=binder))
    probe = names_args(scheduler_pod("probe"), KNOWN)
    before = await (await client.post("/filter", data=probe)).read()
    statuses = set()

    for request in generated(EXAMPLES, 20261126):
        response = await client.request(request.method, request.path, data=request.body)
        await response.read()
        assert response.status < 500, request.describe()
        statuses.add(response.status)

    assert {200, 400} <= statuses
    assert await (await client.post("/filter", data=probe)).read() == before
    assert binder.calls == []  # no fuzzed pod exists, so nothing was bound
