"""The one place that talks to the Kubernetes API; its errors become KubeError here."""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
import orjson
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from extender.errors import KubeError, WatchGone
from extender.state.events import EventBody
from extender.wire import Node, Pod, decode_node, decode_pod


@asynccontextmanager
async def kube_errors(what: str) -> AsyncIterator[None]:
    """Map kubernetes-asyncio and aiohttp errors to KubeError (410 to WatchGone)."""
    try:
        yield
    except ApiException as exc:
        status = int(exc.status or 0)
        error = WatchGone if status == 410 else KubeError
        raise error(f"{what}: {status} {exc.reason}: {_message(exc.body)}", status) from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise KubeError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _message(body: Any) -> str:
    if isinstance(body, bytes | str):
        try:
            return str(orjson.loads(body).get("message", body))
        except (orjson.JSONDecodeError, AttributeError):
            return str(body)[:300]
    return ""


async def api_client(kubeconfig: Path | None = None) -> client.ApiClient:
    """An API client from a kubeconfig file, else the in-cluster service account."""
    configuration = client.Configuration()
    try:
        if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                client_configuration=configuration,
            )
    except (config.ConfigException, OSError) as exc:
        where = kubeconfig or "in-cluster config or ~/.kube/config"
        raise KubeError(f"no cluster credentials ({where}): {exc}") from None
    return client.ApiClient(configuration)


