"""List-Watch of Nodes and Pods into the ClusterCache.

List (paged), then watch from the list's resourceVersion with bookmarks; a stream the
server ends on its timeout, or one silent for longer than the API server's bookmarks allow,
resumes from the last resourceVersion seen. Anything else leaves the cache "not synced"
(/readyz 503, verbs refuse) until a fresh list succeeds, after a backoff: 410 Gone, a
failed call, a reset or truncated stream, an event that does not decode as the kind it
claims, a resume left unanswered for as long, a bug in applying an event. Objects are
decoded straight from the JSON stream into the wire types (no client models).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from kubernetes_asyncio import client

from extender.errors import KubeError, WatchGone, WatchStalled
from extender.state.cache import ClusterCache, Kind
from extender.state.kube import ListMeta, kube_errors, list_pages
from extender.wire.types import Node, Pod

log = logging.getLogger(__name__)

T = TypeVar("T", Node, Pod)

# Finished pods hold no GPUs; the API server filters them out for us.
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"
WATCH_TIMEOUT_SECONDS = 300
# kube-apiserver's watch cache sends a bookmark about every minute (its
# defaultBookmarkFrequency): a stream silent for longer is resumed, and a resume left
# unanswered as long means the path to the API server has stalled.
WATCH_STALL_SECONDS = 90.0


class _List(msgspec.Struct, Generic[T]):
    metadata: ListMeta = ListMeta()
    items: list[T] | None = None


class _Status(msgspec.Struct):
    code: int = 0
    message: str = ""


class _Event(msgspec.Struct):
    type: str
    object: msgspec.Raw


class _Meta(msgspec.Struct, frozen=True):
    resourceVersion: str = ""


class _Object(msgspec.Struct):
    metadata: _Meta = _Meta()


def _ignore(kind: Kind) -> None:
    return None


def _ignore_cause(kind: Kind, cause: str) -> None:
    return None


@dataclass(frozen=True)
class WatchHooks:
    """Called on each applied event, each full list, each failed call, and each time the
    cache stops being in sync ("gone": 410; "stalled": a silent stream; "error": the API
    call failed or its answer could not be applied) (for metrics)."""

    event: Callable[[Kind], None] = _ignore
    listed: Callable[[Kind], None] = _ignore
    error: Callable[[Kind], None] = _ignore
    desynced: Callable[[Kind, str], None] = _ignore_cause


@dataclass
class _Source(Generic[T]):
    kind: Kind
    type: type[T]
    list_call: Callable[..., Awaitable[Any]]
    selector: str | None
    key: Callable[[T], str]
    upsert: Callable[[T], None]
    delete: Callable[[T], None]
    retain: Callable[[set[str]], None]


def _sources(api: client.CoreV1Api, cache: ClusterCache) -> dict[Kind, _Source[Any]]:
    return {
        "nodes": _Source(
            "nodes",
            Node,
            api.list_node,
            None,
            lambda n: n.metadata.name,
            cache.upsert_node,
            lambda n: cache.delete_node(n.metadata.name),
            cache.retain_nodes,
        ),
        "pods": _Source(
            "pods",
            Pod,
            api.list_pod_for_all_namespaces,
            POD_FIELD_SELECTOR,
            lambda p: p.metadata.uid,
            cache.upsert_pod,
            lambda p: cache.delete_pod(p.metadata.uid),
            cache.retain_pods,
        ),
    }


async def watch_kind(
    *,
    kind: Kind,
    api: client.CoreV1Api,
    cache: ClusterCache,
    hooks: WatchHooks = WatchHooks(),
    backoff_max: float = 2.0,
    relist: asyncio.Event | None = None,
    watch_timeout: int = WATCH_TIMEOUT_SECONDS,
    stall_seconds: float = WATCH_STALL_SECONDS,
) -> None:
    """Keep `cache` in sync with one kind, forever (until cancelled).

    Setting `relist` makes it list again (a new policy reads what the cache did not keep).
    """
    source = _sources(api, cache)[kind]
    relist = relist or asyncio.Event()
    resource_version = ""
    backoff = 0.5
    while True:
        try:
            if relist.is_set():
                relist.clear()
                resource_version = ""
            if not resource_version:
                resource_version = await _list(source)
                hooks.listed(kind)
                log.info("listed", extra={"kind": kind, "resource_version": resource_version})
            resource_version = await _until(
                relist,
                _watch(source, resource_version, hooks, watch_timeout, stall_seconds),
                resource_version,
            )
            backoff = 0.5
            continue
        except WatchGone:
            log.info("watch expired (410 Gone); relisting", extra={"kind": kind})
            resource_version = ""
            mark_unsynced(cache, kind, hooks, "gone")
            continue
        except WatchStalled as exc:
            mark_unsynced(cache, kind, hooks, "stalled")
            log.warning("watch stalled; relisting", extra={"kind": kind, "error": str(exc)})
        except KubeError as exc:
            # The API server failed or is unreachable: what we hold may be missing events,
            # so we say so (/readyz 503, verbs "not synced") until a fresh list succeeds.
            mark_unsynced(cache, kind, hooks, "error")
            log.warning("watch failed; relisting", extra={"kind": kind, "error": str(exc)})
        except Exception:
            # An answer we could not apply (an object the API server should not send, a
            # bug of ours): the same as a failed call, never a dead watch over a stale cache.
            mark_unsynced(cache, kind, hooks, "error")
            log.exception("watch event could not be applied; relisting", extra={"kind": kind})
        resource_version = ""
        hooks.error(kind)
        await asyncio.sleep(backoff * (1 + random.random()))
        backoff = min(backoff * 2, backoff_max)


def mark_unsynced(cache: ClusterCache, kind: Kind, hooks: WatchHooks, cause: str) -> None:
    """What we hold of `kind` may miss events: not in sync until a fresh list."""
    if kind == "nodes":
        cache.nodes_synced = False
    else:
        cache.pods_synced = False
    hooks.desynced(kind, cause)


async def _until(event: asyncio.Event, watch: Awaitable[str], resource_version: str) -> str:
    """Run a watch until it ends or `event` is set (then abandon it: a relist follows)."""
    watching = asyncio.ensure_future(watch)
    waiting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({watching, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        if not watching.done():
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
    return resource_version if watching.cancelled() else watching.result()


async def _list(source: _Source[T]) -> str:
    """List page by page into the cache: each page is applied and dropped, so a list of
    150,000 pods never holds more than one page of decoded objects."""
    decoder = msgspec.json.Decoder(_List[source.type])  # type: ignore[name-defined]
    kwargs: dict[str, Any] = {"field_selector": source.selector} if source.selector else {}
    listed: set[str] = set()
    resource_version = ""
    async for page in list_pages(f"list {source.kind}", source.list_call, decoder, **kwargs):
        for item in page.items or ():
            source.upsert(item)
            listed.add(source.key(item))
        resource_version = page.metadata.resourceVersion
    source.retain(listed)
    return resource_version


async def _watch(
    source: _Source[T],
    resource_version: str,
    hooks: WatchHooks,
    server_timeout: int,
    stall_seconds: float,
) -> str:
    """Apply events until the stream ends (the server closes it after `server_timeout` s);
    returns the resourceVersion to resume from, also when no line comes for
    `stall_seconds`. Raises WatchStalled when the API server does not answer the request
    in that time."""
    object_decoder = msgspec.json.Decoder(source.type)
    kwargs: dict[str, Any] = {
        "watch": True,
        "resource_version": resource_version,
        "allow_watch_bookmarks": True,
        "timeout_seconds": server_timeout,
        "_preload_content": False,
    }
    if source.selector:
        kwargs["field_selector"] = source.selector
    async with kube_errors(f"watch {source.kind}"):
        try:
            async with asyncio.timeout(stall_seconds):
                response = await source.list_call(**kwargs)
        except TimeoutError:
            raise WatchStalled(f"watch {source.kind}: no answer in {stall_seconds:g} s") from None
        try:
            if response.status == 410:
                raise WatchGone(f"watch {source.kind}: 410 Gone", 410)
            if response.status != 200:
                body = await response.read()
                raise KubeError(
                    f"watch {source.kind}: HTTP {response.status}: {body[:300]!r}", response.status
                )
            while True:
                try:
                    async with asyncio.timeout(stall_seconds):
                        line = await response.content.readline()
                except TimeoutError:
                    # A quiet cluster, or a dead connection: resuming tells them apart
                    # (the API server replays what we missed; a dead path stalls again).
                    return resource_version
                if not line:
                    return resource_version
                if line.strip():
                    resource_version = apply_event(source, object_decoder, line, resource_version)
                    hooks.event(source.kind)
        finally:
            response.release()


_event_decoder = msgspec.json.Decoder(_Event)
_object_decoder = msgspec.json.Decoder(_Object)
_status_decoder = msgspec.json.Decoder(_Status)


def apply_event(
    source: _Source[T],
    decoder: msgspec.json.Decoder[T],
    line: bytes,
    resource_version: str,
) -> str:
    """Apply one watch event line to the cache; returns the new resourceVersion."""
    try:
        event = _event_decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise KubeError(f"watch {source.kind}: undecodable event: {exc}") from exc
    if event.type == "ERROR":
        status = _status_decoder.decode(event.object)
        if status.code == 410:
            raise WatchGone(f"watch {source.kind}: {status.message}", 410)
        raise KubeError(f"watch {source.kind}: {status.code} {status.message}", status.code)
    if event.type == "BOOKMARK":
        return _object_decoder.decode(event.object).metadata.resourceVersion or resource_version
    try:
        obj = decoder.decode(event.object)
    except msgspec.DecodeError as exc:  # ValidationError too: a wrong type, a missing field
        raise KubeError(f"watch {source.kind}: {event.type} object does not decode: {exc}") from exc
    if event.type in ("ADDED", "MODIFIED"):
        source.upsert(obj)
    elif event.type == "DELETED":
        source.delete(obj)
    return obj.metadata.resourceVersion or resource_version
