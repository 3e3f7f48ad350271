"""List-Watch into the cache, against a scripted apiserver over loopback HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp.test_utils import TestServer
from kubernetes_asyncio import client

from extender.state import ClusterCache
from extender.state.watch import POD_FIELD_SELECTOR, WatchHooks, watch_kind
from extender.wire.types import Node
from tests.builders import example_policy, node_dict, pod_dict
from tests.state.fake_apiserver import STALL, Event, FakeApiServer, bookmark, event, gone


@pytest.fixture
async def apiserver() -> AsyncIterator[tuple[FakeApiServer, client.CoreV1Api]]:
    fake = FakeApiServer()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    configuration = client.Configuration(host=str(server.make_url("")).rstrip("/"))
    api = client.ApiClient(configuration)
    yield fake, client.CoreV1Api(api)
    await api.close()
    await server.close()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def running(
    coro: Awaitable[None], condition: Callable[[], bool], timeout: float = 5.0
) -> None:
    """Run a watch until `condition` holds, then stop it."""
    task = asyncio.ensure_future(coro)
    try:
        await until(condition, timeout)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_first_list_fills_the_cache_and_marks_nodes_synced(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    fake.kinds["nodes"].objects = [node_dict(f"n{i}") for i in range(3)]
    cache = ClusterCache(example_policy())
    assert not cache.nodes_synced
    await running(
        watch_kind(kind="nodes", api=api, cache=cache),
        lambda: cache.nodes_synced and bool(fake.kinds["nodes"].watch_calls),
    )
    assert sorted(n.name for n in cache.nodes()) == ["n0", "n1", "n2"]
    assert fake.kinds["nodes"].watch_calls[0]["resourceVersion"] == "100"
    assert fake.kinds["nodes"].watch_calls[0]["allowWatchBookmarks"] in ("true", "True")


async def test_a_list_larger_than_a_page_is_read_page_by_page(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    fake.kinds["nodes"].objects = [node_dict(f"n{i:04}") for i in range(1203)]
    cache = ClusterCache(example_policy())
    await running(watch_kind(kind="nodes", api=api, cache=cache), lambda: cache.nodes_synced)
    assert cache.counts()["nodes"] == 1203
    assert len(fake.kinds["nodes"].list_calls) == 3


async def test_pod_list_and_watch_ask_only_for_unfinished_pods(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    fake.kinds["pods"].objects = [pod_dict("p", node="n0", uid="u1")]
    cache = ClusterCache(example_policy())
    await running(
        watch_kind(kind="pods", api=api, cache=cache),
        lambda: bool(fake.kinds["pods"].watch_calls),
    )
    assert cache.pods_synced
    assert fake.kinds["pods"].list_calls[0]["fieldSelector"] == POD_FIELD_SELECTOR
    assert fake.kinds["pods"].watch_calls[0]["fieldSelector"] == POD_FIELD_SELECTOR


async def test_watch_events_add_change_and_delete_nodes(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    nodes = fake.kinds["nodes"]
    nodes.objects = [node_dict("keep"), node_dict("gone")]
    nodes.sessions = [
        [
            event("ADDED", node_dict("new", product="T4", gpus=4), "101"),
            event("MODIFIED", node_dict("keep", product="T4", gpus=4), "102"),
            event("DELETED", node_dict("gone"), "103"),
        ]
    ]
    cache = ClusterCache(example_policy())
    events: list[str] = []
    hooks = WatchHooks(event=events.append)
    await running(
        watch_kind(kind="nodes", api=api, cache=cache, hooks=hooks),
        lambda: len(events) == 3,
    )
    assert sorted(n.name for n in cache.nodes()) == ["keep", "new"]
    keep = cache.node("keep")
    assert keep is not None
    assert keep.gpu_class.name == "economy"
    assert keep.gpu_count == 4


async def test_a_closed_stream_resumes_from_the_last_resource_version_seen(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    nodes = fake.kinds["nodes"]
    nodes.sessions = [
        [event("ADDED", node_dict("a"), "101"), bookmark("150")],
        [event("ADDED", node_dict("b"), "151")],
    ]
    cache = ClusterCache(example_policy())
    await running(
        watch_kind(kind="nodes", api=api, cache=cache), lambda: len(nodes.watch_calls) >= 3
    )
    assert [c["resourceVersion"] for c in nodes.watch_calls] == ["100", "150", "151"]
    assert len(nodes.list_calls) == 1, "a plain end of stream must not relist"
    assert sorted(n.name for n in cache.nodes()) == ["a", "b"]


async def test_a_410_gone_event_relists_and_drops_objects_deleted_meanwhile(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    nodes = fake.kinds["nodes"]
    nodes.objects = [node_dict("a"), node_dict("b")]
    # While the watch is gone, "b" is deleted and "c" created; only a relist tells.
    nodes.later = [([node_dict("a"), node_dict("c")], "200")]
    nodes.sessions = [[gone()]]
    cache = ClusterCache(example_policy())
    relisted: list[str] = []
    # Not in sync (readiness 503) from the 410 until the relist is in.
    desynced: list[tuple[str, str, bool]] = []
    hooks = WatchHooks(
        listed=relisted.append,
        desynced=lambda kind, cause: desynced.append((kind, cause, cache.ready)),
    )
    cache.pods_synced = True  # only nodes are watched here
    await running(
        watch_kind(kind="nodes", api=api, cache=cache, hooks=hooks),
        lambda: len(relisted) == 2 and len(nodes.watch_calls) == 2,
    )
    assert desynced == [("nodes", "gone", False)]
    assert cache.ready
    assert sorted(n.name for n in cache.nodes()) == ["a", "c"]
    assert nodes.watch_calls[-1]["resourceVersion"] == "200"


async def test_a_relist_request_interrupts_an_idle_watch_and_lists_again(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    """A new policy that reads labels the cache did not keep asks for a fresh list."""
    fake, api = apiserver
    nodes = fake.kinds["nodes"]
    nodes.objects = [node_dict("a")]
    nodes.later = [([node_dict("a"), node_dict("b")], "300")]
    cache = ClusterCache(example_policy())
    relist = asyncio.Event()
    task = asyncio.ensure_future(watch_kind(kind="nodes", api=api, cache=cache, relist=relist))
    try:
        await until(lambda: len(nodes.watch_calls) == 1)  # idle: the stream stays open
        relist.set()
        await until(lambda: len(nodes.watch_calls) == 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(nodes.list_calls) == 2
    assert sorted(n.name for n in cache.nodes()) == ["a", "b"]
    assert nodes.watch_calls[-1]["resourceVersion"] == "300"
    assert not relist.is_set()


async def test_a_410_status_on_watch_start_relists(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    nodes = fake.kinds["nodes"]
    nodes.objects = [node_dict("a")]
    nodes.sessions = [410]
    cache = ClusterCache(example_policy())
    await running(
        watch_kind(kind="nodes", api=api, cache=cache), lambda: len(nodes.list_calls) == 2
    )
    assert cache.node("a") is not None


async def test_an_unavailable_apiserver_is_retried_and_readiness_waits_for_it(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    nodes = fake.kinds["nodes"]
    nodes.objects = [node_dict("a")]
    nodes.list_status = [503, 503]
    cache = ClusterCache(example_policy())
    errors: list[str] = []
    await running(
        watch_kind(
            kind="nodes",
            api=api,
            cache=cache,
            hooks=WatchHooks(error=errors.append),
            backoff_max=0.05,
        ),
        lambda: cache.nodes_synced,
    )
    assert len(errors) == 2
    assert cache.node("a") is not None


async def test_a_failed_watch_marks_the_cache_unsynced_until_a_fresh_list(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    """The API server fails mid-stream: events may be lost, so the cache says it is not in
    sync (readiness false) until a new list has replaced what it held."""
    fake, api = apiserver
    nodes = fake.kinds["nodes"]
    nodes.objects = [node_dict("a"), node_dict("b")]
    # While the API server was failing, "b" was deleted; no event will say so.
    nodes.later = [([node_dict("a")], "200")]
    nodes.sessions = [503]
    cache = ClusterCache(example_policy())
    synced_when_failed: list[bool] = []
    causes: list[str] = []
    hooks = WatchHooks(
        error=lambda kind: synced_when_failed.append(cache.nodes_synced),
        desynced=lambda kind, cause: causes.append(cause),
    )
    await running(
        watch_kind(kind="nodes", api=api, cache=cache, hooks=hooks),
        lambda: len(nodes.list_calls) == 2 and cache.nodes_synced,
    )
    assert synced_when_failed == [False]  # not in sync from the failure...
    assert causes == ["error"]
    assert not cache.node("b")  # ...until a relist, which dropped what was deleted meanwhile
    assert cache.node("a") is not None


BROKEN_NODE = node_dict("c")
BROKEN_STREAMS: dict[str, tuple[list[Event | bytes | str], str]] = {
    "garbage": ([b"{not json\n"], "error"),
    "truncated": ([orjson.dumps(event("ADDED", BROKEN_NODE, "101"))[:40]], "error"),
    "wrong type": (
        [event("ADDED", {**BROKEN_NODE, "metadata": {"name": ["c"]}}, "101")],
        "error",
    ),
    "silent": ([STALL], "stalled"),
}


@pytest.mark.parametrize("broken", BROKEN_STREAMS, ids=str)
async def test_a_broken_stream_marks_the_cache_unsynced_until_a_fresh_list(
    apiserver: tuple[FakeApiServer, client.CoreV1Api], broken: str
) -> None:
    """Whatever breaks the stream, the watch neither dies nor keeps a stale cache: not in
    sync (the cause counted) until a relist has replaced what it held."""
    fake, api = apiserver
    nodes = fake.kinds["nodes"]
    nodes.objects = [node_dict("a"), node_dict("b")]
    nodes.later = [([node_dict("a")], "200")]  # "b" went while the stream was broken
    stream, cause = BROKEN_STREAMS[broken]
    nodes.sessions = [[event("MODIFIED", node_dict("a"), "101"), *stream]]
    cache = ClusterCache(example_policy())
    causes: list[str] = []
    hooks = WatchHooks(desynced=lambda kind, cause: causes.append(cause))
    await running(
        watch_kind(
            kind="nodes", api=api, cache=cache, hooks=hooks, backoff_max=0.05, stall_seconds=0.3
        ),
        lambda: len(nodes.list_calls) == 2 and cache.nodes_synced,
    )
    assert causes == [cause]
    assert sorted(n.name for n in cache.nodes()) == ["a"]


async def test_an_event_the_cache_cannot_apply_relists_instead_of_ending_the_watch(
    apiserver: tuple[FakeApiServer, client.CoreV1Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, api = apiserver
    nodes = fake.kinds["nodes"]
    nodes.objects = [node_dict("a")]
    nodes.later = [([node_dict("a"), node_dict("b")], "200")]
    nodes.sessions = [[event("ADDED", node_dict("b"), "101")]]
    cache = ClusterCache(example_policy())
    upsert = cache.upsert_node
    failures: list[str] = []

    def fails_once(node: Node) -> None:
        if node.metadata.name == "b" and not failures:
            failures.append(node.metadata.name)
            raise RuntimeError("a bug of ours")
        upsert(node)

    monkeypatch.setattr(cache, "upsert_node", fails_once)
    causes: list[str] = []
    hooks = WatchHooks(desynced=lambda kind, cause: causes.append(cause))
    await running(
        watch_kind(kind="nodes", api=api, cache=cache, hooks=hooks, backoff_max=0.05),
        lambda: len(nodes.list_calls) == 2 and cache.nodes_synced,
    )
    assert failures == ["b"]
    assert causes == ["error"]
    assert sorted(n.name for n in cache.nodes()) == ["a", "b"]


async def test_pod_events_charge_and_free_gpus_on_their_node(
    apiserver: tuple[FakeApiServer, client.CoreV1Api],
) -> None:
    fake, api = apiserver
    fake.kinds["nodes"].objects = [node_dict("n0", gpus=8)]
    pod = pod_dict("train", gpus=4, workload="batch", node="n0", uid="u-train")
    fake.kinds["pods"].sessions = [
        [event("ADDED", pod, "101"), event("DELETED", pod, "102")],
    ]
    cache = ClusterCache(example_policy())
    seen: list[int] = []

    def record_free(kind: str) -> None:
        node = cache.node("n0")
        seen.append(node.free_milli if node else -1)

    hooks = WatchHooks(event=record_free)
    nodes_task = asyncio.ensure_future(watch_kind(kind="nodes", api=api, cache=cache))
    try:
        await until(lambda: cache.nodes_synced)
        await running(
            watch_kind(kind="pods", api=api, cache=cache, hooks=hooks), lambda: len(seen) == 2
        )
    finally:
        nodes_task.cancel()
        await asyncio.gather(nodes_task, return_exceptions=True)
    assert seen == [4000, 8000]
    assert cache.ready