class DirectApi:
    """The calls on every pod's path (read and bind a pod), made straight on aiohttp with
    the client's credentials and TLS connection pool.

    The generated client walks its models and re-encodes the JSON on every call, and its
    session trusts the environment: two trips to a worker thread per request (netrc, proxy
    variables), more CPU than the call itself. Here the proxy is looked up once.
    """

    def __init__(self, api_client: client.ApiClient) -> None:
        self._client: Any = api_client
        rest = self._client.rest_client
        self._host = str(self._client.configuration.host)
        self._proxy: str | None = rest.proxy or _environment_proxy(self._host)
        self._options: dict[str, Any] = {}
        if rest.proxy_headers:
            self._options["proxy_headers"] = rest.proxy_headers
        if rest.server_hostname:
            self._options["server_hostname"] = rest.server_hostname
        self._session = aiohttp.ClientSession(
            connector=rest.pool_manager.connector, connector_owner=False
        )

    async def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """(status, body) of one call; aiohttp's errors propagate (see kube_errors)."""
        headers = {**self._client.default_headers, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        # Asked each time: an in-cluster token rotates under us.
        await self._client.update_params_for_auth(headers, None, ["BearerToken"])
        async with self._session.request(
            method,
            self._host + path,
            data=body,
            headers=headers,
            proxy=self._proxy,
            **self._options,
        ) as response:
            return response.status, await response.read()

    async def close(self) -> None:
        await self._session.close()


def _environment_proxy(url: str) -> str | None:
    """The proxy HTTPS_PROXY/HTTP_PROXY name for `url`, unless NO_PROXY exempts it."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)


def _pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"


async def bind_pod(
    api: DirectApi,
    *,
    namespace: str,
    name: str,
    uid: str,
    node: str,
    annotations: dict[str, str] | None = None,
) -> None:
    """Bind a pod to a node through pods/binding, as the scheduler's DefaultBinder does.

    The API server copies the Binding's annotations onto the pod, so `annotations` cost no
    call of their own; it refuses the Binding (409) if the pod now has another uid.
    Idempotent: a retried bind of a pod already on that node succeeds.
    """
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid}
    if annotations:
        metadata["annotations"] = annotations
    body = orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": metadata,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
    )
    what = f"bind {namespace}/{name} to {node}"
    path = _pod_path(namespace, name) + "/binding"
    async with kube_errors(what):
        status, reply = await api.call("POST", path, body)
    if 200 <= status < 300:
        return
    if status == 409 and await _bound_to(api, namespace, name, node):
        return
    raise KubeError(f"{what}: {status}: {_message(reply)}", status)


async def read_pod(api: DirectApi, *, namespace: str, name: str) -> Pod:
    """The pod as the API server has it now (KubeError with its status when it cannot)."""
    what = f"read pod {namespace}/{name}"
    return decode_pod(await _get(api, _pod_path(namespace, name), what), what)


async def read_node(api: DirectApi, *, name: str) -> Node:
    """The node as the API server has it now (KubeError with its status when it cannot)."""
    what = f"read node {name}"
    return decode_node(await _get(api, f"/api/v1/nodes/{quote(name, safe='')}", what), what)


async def _get(api: DirectApi, path: str, what: str) -> bytes:
    """The body of a GET answered 2xx; else KubeError with the answer's status."""
    async with kube_errors(what):
        status, body = await api.call("GET", path)
    if not 200 <= status < 300:
        raise KubeError(f"{what}: {status}: {_message(body)}", status)
    return body


async def _bound_to(api: DirectApi, namespace: str, name: str, node: str) -> bool:
    pod = await read_pod(api, namespace=namespace, name=name)
    return pod.spec.nodeName == node


LIST_PAGE_SIZE = 500


class ListMeta(msgspec.Struct, frozen=True):
    resourceVersion: str = ""
    # "continue" is a Python keyword.
    continue_: str = msgspec.field(default="", name="continue")


class _RawList(msgspec.Struct):
    metadata: ListMeta = ListMeta()
    items: list[msgspec.Raw] = msgspec.field(default_factory=list)


_raw_list = msgspec.json.Decoder(_RawList)


class _Page(Protocol):
    @property
    def metadata(self) -> ListMeta: ...


P = TypeVar("P", bound=_Page)


async def list_pages(
    what: str, call: Callable[..., Awaitable[Any]], decoder: msgspec.json.Decoder[P], **kwargs: Any
) -> AsyncIterator[P]:
    """A list, page by page as `decoder` reads them (the API server answers each page
    from etcd or its watch cache in one go: a cluster-wide list without a limit holds it
    up longer). WatchGone when the continue token has expired, KubeError otherwise."""
    token = ""
    while True:
        page: dict[str, Any] = {"limit": LIST_PAGE_SIZE, **({"_continue": token} if token else {})}
        async with kube_errors(what):
            response: Any = await call(_preload_content=False, **kwargs, **page)
            status, body = response.status, await response.read()
        if status == 410:
            raise WatchGone(f"{what}: continue token expired", 410)
        if not 200 <= status < 300:
            raise KubeError(f"{what}: {status}: {_message(body)}", status)
        try:
            listed = decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise KubeError(f"{what}: unreadable list: {exc}") from None
        yield listed
        token = listed.metadata.continue_
        if not token:
            return


async def _raw_items(what: str, call: Callable[..., Awaitable[Any]], **kwargs: Any) -> list[bytes]:
    """Every item of a list as raw JSON."""
    items: list[bytes] = []
    async for page in list_pages(what, call, _raw_list, **kwargs):
        items.extend(bytes(item) for item in page.items)
    return items


async def list_nodes(api: client.CoreV1Api) -> list[bytes]:
    """Every Node as raw JSON (one list, no watch: for one-shot tools)."""
    return await _raw_items("list nodes", api.list_node)


async def list_pods(api: client.CoreV1Api) -> list[bytes]:
    """Every Pod of every namespace as raw JSON."""
    return await _raw_items("list pods", api.list_pod_for_all_namespaces)


async def list_custom(
    api: client.CustomObjectsApi, group: str, version: str, plural: str
) -> list[bytes]:
    """Every object of a custom resource in every namespace (KubeError 404: no such CRD)."""
    return await _raw_items(
        f"list {plural}.{group}/{version}",
        api.list_cluster_custom_object,
        group=group,
        version=version,
        plural=plural,
    )


async def read_config_map_key(api: client.CoreV1Api, *, namespace: str, name: str, key: str) -> str:
    what = f"read configmap {namespace}/{name}"
    async with kube_errors(what):
        config_map: Any = await api.read_namespaced_config_map(name=name, namespace=namespace)
    data = config_map.data or {}
    if key not in data:
        raise KubeError(f"{what}: no key {key!r} (keys: {', '.join(sorted(data)) or 'none'})")
    return str(data[key])


def _micro_time(seconds: float) -> str:
    """A MicroTime as the API writes it: RFC 3339 in UTC with microseconds."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiEventSink:
    """Creates and patches events.k8s.io/v1 Events (an EventSink for the EventRecorder)."""

    def __init__(self, api: client.EventsV1Api) -> None:
        # Typed Any: we send plain dicts and a merge patch, which the stubs do not allow.
        self.api: Any = api

    async def create(self, event: EventBody) -> None:
        seen = event.observation
        ref = seen.regarding
        body: dict[str, Any] = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": event.name, "namespace": ref.namespace},
            "eventTime": _micro_time(event.event_time),
            "reportingController": event.controller,
            "reportingInstance": event.instance,
            "action": seen.action,
            "reason": seen.reason,
            "type": seen.type,
            "note": seen.note,
            "regarding": {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "namespace": ref.namespace,
                "name": ref.name,
                "uid": ref.uid,
            },
        }
        if event.count > 1:
            body["series"] = {
                "count": event.count,
                "lastObservedTime": _micro_time(event.last_observed),
            }
        what = f"create event {ref.namespace}/{event.name}"
        async with kube_errors(what):
            response: Any = await self.api.create_namespaced_event(
                namespace=ref.namespace, body=body, _preload_content=False
            )
            status, reply = response.status, await response.read()
        if not 200 <= status < 300:
            raise KubeError(f"{what}: {status}: {_message(reply)}", status)

    async def patch_series(
        self, *, namespace: str, name: str, count: int, last_observed: float
    ) -> None:
        """Set the Event's series count and lastObservedTime (a merge patch, as client-go)."""
        patch = {"series": {"count": count, "lastObservedTime": _micro_time(last_observed)}}
        what = f"patch event {namespace}/{name}"
        async with kube_errors(what):
            response: Any = await self.api.patch_namespaced_event(
                name=name,
                namespace=namespace,
                body=patch,
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
            status, reply = response.status, await response.read()
        if not 200 <= status < 300:
            raise KubeError(f"{what}: {status}: {_message(reply)}", status)
