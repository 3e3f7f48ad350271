"""Binding pods through the pods/binding subresource, against a fake apiserver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer
from kubernetes_asyncio import client

from extender.errors import KubeError
from extender.state.kube import bind_pod
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


async def test_bind_posts_a_binding_with_the_pod_uid_and_the_target_node(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-a")
    assert fake.bound == {("ml", "infer"): "gpu-a"}
    binding = fake.bindings[0]
    assert binding["metadata"]["uid"] == "u-1"
    assert binding["target"] == {"apiVersion": "v1", "kind": "Node", "name": "gpu-a"}


async def test_a_retried_bind_to_the_same_node_succeeds(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-a")
    await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-a")
    assert len(fake.bindings) == 2


async def test_binding_a_pod_already_on_another_node_fails_with_the_apiserver_message(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    _, api = apiserver
    await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-a")
    with pytest.raises(KubeError, match="already assigned to node 'gpu-a'") as caught:
        await bind_pod(api, namespace="ml", name="infer", uid="u-1", node="gpu-b")
    assert caught.value.status == 409
