"""GET /debug/doctor: the doctor's report from the running server, read-only."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from extender.doctor.cluster import ClusterListing
from extender.state import ClusterCache
from tests.builders import PREFIX, example_policy, node_dict, pod_dict
from tests.server.payloads import app_for
from tests.server.serving import get, serving
from tests.state.fake_apiserver import FakeApiServer


def fake_cluster() -> FakeApiServer:
    fake = FakeApiServer()
    fake.kinds["nodes"].objects = [
        node_dict("h1", "H100", 8),
        node_dict("t1", "T4", 4, labels={f"{PREFIX}class": "premium"}),
    ]
    contradictory = {
        f"{PREFIX}required-classes": "premium",
        f"{PREFIX}excluded-classes": "premium",
    }
    fake.kinds["pods"].objects = [pod_dict("stuck", annotations=contradictory)]

    async def forbidden(request: web.Request) -> web.Response:
        status = {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "no list"}
        return web.json_response(status, status=403)

    # Karpenter is installed but this identity may not read its NodePools.
    fake.app.router.add_get("/apis/karpenter.sh/v1/nodepools", forbidden)
    return fake


async def test_the_report_lists_findings_from_a_fresh_listing(tmp_path: Path) -> None:
    async with serving(fake_cluster(), tmp_path) as server:
        status, text = await get(server.url + "/debug/doctor")
    assert status == 200
    report = orjson.loads(text)
    assert report["summary"]["nodes"] == 2
    assert report["summary"]["nodesPerClass"] == {"premium": 1, "standard": 0, "economy": 1}
    found = {(f["code"], f["subject"]) for f in report["findings"]}
    assert ("class-label-disagrees", "node/t1") in found
    assert ("contradictory-wishes", "pod/ml/stuck") in found
    assert ("templates-unreadable", "nodepools.karpenter.sh") in found
    # errors come first
    severities = [f["severity"] for f in report["findings"]]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)


async def test_the_report_as_a_table(tmp_path: Path) -> None:
    async with serving(fake_cluster(), tmp_path) as server:
        status, text = await get(server.url + "/debug/doctor?output=table")
    assert status == 200
    assert text.startswith("cluster: 2 nodes (2 with GPUs; premium 1, standard 0, economy 1)")
    assert "ERROR   over-constraint/contradictory-wishes  pod/ml/stuck" in text


async def test_one_report_at_a_time_the_next_caller_is_told_to_retry(
    aiohttp_client: AiohttpClient,
) -> None:
    policy = example_policy()
    listing = asyncio.Event()
    release = asyncio.Event()

    async def slow_source() -> ClusterListing:
        listing.set()
        await release.wait()
        return ClusterListing([orjson.dumps(node_dict("h1"))], [])

    client = await aiohttp_client(app_for(policy, ClusterCache(policy), doctor_source=slow_source))
    first = asyncio.create_task(client.get("/debug/doctor"))
    await listing.wait()
    busy = await client.get("/debug/doctor")
    assert busy.status == 503
    assert "a doctor report is being built" in (await busy.json())["message"]
    release.set()
    assert (await first).status == 200
    assert (await client.get("/debug/doctor")).status == 200


async def test_without_api_credentials_the_report_says_why(aiohttp_client: AiohttpClient) -> None:
    policy = example_policy()
    client = await aiohttp_client(app_for(policy, ClusterCache(policy)))
    response = await client.get("/debug/doctor")
    assert response.status == 502
    assert "doctor is not enabled" in (await response.json())["message"]


async def test_the_report_is_built_in_the_worker_not_on_the_event_loop(
    aiohttp_client: AiohttpClient,
) -> None:
    """Decoding and checking a whole cluster takes seconds of CPU: the verbs' loop hands it
    to the worker (a process of its own in `serve`)."""
    policy = example_policy()
    worker_threads: list[str] = []

    class RecordingWorker(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            def run() -> Any:
                worker_threads.append(threading.current_thread().name)
                return fn(*args, **kwargs)

            return super().submit(run)

    async def source() -> ClusterListing:
        return ClusterListing([orjson.dumps(node_dict("h1"))], [])

    with RecordingWorker(thread_name_prefix="doctor-worker") as worker:
        app = app_for(policy, ClusterCache(policy), doctor_source=source, doctor_worker=worker)
        client = await aiohttp_client(app)
        response = await client.get("/debug/doctor")
    assert response.status == 200
    assert (await response.json())["summary"]["nodes"] == 1
    assert len(worker_threads) == 1
    assert worker_threads[0].startswith("doctor-worker")
