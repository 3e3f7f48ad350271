"""Binding pods through the pods/binding subresource, against a fake apiserver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestServer
from kubernetes_asyncio import client

from extender.errors import KubeError
from extender.state.events import EventBody, ObjectRef, Observation
from extender.state.kube import LIST_PAGE_SIZE, ApiEventSink, DirectApi, bind_pod, list_nodes
from tests.builders import node_dict
from tests.state.fake_apiserver import FakeApiServer


@pytest.fixture
async def apiserver() -> AsyncIterator[tuple[FakeApiServer, client.CoreV1Api]]:
    fake = FakeApiServer()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    api = client.ApiClient(client.Configuration(host=str(server.make_url("")).rstrip("/")))
    yield fake, client.CoreV1Api(api)
    await api.close()
    await server.close()


@pytest.fixture
async def direct(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> AsyncIterator[tuple[FakeApiServer, DirectApi]]:
    fake, core = apiserver
    api = DirectApi(core.api_client)  # type: ignore[attr-defined]
    yield fake, api
    await api.close()


async def test_bind_posts_a_binding_with_the_pod_uid_and_the_target_node(
    direct: tuple[FakeApiServer, DirectApi],
) -> None:
    fake, api = direct
    await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-a")
    assert fake.bound == {("ml", "infer"): "gpu-a"}
    binding = fake.bindings[0]
    assert binding["metadata"]["uid"] == "u-1"
    assert binding["target"] == {"apiVersion": "v1", "kind": "Node", "name": "gpu-a"}
    assert "annotations" not in binding["metadata"]


async def test_the_binding_carries_annotations_onto_the_pod(
    direct: tuple[FakeApiServer, DirectApi],
) -> None:
    fake, api = direct
    record = {"gpuclass.example.io/decision-class": "premium"}
    await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-a", annotations=record)
    assert fake.bindings[0]["metadata"]["annotations"] == record


async def test_a_retried_bind_to_the_same_node_succeeds(
    direct: tuple[FakeApiServer, DirectApi],
) -> None:
    fake, api = direct
    await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-a")
    await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-a")
    assert len(fake.bindings) == 2


async def test_binding_a_pod_already_on_another_node_fails_with_the_apiserver_message(
    direct: tuple[FakeApiServer, DirectApi],
) -> None:
    _, api = direct
    await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-a")
    with pytest.raises(KubeError, match="already assigned to node 'gpu-a'") as caught:
        await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-b")
    assert caught.value.status == 409


# ---- Events ----------------------------------------------------------------------------------


def events_api(core: client.CoreV1Api) -> client.EventsV1Api:
    """An Events API on the same connection as the fixture's core API."""
    return client.EventsV1Api(core.api_client)  # type: ignore[attr-defined]


def _event(count: int = 1) -> EventBody:
    seen = Observation(
        ObjectRef(namespace="ml", name="infer", uid="u-1"),
        "Normal",
        "GpuClassScored",
        "Scoring",
        "best: gpu-a (premium, score 9/10) of 3 nodes",
    )
    return EventBody(
        name="infer.1",
        observation=seen,
        controller="gpuclass.example.io/extender",
        instance="extender-0",
        event_time=1_764_140_000.25,
        count=count,
        last_observed=1_764_140_030.5,
    )


async def test_the_event_sink_creates_an_events_v1_event_about_the_pod(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, core = apiserver
    sink = ApiEventSink(events_api(core))
    await sink.create(_event())
    body = fake.events[("ml", "infer.1")]
    assert body["apiVersion"] == "events.k8s.io/v1"
    assert body["eventTime"] == "2025-11-26T06:53:20.250000Z"
    assert body["regarding"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "ml",
        "name": "infer",
        "uid": "u-1",
    }
    assert (body["reportingController"], body["reportingInstance"]) == (
        "gpuclass.example.io/extender",
        "extender-0",
    )
    assert (body["type"], body["reason"], body["action"]) == ("Normal", "GpuClassScored", "Scoring")
    assert "series" not in body


async def test_the_event_sink_creates_a_repeated_event_with_its_series(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, core = apiserver
    await ApiEventSink(events_api(core)).create(_event(count=3))
    series = fake.events[("ml", "infer.1")]["series"]
    assert series == {"count": 3, "lastObservedTime": "2025-11-26T06:53:50.500000Z"}


async def test_the_event_sink_merge_patches_the_series_and_maps_404(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, core = apiserver
    sink = ApiEventSink(events_api(core))
    await sink.create(_event())
    await sink.patch_series(namespace="ml", name="infer.1", count=4, last_observed=1_764_140_060)
    assert fake.event_patches == [
        (
            "application/merge-patch+json",
            {"series": {"count": 4, "lastObservedTime": "2025-11-26T06:54:20.000000Z"}},
        )
    ]
    assert fake.events[("ml", "infer.1")]["series"]["count"] == 4
    with pytest.raises(KubeError) as gone:
        await sink.patch_series(namespace="ml", name="nope", count=2, last_observed=0)
    assert gone.value.status == 404


def test_the_proxy_comes_from_the_environment_once_and_no_proxy_exempts_a_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from extender.state.kube import _environment_proxy

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "10.96.0.1,.svc")
    assert _environment_proxy("https://api.example:6443") == "http://proxy.example:3128"
    assert _environment_proxy("https://10.96.0.1:443") is None
    assert _environment_proxy("https://kubernetes.default.svc:443") is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert _environment_proxy("https://api.example:6443") is None


async def test_a_one_shot_listing_is_read_page_by_page(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, core = apiserver
    fake.kinds["nodes"].objects = [node_dict(f"n{i}") for i in range(2 * LIST_PAGE_SIZE + 1)]

    listed = await list_nodes(core)

    assert [orjson.loads(raw)["metadata"]["name"] for raw in listed] == [
        f"n{i}" for i in range(2 * LIST_PAGE_SIZE + 1)
    ]
    calls = fake.kinds["nodes"].list_calls
    assert [c.get("limit") for c in calls] == [str(LIST_PAGE_SIZE)] * 3
    assert [c.get("continue", "") for c in calls] == ["", "500", "1000"]
