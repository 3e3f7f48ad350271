"""`serve` as a whole: List-Watch readiness and policy hot reload, against a fake apiserver."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from extender.server.metrics import Metrics
from extender.server.runtime import Supervisor, serve
from tests.builders import node_dict, pod_dict
from tests.server.payloads import bind_args, names_args, scheduler_pod
from tests.server.serving import Running, get, serve_inputs, serving
from tests.state.fake_apiserver import FakeApiServer


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    fake = FakeApiServer()
    fake.kinds["nodes"].objects = [node_dict("h100-a", "H100"), node_dict("t4-a", "T4", gpus=4)]
    fake.kinds["pods"].objects = [pod_dict("train", 2, workload="batch", node="t4-a", uid="u1")]
    async with serving(fake, tmp_path, policy_poll_seconds=0.05) as server:
        yield server


async def eventually(url: str, status: int, timeout: float = 5.0) -> str:
    async with asyncio.timeout(timeout):
        while True:
            code, text = await get(url)
            if code == status:
                return text
            await asyncio.sleep(0.02)


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


async def test_serve_becomes_ready_once_nodes_and_pods_are_listed(running: Running) -> None:
    await eventually(f"{running.url}/readyz", 200)
    status, body = await get(f"{running.url}/debug/cache?node=t4-a")
    assert status == 200
    assert '"gpuClass":"economy"' in body
    assert '"heldMilliByWorkload":{"batch":2000}' in body


async def test_serve_is_not_ready_while_the_apiserver_refuses_to_list(tmp_path: Path) -> None:
    fake = FakeApiServer()
    nodes = fake.kinds["nodes"]
    nodes.list_status = [503] * 1000
    async with serving(fake, tmp_path) as server:
        # Not ready because the lists were refused (not because none was tried yet): the
        # pods listed, the nodes were refused twice, and the answer says which.
        async with asyncio.timeout(10):
            while len(nodes.list_calls) < 2 or not fake.kinds["pods"].list_calls:
                await asyncio.sleep(0.01)
        status, text = await get(f"{server.url}/readyz")
        assert (status, text) == (503, "not ready: nodes synced=False, pods synced=True")
        assert (await get(f"{server.url}/healthz"))[0] == 200
        # The API server answers again: ready after the next list, without a restart.
        nodes.list_status.clear()
        await eventually(f"{server.url}/readyz", 200, timeout=10)


async def test_a_changed_valid_policy_takes_effect_without_restart(running: Running) -> None:
    await eventually(f"{running.url}/readyz", 200)
    # Demote T4 from economy to standard: the cached node's class must follow.
    text = running.policy.read_text()
    text = text.replace(
        "products: [A100, L40S, L40, A10G, A10, L4]", "products: [A100, L40S, L4, T4]"
    )
    text = text.replace("products: [T4, V100, P100]", "products: [V100, P100]")
    running.policy.write_text(text)
    async with asyncio.timeout(5):
        while '"gpuClass":"standard"' not in (await get(f"{running.url}/debug/cache?node=t4-a"))[1]:
            await asyncio.sleep(0.02)
    metrics = (await get(f"{running.url}/metrics"))[1]
    assert metric(metrics, "gpuclass_extender_policy_reloads_total", result="applied") == 1


async def test_a_policy_reading_a_new_node_label_relists_the_nodes(running: Running) -> None:
    """The cache keeps only the labels the policy reads: a new one means a fresh list."""
    await eventually(f"{running.url}/readyz", 200)
    lists_before = len(running.fake.kinds["nodes"].list_calls)
    text = running.policy.read_text()
    running.policy.write_text(
        text.replace(
            "{key: nvidia.com/gpu.memory, operator: Gt",
            "{key: example.com/new-label, operator: DoesNotExist}\n"
            "    - {key: nvidia.com/gpu.memory, operator: Gt",
        )
    )
    async with asyncio.timeout(5):
        while len(running.fake.kinds["nodes"].list_calls) == lists_before:
            await asyncio.sleep(0.02)
    await eventually(f"{running.url}/readyz", 200)
    assert len(running.fake.kinds["pods"].list_calls) == 1, "pod inputs did not change"


async def test_a_broken_policy_is_rejected_and_counted_and_the_old_one_stays(
    running: Running,
) -> None:
    await eventually(f"{running.url}/readyz", 200)
    before = (await get(f"{running.url}/debug/cache"))[1]
    running.policy.write_text("apiVersion: gpuclass.example.io/v1alpha1\nkind: GpuClassPolicy\n")
    async with asyncio.timeout(5):
        while True:
            metrics = (await get(f"{running.url}/metrics"))[1]
            if metric(metrics, "gpuclass_extender_policy_reloads_total", result="rejected"):
                break
            await asyncio.sleep(0.02)
    assert (await get(f"{running.url}/debug/cache"))[1] == before
    status, _ = await get(f"{running.url}/readyz")
    assert status == 200


async def test_a_failed_start_leaves_no_task_and_no_connection_behind(tmp_path: Path) -> None:
    """The port is taken: serve fails, and the watches, reloaders and API client it had
    started are gone with it."""
    async with serve_inputs(FakeApiServer(), tmp_path) as inputs:
        before = asyncio.all_tasks()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            options = dataclasses.replace(inputs, port=taken.getsockname()[1])
            with pytest.raises(OSError, match="address already in use"):
                await serve(options)
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == before


async def test_a_crashed_background_task_is_restarted_and_counted() -> None:
    metrics = Metrics()
    supervisor = Supervisor(metrics, backoff_max=0.01)
    runs: list[int] = []
    crashes: list[str] = []
    running = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("a bug")
        if len(runs) == 2:
            return  # an unexpected end is a crash too
        running.set()
        await asyncio.sleep(3600)

    supervisor.start("flaky", flaky, on_crash=lambda: crashes.append("crash"))
    try:
        await asyncio.wait_for(running.wait(), 5)
    finally:
        await supervisor.stop()
    assert runs == [0, 1, 2]
    assert crashes == ["crash", "crash"]
    restarts = "gpuclass_extender_background_task_restarts_total"
    assert metrics.registry.get_sample_value(restarts, {"task": "flaky"}) == 2
    assert all(task.done() for task in supervisor.tasks)


async def test_port_0_serves_on_ports_the_os_picks_and_logs_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A supervisor that starts `serve --port 0` (hack/controlplane/processes.py) reads
    the ports from the "serving" line."""
    caplog.set_level("INFO", logger="extender.server.runtime")
    async with serving(FakeApiServer(), tmp_path, health_port=0) as server:
        (line,) = [r for r in caplog.records if r.getMessage() == "serving"]
        logged = (line.port, line.health_port, line.admission_port)  # type: ignore[attr-defined]
        assert logged == (server.bound.port, server.bound.health_port, None)
        assert 0 not in logged
        assert server.bound.port != server.bound.health_port
        assert (await get(f"http://127.0.0.1:{server.bound.port}/readyz"))[0] in (200, 503)
        health = f"http://127.0.0.1:{server.bound.health_port}/healthz"
        assert (await get(health))[0] == 200


async def test_what_filter_saw_of_a_pod_serves_its_bind_only_within_the_assume_ttl(
    tmp_path: Path,
) -> None:
    """A bind soon after the pod's filter binds the pod filter got (no read); once
    --assume-ttl-seconds have passed, what filter saw is dropped (the memory comes back)
    and the bind reads the pod afresh."""
    fake = FakeApiServer()
    fake.kinds["nodes"].objects = [node_dict("h100-a", "H100")]
    soon, late = scheduler_pod("soon-1", uid="u-soon"), scheduler_pod("late-1", uid="u-late")
    async with serving(fake, tmp_path, assume_ttl_seconds=1.0) as server:
        await eventually(f"{server.url}/readyz", 200)
        async with aiohttp.ClientSession() as session:
            for pod in (soon, late):
                body = names_args(pod, ["h100-a"])
                async with session.post(f"{server.url}/filter", data=body) as response:
                    assert response.status == 200
            async with session.post(f"{server.url}/bind", data=bind_args(soon, "h100-a")):
                pass
            assert fake.pod_reads == []
            await asyncio.sleep(1.5)
            async with session.post(f"{server.url}/bind", data=bind_args(late, "h100-a")):
                pass
    assert fake.pod_reads == [("ml", "late-1")]
