"""The Events filter and prioritize record on a pod, through a recorder with a fake sink."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from extender.policy import Policy
from extender.policy.intent import pod_intent
from extender.server.events import (
    CONTROLLER,
    REASON_SCORED,
    REASON_UNSCHEDULABLE,
    record_scored,
)
from extender.server.metrics import Metrics
from extender.state import ClusterCache, NodeFeatures
from extender.state.events import EventRecorder, Observation
from extender.wire import decode_pod
from tests.builders import PREFIX, example_policy, make_cache, make_pod, node_dict, pod_dict
from tests.server.payloads import (
    Client,
    app_for,
    fleet_nodes,
    names_args,
    priorities,
    scheduler_pod,
)
from tests.server.serving import get, serving
from tests.state.fake_apiserver import FakeApiServer
from tests.state.test_events import FakeSink


@pytest.fixture
def policy() -> Policy:
    return example_policy()


@pytest.fixture
def cache(policy: Policy) -> ClusterCache:
    """The fleet, with gpu-a100 full: a batch job holds both its GPUs."""
    train = make_pod("train", 2, workload="batch", node="gpu-a100", phase="Running", uid="u-train")
    return make_cache(policy, fleet_nodes(), [train])


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def recorder(sink: FakeSink, metrics: Metrics) -> EventRecorder:
    return EventRecorder(
        sink,
        controller=CONTROLLER,
        instance="extender-0",
        on_outcome=lambda outcome: metrics.events.labels(outcome).inc(),
    )


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient,
    policy: Policy,
    cache: ClusterCache,
    recorder: EventRecorder,
    metrics: Metrics,
    request: pytest.FixtureRequest,
) -> Client:
    """The extender as served; `scored_client`: with --scored-events."""
    scored = request.fixturename == "scored_client"
    app = app_for(policy, cache, metrics=metrics, events=recorder, scored_events=scored)
    return await aiohttp_client(app)


scored_client = client


async def call(client: Client, verb: str, pod: dict[str, object], names: list[str]) -> object:
    response = await client.post(f"/{verb}", data=names_args(pod, names))
    assert response.status == 200, await response.text()
    return await response.json()


def queued(recorder: EventRecorder) -> list[Observation]:
    return [s.observation for s in recorder.queue._queue]  # type: ignore[attr-defined]


async def test_prioritize_records_no_event_unless_asked(
    client: Client, recorder: EventRecorder
) -> None:
    """The decision record on the Binding says it without an API write per pod."""
    await call(client, "prioritize", scheduler_pod("infer-a"), ["gpu-l40s", "gpu-h100"])
    assert queued(recorder) == []


async def test_prioritize_with_scored_events_records_the_best_node_and_its_class(
    scored_client: Client, recorder: EventRecorder
) -> None:
    pod = scheduler_pod("infer-a")
    await call(scored_client, "prioritize", pod, ["gpu-t4", "gpu-l40s", "gpu-h100"])
    [seen] = queued(recorder)
    assert (seen.type, seen.reason, seen.action) == ("Normal", REASON_SCORED, "Scoring")
    assert seen.regarding.namespace == "ml"
    assert (seen.regarding.name, seen.regarding.uid) == ("infer-a", "uid-infer-a")
    assert seen.note.startswith("best: gpu-h100 (premium, score ")
    assert "of 3 nodes" in seen.note
    assert "interactive prefers premium > standard" in seen.note
    assert "no batch pods on it" in seen.note


async def test_a_filter_that_leaves_no_node_records_the_per_rule_counts(
    client: Client, recorder: EventRecorder
) -> None:
    pod = scheduler_pod("infer-a", annotations={f"{PREFIX}required-classes": "premium"})
    answer = await call(client, "filter", pod, ["gpu-t4", "gpu-a100", "gpu-l40s"])
    assert answer["NodeNames"] == []  # type: ignore[index]
    [seen] = queued(recorder)
    assert (seen.type, seen.reason, seen.action) == ("Warning", REASON_UNSCHEDULABLE, "Scheduling")
    assert seen.note == "0/3 nodes: 3 wrong GPU class (need premium or better)"


async def test_the_summary_counts_each_rule_most_frequent_first(
    client: Client, recorder: EventRecorder
) -> None:
    # gpu-a100 is full (gpu_fit); t4 is below interactive's standard floor (class_required).
    names = ["gpu-t4", "gpu-a100", "cpu-1"]
    await call(client, "filter", scheduler_pod("infer-a"), names)
    [seen] = queued(recorder)
    assert seen.note.startswith("0/3 nodes: ")
    assert "1 not enough free GPUs" in seen.note
    assert "1 without GPUs" in seen.note
    assert "1 wrong GPU class (need " in seen.note


async def test_a_filter_that_passes_a_node_records_nothing(
    client: Client, recorder: EventRecorder
) -> None:
    await call(client, "filter", scheduler_pod("infer-a"), ["gpu-t4", "gpu-h100"])
    assert queued(recorder) == []


async def test_repeated_failing_filters_aggregate_into_one_event(
    client: Client, recorder: EventRecorder, sink: FakeSink, metrics: Metrics
) -> None:
    pod = scheduler_pod("infer-a", annotations={f"{PREFIX}required-classes": "premium"})
    await call(client, "filter", pod, ["gpu-t4"])
    await recorder.drain()
    for _ in range(4):
        await call(client, "filter", pod, ["gpu-t4"])
    await recorder.drain()
    await recorder.flush(final=True)
    [name] = sink.events
    assert sink.counts[name] == 5
    assert (
        metrics.registry.get_sample_value("gpuclass_extender_events_total", {"outcome": "recorded"})
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "gpuclass_extender_events_total", {"outcome": "aggregated"}
        )
        == 4
    )


async def test_a_full_queue_drops_the_event_and_never_the_answer(
    aiohttp_client: AiohttpClient, policy: Policy, cache: ClusterCache, metrics: Metrics
) -> None:
    recorder = EventRecorder(
        FakeSink(),
        controller=CONTROLLER,
        instance="x",
        queue_size=1,
        on_outcome=lambda outcome: metrics.events.labels(outcome).inc(),
    )
    app = app_for(policy, cache, metrics=metrics, events=recorder, scored_events=True)
    client = await aiohttp_client(app)
    for name in ("a", "b", "c"):
        answer = await call(client, "prioritize", scheduler_pod(name), ["gpu-h100", "gpu-t4"])
        assert priorities(answer, ["gpu-h100", "gpu-t4"])["gpu-h100"] == 10
    dropped = metrics.registry.get_sample_value(
        "gpuclass_extender_events_total", {"outcome": "dropped"}
    )
    assert dropped == 2


async def test_a_failing_note_never_fails_the_verb(
    client: Client, recorder: EventRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(name: str) -> NodeFeatures | None:
        raise RuntimeError("boom")

    pod = scheduler_pod("infer-a")
    policy = example_policy()
    intent = pod_intent(decode_pod(json.dumps(pod).encode(), "pod"), policy)
    record_scored(recorder, intent, ["gpu-h100"], [9], broken, policy)
    assert "could not record an Event" in caplog.text
    assert queued(recorder) == []
    assert await call(client, "prioritize", pod, ["gpu-h100"])


async def filter_through_serve(tmp_path: Path, **options: bool) -> FakeApiServer:
    """`serve` against a fake apiserver with one T4 node; one filter of a pod that
    requires premium; the fake apiserver as it is a moment later."""
    fake = FakeApiServer()
    fake.kinds["nodes"].objects = [node_dict("t4-a", "T4", gpus=4)]
    pod = pod_dict(
        "chat",
        1,
        workload="interactive",
        uid="u-chat",
        annotations={f"{PREFIX}required-classes": "premium"},
    )
    async with serving(fake, tmp_path, **options) as server:
        async with asyncio.timeout(5):
            while (await get(f"{server.url}/readyz"))[0] != 200:
                await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as session:
            await session.post(f"{server.url}/filter", data=names_args(pod, ["t4-a"]))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                while not fake.events:
                    await asyncio.sleep(0.02)
    return fake


async def test_serve_writes_events_to_the_api(tmp_path: Path) -> None:
    fake = await filter_through_serve(tmp_path)
    [event] = fake.events.values()
    assert event["reason"] == REASON_UNSCHEDULABLE
    assert event["note"] == "0/1 nodes: 1 wrong GPU class (need premium or better)"
    assert event["regarding"]["uid"] == "u-chat"
    assert event["reportingController"] == CONTROLLER


async def test_serve_with_no_events_writes_none(tmp_path: Path) -> None:
    fake = await filter_through_serve(tmp_path, events=False)
    assert fake.events == {}
