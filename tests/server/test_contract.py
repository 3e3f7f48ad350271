"""The HTTP contract with kube-scheduler: every verb in the exact extender/v1 wire shape."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from aiohttp import StreamReader, web
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

import extender.server.app as app_module
from extender.errors import KubeError
from extender.policy import Policy
from extender.policy.store import PolicyStore
from extender.rules.notes import NOT_SCORED, NOT_SEEN
from extender.server.app import VERBS, bind_handler, bind_refusal, create_app
from extender.server.explain import explanation_json
from extender.server.verbs import ReadBudget
from extender.state import ClusterCache
from extender.wire import Node
from tests.builders import EXAMPLE_POLICY, example_policy, make_cache, make_node, make_pod
from tests.server.payloads import (
    FLEET,
    Client,
    RecordingBinder,
    app_for,
    bind_args,
    classes,
    conflict,
    fleet_nodes,
    full_args,
    names_args,
    priorities,
    scheduler_node,
    scheduler_pod,
)

NODES = FLEET
ALL = list(NODES)
FILTER_KEYS = {"NodeNames", "Nodes", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}


def cluster(policy: Policy) -> ClusterCache:
    """The FLEET, with gpu-a100 full: a batch job holds both its GPUs."""
    nodes = fleet_nodes()
    train = make_pod("train", 2, workload="batch", node="gpu-a100", phase="Running", uid="u-train")
    return make_cache(policy, nodes, [train])


@pytest.fixture
def policy() -> Policy:
    return example_policy()


@pytest.fixture
def cache(policy: Policy) -> ClusterCache:
    return cluster(policy)


@pytest.fixture
def binder() -> RecordingBinder:
    binder = RecordingBinder()
    binder.knows(scheduler_pod("infer-a"), scheduler_pod("infer-b"))
    return binder


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, policy: Policy, cache: ClusterCache, binder: RecordingBinder
) -> Client:
    return await aiohttp_client(app_for(policy, cache, binder=binder))


async def post(client: Client, path: str, body: bytes, status: int = 200) -> Any:
    response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


# ---- filter ------------------------------------------------------------------------------


async def test_filter_in_names_mode_returns_exactly_the_protocol_keys(client: Client) -> None:
    answer = await post(client, "/filter", names_args(scheduler_pod(), ALL))
    assert answer == {
        "NodeNames": ["gpu-h100", "gpu-l40s"],
        "Nodes": None,
        "FailedNodes": {"gpu-a100": "not enough free GPUs: needs 1 whole"},
        "FailedAndUnresolvableNodes": {
            "gpu-t4": "GPU class economy (T4-15GB) is below the required tier standard",
            "cpu-1": "node has no nvidia.com/gpu allocatable",
        },
        "Error": "",
    }


async def test_filter_partitions_its_input_nodes(client: Client) -> None:
    answer = await post(client, "/filter", names_args(scheduler_pod(), ALL))
    groups = [answer["NodeNames"], answer["FailedNodes"], answer["FailedAndUnresolvableNodes"]]
    assert sorted(n for group in groups for n in group) == sorted(ALL)
    assert sum(len(group) for group in groups) == len(ALL)


async def test_wrong_class_nodes_are_unresolvable_with_a_human_reason(client: Client) -> None:
    answer = await post(client, "/filter", names_args(scheduler_pod(), ["gpu-t4", "gpu-h100"]))
    assert set(answer["FailedAndUnresolvableNodes"]) == {"gpu-t4"}
    assert "below the required tier" in answer["FailedAndUnresolvableNodes"]["gpu-t4"]
    assert answer["FailedNodes"] == {}


async def test_a_full_node_is_failed_not_unresolvable_so_preemption_may_help(
    client: Client,
) -> None:
    answer = await post(client, "/filter", names_args(scheduler_pod(), ["gpu-a100"]))
    assert answer["NodeNames"] == []
    assert answer["FailedNodes"] == {"gpu-a100": "not enough free GPUs: needs 1 whole"}
    assert answer["FailedAndUnresolvableNodes"] == {}


async def test_filter_in_full_mode_echoes_the_passed_node_objects_exactly(client: Client) -> None:
    nodes = [scheduler_node(name, *NODES[name]) for name in ALL]
    nodes.append(scheduler_node("gpu-new", "H100", 4))  # not cached yet: judged from the object
    body, items = full_args(scheduler_pod(), nodes)
    response = await client.post("/filter", data=body)
    assert response.status == 200
    raw = await response.read()
    answer = json.loads(raw)
    assert set(answer) == FILTER_KEYS
    assert answer["NodeNames"] is None
    assert answer["Error"] == ""
    assert set(answer["Nodes"]) == {"metadata", "items"}
    assert answer["Nodes"]["metadata"] == {}
    passed = ["gpu-h100", "gpu-l40s", "gpu-new"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    assert answer["Nodes"]["items"] == [by_name[name] for name in passed]
    for name, item in zip([*ALL, "gpu-new"], items, strict=True):
        assert (item in raw) == (name in passed), name  # the request's bytes, untouched
    echoed = answer["Nodes"]["items"][0]
    assert echoed["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert echoed["status"]["images"] == by_name["gpu-h100"]["status"]["images"]
    assert echoed["metadata"]["managedFields"] == by_name["gpu-h100"]["metadata"]["managedFields"]
    assert set(answer["FailedNodes"]) == {"gpu-a100"}
    assert set(answer["FailedAndUnresolvableNodes"]) == {"gpu-t4", "cpu-1"}


async def test_full_mode_with_an_empty_verdict_returns_an_empty_item_list(client: Client) -> None:
    body, _ = full_args(scheduler_pod(), [scheduler_node("gpu-t4", "T4", 4)])
    answer = await post(client, "/filter", body)
    assert answer["Nodes"] == {"metadata": {}, "items": []}
    assert answer["NodeNames"] is None
    assert set(answer["FailedAndUnresolvableNodes"]) == {"gpu-t4"}


async def test_filter_accepts_lower_case_top_level_keys(client: Client) -> None:
    body = json.dumps({"pod": scheduler_pod(), "nodes": None, "nodenames": ALL}).encode()
    exact = await post(client, "/filter", names_args(scheduler_pod(), ALL))
    assert await post(client, "/filter", body) == exact


async def test_a_filter_that_admits_no_node_first_applies_the_watch_events_received(
    client: Client, cache: ClusterCache
) -> None:
    """kube-scheduler retries a pod we turned away as soon as a node changes, often before
    our watch applied the change; turned away again on the stale node, the pod would wait
    for the next change in the cluster. A node update already received (here: ready to
    run on the loop when the filter starts) counts before the answer says no node fits."""
    pod = scheduler_pod("needs-premium", annotations=classes(required_classes="premium"))
    rejected = await post(client, "/filter", names_args(pod, ["gpu-t4"]))
    assert rejected["NodeNames"] == []
    relabelled = make_node("gpu-t4", "H100", 8, resource_version="v2")  # now a premium node
    # Straight to the verb: the update must be waiting when the decision is made, not
    # applied while the request is still on its way.
    assert client.app is not None
    verbs = client.app[VERBS]
    asyncio.get_running_loop().call_soon(cache.upsert_node, relabelled)
    answer = orjson.loads(await verbs.filter(names_args(pod, ["gpu-t4"])))
    assert answer["NodeNames"] == ["gpu-t4"]


class _ApiServerNodes:
    """A node reader over nodes as the API server has them; counts the reads, and the most
    of them in flight at once."""

    def __init__(self, *nodes: Node, error: KubeError | None = None) -> None:
        self.nodes = {node.metadata.name: node for node in nodes}
        self.error = error
        self.reads: list[str] = []
        self.in_flight = self.most_in_flight = 0

    async def __call__(self, *, name: str) -> Node:
        self.reads.append(name)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # an API call: others could start meanwhile
        finally:
            self.in_flight -= 1
        if self.error is not None:
            raise self.error
        if name not in self.nodes:
            raise KubeError(f"read node {name}: 404: not found", 404)
        return self.nodes[name]


async def test_a_filter_that_admits_no_node_reads_those_nodes_from_the_api_server_first(
    client: Client, cache: ClusterCache
) -> None:
    """The watch may lag by more than a few loop turns behind the scheduler, which retries
    a pod we turned away as soon as a node changes: a label added a moment ago must not be
    answered with "no node fits" (the pod would wait for the next change in the cluster)."""
    pod = scheduler_pod("needs-premium", annotations=classes(required_classes="premium"))
    assert client.app is not None
    verbs = client.app[VERBS]
    verbs.node_reader = api_server = _ApiServerNodes(
        make_node("gpu-t4", "H100", 8, resource_version="v2")  # relabelled, not yet watched
    )

    # A node the scheduler still knows and the API server no longer has: read, skipped.
    answer = orjson.loads(await verbs.filter(names_args(pod, ["gone", "gpu-t4"])))

    assert answer["NodeNames"] == ["gpu-t4"]
    assert api_server.reads == ["gone", "gpu-t4"]
    # One at a time, on one pooled connection (not a TLS connection opened for each).
    assert api_server.most_in_flight == 1
    node = cache.node("gpu-t4")
    assert node is not None
    assert node.resource_version == "v2"
    # A node that fits needs no read.
    await verbs.filter(names_args(pod, ["gpu-t4"]))
    assert api_server.reads == ["gone", "gpu-t4"]


async def test_a_filter_that_cannot_read_the_nodes_answers_from_its_watch(
    client: Client, cache: ClusterCache
) -> None:
    pod = scheduler_pod("needs-premium", annotations=classes(required_classes="premium"))
    assert client.app is not None
    verbs = client.app[VERBS]
    verbs.node_reader = failing = _ApiServerNodes(error=KubeError("read node gpu-t4: 503", 503))

    answer = orjson.loads(await verbs.filter(names_args(pod, ["gpu-t4"])))

    assert answer["NodeNames"] == []
    assert "premium" in answer["FailedAndUnresolvableNodes"]["gpu-t4"]
    assert failing.reads == ["gpu-t4"]
    # Many nodes: not read one by one (the API server would pay for every pending pod).
    many = ["gpu-t4"] + [f"ghost-{i}" for i in range(16)]
    await verbs.filter(names_args(pod, many))
    assert failing.reads == ["gpu-t4"]


async def test_a_filter_refused_node_reads_stops_asking(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """An older ClusterRole without `get nodes`: one warning, then no more reads."""
    pod = scheduler_pod("needs-premium", annotations=classes(required_classes="premium"))
    assert client.app is not None
    verbs = client.app[VERBS]
    refused = _ApiServerNodes(error=KubeError("read node gpu-t4: 403: forbidden", 403))
    verbs.node_reader = refused

    for _ in range(3):
        answer = orjson.loads(await verbs.filter(names_args(pod, ["gpu-t4"])))
        assert answer["NodeNames"] == []

    assert refused.reads == ["gpu-t4"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "filter: may not read nodes (RBAC: get nodes); answering from the watch alone from now on"
    ]


def test_filters_read_nodes_within_a_budget_of_reads_a_second() -> None:
    clock = [100.0]
    budget = ReadBudget(32.0, clock=lambda: clock[0])
    assert budget.take(16)
    assert budget.take(16)
    assert not budget.take(1)  # a burst of pending pods: the watch catches up instead
    clock[0] += 0.5
    assert budget.take(16)
    assert not budget.take(1)
    clock[0] += 10.0
    assert budget.take(32)  # refilled, never beyond one second's worth
    assert not budget.take(1)


# ---- prioritize --------------------------------------------------------------------------


async def test_prioritize_scores_input_nodes_with_ints_from_1_to_10_and_leaves_zeros_out(
    client: Client,
) -> None:
    response = await client.post("/prioritize", data=names_args(scheduler_pod(), ALL))
    assert response.status == 200
    raw = await response.read()
    assert raw.startswith(b"[{")
    assert b"." not in raw.replace(b"gpu-", b"")  # no float scores anywhere
    scores = priorities(json.loads(raw), ALL)
    # Interactive prefers premium, then standard: premium is the request's best.
    assert scores["gpu-h100"] == 10
    assert scores["gpu-l40s"] < 10


async def test_prioritize_in_full_mode_scores_like_names_mode(client: Client) -> None:
    names = ["gpu-h100", "gpu-l40s", "gpu-t4"]
    by_names = await post(client, "/prioritize", names_args(scheduler_pod(), names))
    body, _ = full_args(scheduler_pod(), [scheduler_node(n, *NODES[n]) for n in names])
    assert await post(client, "/prioritize", body) == by_names
    priorities(by_names, names)


async def test_prioritize_gives_an_unknown_node_score_zero(client: Client) -> None:
    answer = await post(client, "/prioritize", names_args(scheduler_pod(), ["gpu-h100", "ghost"]))
    assert priorities(answer, ["gpu-h100", "ghost"])["ghost"] == 0
    # Left out, not written as 0: the scheduler reads an omitted host as 0.
    assert [entry["Host"] for entry in answer] == ["gpu-h100"]


# ---- bind --------------------------------------------------------------------------------


DECISION = "gpuclass.example.io/decision-"


async def test_bind_writes_the_decision_record_on_the_binding_without_reading_the_pod(
    client: Client, binder: RecordingBinder, policy: Policy
) -> None:
    pod = scheduler_pod("infer-a")
    await post(client, "/filter", names_args(pod, ALL))
    scores = priorities(await post(client, "/prioritize", names_args(pod, ALL)), ALL)
    response = await client.post("/bind", data=bind_args(pod, "gpu-l40s"))
    assert response.status == 200
    assert await response.json() == {"Error": ""}

    # The pod filter and prioritize were sent is the one bind checks: no read of its own.
    assert binder.reads == []
    [call] = binder.calls
    annotations = call.pop("annotations")
    assert call == {"namespace": "ml", "name": "infer-a", "uid": "uid-infer-a", "node": "gpu-l40s"}
    assert annotations == {
        f"{DECISION}class": "standard",
        f"{DECISION}score": str(scores["gpu-l40s"]),
        f"{DECISION}reason": f"score {scores['gpu-l40s']}/10 (best was 10/10 on 1 of "
        f"{len(ALL)} nodes); interactive prefers premium > standard; no batch pods on it",
        f"{DECISION}policy": policy.digest,
    }


async def test_bind_of_a_pod_our_filter_never_saw_reads_it_and_records_no_score(
    client: Client, binder: RecordingBinder
) -> None:
    pod = scheduler_pod("infer-a")
    response = await client.post("/bind", data=bind_args(pod, "gpu-h100"))
    assert response.status == 200
    assert await response.json() == {"Error": ""}
    assert binder.reads == ["ml/infer-a"]
    [call] = binder.calls
    annotations = call["annotations"]
    assert isinstance(annotations, dict)
    assert annotations[f"{DECISION}class"] == "premium"
    assert f"{DECISION}score" not in annotations
    assert annotations[f"{DECISION}reason"].startswith(NOT_SEEN)


async def test_bind_names_the_gpu_a_sharing_pod_was_charged_to_on_the_binding(
    client: Client, binder: RecordingBinder
) -> None:
    share = scheduler_pod("infer-s", annotations=classes(gpu_milli="250"))
    binder.knows(share)
    await post(client, "/filter", names_args(share, ["gpu-l40s"]))

    assert await post(client, "/bind", bind_args(share, "gpu-l40s")) == {"Error": ""}

    # A share names its GPU besides the decision record (no score: no prioritize call).
    annotations = binder.calls[-1]["annotations"]
    assert isinstance(annotations, dict)
    assert annotations["gpuclass.example.io/gpu-devices"] == "0"
    assert annotations.keys() - {"gpuclass.example.io/gpu-devices"} == {
        f"{DECISION}{part}" for part in ("class", "reason", "policy")
    }
    assert annotations[f"{DECISION}reason"].startswith(NOT_SCORED)
    node = await (await client.get("/debug/cache", params={"node": "gpu-l40s"})).json()
    assert node["freeMilliPerGpu"] == [750]


async def test_a_bound_pod_charges_its_node_before_the_watch_confirms_it(client: Client) -> None:
    first, second = scheduler_pod("infer-a"), scheduler_pod("infer-b")
    before = await post(client, "/filter", names_args(first, ["gpu-l40s"]))
    assert before["NodeNames"] == ["gpu-l40s"]
    assert await post(client, "/bind", bind_args(first, "gpu-l40s")) == {"Error": ""}
    after = await post(client, "/filter", names_args(second, ["gpu-l40s"]))
    assert after["NodeNames"] == []
    assert "not enough free GPUs" in after["FailedNodes"]["gpu-l40s"]
    node = await (await client.get("/debug/cache", params={"node": "gpu-l40s"})).json()
    assert node["freeMilliPerGpu"] == [0]
    assert node["pods"] == [
        {"pod": "ml/infer-a", "workload": "interactive", "gpus": 1, "milli": 1000, "assumed": True}
    ]


async def test_a_failed_bind_answers_its_message_with_200_and_undoes_the_charge(
    client: Client, binder: RecordingBinder
) -> None:
    first, second = scheduler_pod("infer-a"), scheduler_pod("infer-b")
    binder.fail["infer-a"] = conflict("infer-a", "gpu-l40s")
    await post(client, "/filter", names_args(first, ["gpu-l40s"]))
    answer = await post(client, "/bind", bind_args(first, "gpu-l40s"))
    assert answer == {
        "Error": "bind ml/infer-a to gpu-l40s: 409 Conflict: pod infer-a is already assigned"
    }
    assert len(binder.calls) == 1
    after = await post(client, "/filter", names_args(second, ["gpu-l40s"]))
    assert after["NodeNames"] == ["gpu-l40s"]
    node = await (await client.get("/debug/cache", params={"node": "gpu-l40s"})).json()
    assert node["freeMilliPerGpu"] == [1000]
    assert node["pods"] == []


async def test_a_binder_crash_is_a_500_json_and_undoes_the_charge(
    client: Client, binder: RecordingBinder
) -> None:
    pod = scheduler_pod("infer-a")
    binder.fail["infer-a"] = RuntimeError("connection pool exploded")
    await post(client, "/filter", names_args(pod, ["gpu-l40s"]))
    answer = await post(client, "/bind", bind_args(pod, "gpu-l40s"), status=500)
    assert answer == {"error": "InternalError", "message": "internal error; see the extender's log"}
    retry = await post(client, "/filter", names_args(scheduler_pod("infer-b"), ["gpu-l40s"]))
    assert retry["NodeNames"] == ["gpu-l40s"]


async def test_bind_without_a_binder_answers_a_protocol_error(
    aiohttp_client: AiohttpClient, policy: Policy, cache: ClusterCache
) -> None:
    client = await aiohttp_client(app_for(policy, cache))
    pod = scheduler_pod("infer-a")
    await post(client, "/filter", names_args(pod, ["gpu-l40s"]))
    answer = await post(client, "/bind", bind_args(pod, "gpu-l40s"))
    assert "bind is not enabled" in answer["Error"]
    retry = await post(client, "/filter", names_args(scheduler_pod("infer-b"), ["gpu-l40s"]))
    assert retry["NodeNames"] == ["gpu-l40s"]


@pytest.mark.parametrize(
    ("change", "node", "refusal"),
    [
        (
            {"spec": {"schedulerName": "volcano"}},
            "gpu-h100",
            "the pod's schedulerName is 'volcano'; this extender binds only for gpu-scheduler",
        ),
        ({"spec": {"nodeName": "gpu-a100"}}, "gpu-h100", "the pod is already bound to gpu-a100"),
        (
            {"metadata": {"uid": "uid-other"}},
            "gpu-h100",
            "the pod is now uid 'uid-other', not 'uid-infer-a' (it was replaced)",
        ),
        (
            {"metadata": {"annotations": classes(required_classes="economy")}},
            "gpu-h100",
            "our filter rejects node gpu-h100 for this pod now: "
            "GPU class premium (H100-80GB) is not allowed; pod needs economy",
        ),
    ],
    ids=["other-scheduler", "already-bound-elsewhere", "replaced", "filter-rejects-node"],
)
async def test_bind_refuses_what_the_scheduler_would_not_place_and_binds_nothing(
    client: Client, binder: RecordingBinder, change: dict[str, Any], node: str, refusal: str
) -> None:
    pod = scheduler_pod("infer-a")
    for part, fields in change.items():
        pod[part] = {**pod[part], **fields}
    binder.knows(pod)

    answer = await post(client, "/bind", bind_args(scheduler_pod("infer-a"), node))

    assert answer["Error"].startswith(f"bind ml/infer-a to {node}: refused: {refusal}")
    assert binder.calls == []
    cached = await (await client.get("/debug/cache", params={"node": node})).json()
    assert cached["pods"] == []
    metrics = await (await client.get("/metrics")).text()
    assert 'gpuclass_extender_binds_total{result="refused"} 1.0' in metrics


async def test_a_retried_bind_of_a_pod_already_on_that_node_succeeds_without_a_call(
    client: Client, binder: RecordingBinder
) -> None:
    pod = scheduler_pod("infer-a")
    binder.knows({**pod, "spec": {**pod["spec"], "nodeName": "gpu-h100"}})

    assert await post(client, "/bind", bind_args(pod, "gpu-h100")) == {"Error": ""}
    assert binder.calls == []


async def test_bind_of_a_pod_the_api_server_does_not_have_binds_nothing(
    client: Client, binder: RecordingBinder
) -> None:
    answer = await post(client, "/bind", bind_args(scheduler_pod("gone"), "gpu-h100"))

    assert answer["Error"] == (
        "bind ml/gone to gpu-h100: read pod ml/gone: 404: pods 'gone' not found"
    )
    assert binder.calls == []


async def test_bind_accepts_the_all_lower_case_spelling(
    client: Client, binder: RecordingBinder
) -> None:
    binder.knows(scheduler_pod("p", uid="u"))
    body = json.dumps(
        {"podname": "p", "podnamespace": "ml", "poduid": "u", "node": "gpu-h100"}
    ).encode()
    assert await post(client, "/bind", body) == {"Error": ""}
    assert binder.calls[0]["node"] == "gpu-h100"


# ---- readiness ---------------------------------------------------------------------------


async def test_an_unsynced_cache_fails_filter_in_the_body_and_prioritize_with_503(
    aiohttp_client: AiohttpClient, policy: Policy
) -> None:
    cache = ClusterCache(policy)
    client = await aiohttp_client(app_for(policy, cache))
    answer = await post(client, "/filter", names_args(scheduler_pod(), ["gpu-h100"]))
    assert set(answer) == FILTER_KEYS
    assert answer["Error"].startswith("cluster cache not synced yet")
    assert answer["NodeNames"] is None
    priorities = await post(client, "/prioritize", names_args(scheduler_pod(), ["gpu-h100"]), 503)
    assert priorities["error"] == "NotReady"
    assert priorities["message"].startswith("cluster cache not synced yet")


async def test_readyz_turns_200_only_after_nodes_and_pods_are_listed(
    aiohttp_client: AiohttpClient, policy: Policy
) -> None:
    cache = ClusterCache(policy)
    client = await aiohttp_client(app_for(policy, cache))
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200
    cache.replace_nodes([make_node("gpu-h100")])
    assert (await client.get("/readyz")).status == 503
    cache.replace_pods([])
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.text() == "ok"
    answer = await post(client, "/filter", names_args(scheduler_pod(), ["gpu-h100"]))
    assert answer["Error"] == ""
    assert answer["NodeNames"] == ["gpu-h100"]


async def test_healthz_answers_200(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.text() == "ok"


# ---- metrics -----------------------------------------------------------------------------


async def scrape(client: Client) -> dict[str, Any]:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(await response.text())}


def sample(families: dict[str, Any], family: str, name: str, **labels: str) -> float:
    for s in families[family].samples:
        if s.name == name and s.labels == labels:
            return float(s.value)
    raise AssertionError(f"no sample {name}{labels}")


async def test_metrics_count_requests_latency_and_filter_decisions(client: Client) -> None:
    for _ in range(2):
        await post(client, "/filter", names_args(scheduler_pod(), ALL))
    await post(client, "/prioritize", names_args(scheduler_pod(), ALL))
    await post(client, "/filter", b"{", status=400)
    families = await scrape(client)
    prefix = "gpuclass_extender"
    requests = f"{prefix}_requests"
    assert families[requests].type == "counter"
    assert sample(families, requests, f"{requests}_total", verb="filter", code="200") == 2
    assert sample(families, requests, f"{requests}_total", verb="filter", code="400") == 1
    assert sample(families, requests, f"{requests}_total", verb="prioritize", code="200") == 1

    latency = f"{prefix}_request_duration_seconds"
    assert families[latency].type == "histogram"
    assert sample(families, latency, f"{latency}_count", verb="filter") == 3
    assert sample(families, latency, f"{latency}_bucket", verb="filter", le="+Inf") == 3
    assert sample(families, latency, f"{latency}_sum", verb="filter") > 0

    decisions = f"{prefix}_filter_decisions"
    total = f"{decisions}_total"
    assert sample(families, decisions, total, outcome="passed", rule="") == 4
    assert sample(families, decisions, total, outcome="failed", rule="gpu_fit") == 2
    assert sample(families, decisions, total, outcome="unresolvable", rule="class_required") == 4


async def test_metrics_expose_cache_and_policy_gauges(client: Client) -> None:
    families = await scrape(client)
    prefix = "gpuclass_extender"
    objects = f"{prefix}_cache_objects"
    assert families[objects].type == "gauge"
    assert sample(families, objects, objects, kind="nodes") == len(NODES)
    assert sample(families, objects, objects, kind="pods_bound") == 1
    assert sample(families, f"{prefix}_cache_ready", f"{prefix}_cache_ready") == 1
    gpus = f"{prefix}_class_gpus"
    assert sample(families, gpus, gpus, gpu_class="premium", state="capacity") == 8
    assert sample(families, gpus, gpus, gpu_class="standard", state="capacity") == 3
    assert sample(families, gpus, gpus, gpu_class="standard", state="free") == 1
    info = f"{prefix}_policy_info"
    assert families[info].type == "gauge"
    [policy_sample] = families[info].samples
    assert policy_sample.labels["digest"] == example_policy().digest
    assert families[f"{prefix}_policy_reloads"].type == "counter"


async def test_metric_labels_never_carry_node_or_pod_names(client: Client) -> None:
    await post(client, "/filter", names_args(scheduler_pod(), ALL))
    await post(client, "/bind", bind_args(scheduler_pod(), "gpu-h100"))
    families = await scrape(client)
    values = {v for f in families.values() for s in f.samples for v in s.labels.values()}
    assert not values & {*ALL, "infer-7d9f", "ml/infer-7d9f"}


# ---- debug views -------------------------------------------------------------------------


async def test_debug_cache_summarises_classes_and_counts(client: Client, policy: Policy) -> None:
    response = await client.get("/debug/cache")
    assert response.status == 200
    body = await response.json()
    assert body["ready"] is True
    assert body["policyDigest"] == policy.digest
    assert body["counts"]["nodes"] == len(NODES)
    assert body["classes"] == {
        "premium": {"nodes": 1, "gpus": 8.0, "freeGpus": 8.0},
        "standard": {"nodes": 2, "gpus": 3.0, "freeGpus": 1.0},
        "economy": {"nodes": 1, "gpus": 4.0, "freeGpus": 4.0},
    }


async def test_debug_cache_shows_one_nodes_features_and_pods(client: Client) -> None:
    response = await client.get("/debug/cache", params={"node": "gpu-a100"})
    assert response.status == 200
    node = await response.json()
    assert node["name"] == "gpu-a100"
    assert node["gpuClass"] == "standard"
    assert node["gpus"] == 2
    assert node["freeMilliPerGpu"] == [0, 0]
    assert node["heldMilliByWorkload"] == {"batch": 2000}
    assert node["pods"] == [
        {"pod": "ml/train", "workload": "batch", "gpus": 2, "milli": 1000, "assumed": False}
    ]


async def test_debug_cache_for_an_unknown_node_is_a_404_json(client: Client) -> None:
    response = await client.get("/debug/cache", params={"node": "ghost"})
    assert response.status == 404
    assert await response.json() == {
        "error": "NotFound",
        "message": "node 'ghost' is not in the cache",
    }


POD_YAML = b"""\
apiVersion: v1
kind: Pod
metadata:
  name: infer-7d9f
  namespace: ml
  labels:
    gpuclass.example.io/workload: interactive
  creationTimestamp: 2025-03-01T10:00:00Z
spec:
  containers:
  - name: main
    image: nvcr.io/nvidia/tritonserver:24.08-py3
    resources:
      requests: {cpu: "4", nvidia.com/gpu: 1}
      limits: {nvidia.com/gpu: 1}
"""


async def test_debug_explain_ranks_nodes_for_a_yaml_pod_like_filter_and_prioritize(
    client: Client,
) -> None:
    response = await client.post("/debug/explain", data=POD_YAML)
    assert response.status == 200
    body = await response.json()
    assert body["pod"] == "ml/infer-7d9f"
    assert body["workload"] == "interactive"
    assert body["gpus"] == 1
    assert body["allowedClasses"] == "standard or better"
    nodes = body["nodes"]
    assert [n["node"] for n in nodes if n["passed"]] == ["gpu-h100", "gpu-l40s"]
    assert [n["node"] for n in nodes[2:]] == sorted(["gpu-a100", "gpu-t4", "cpu-1"])
    reasons = {n["node"]: (n["rule"], n["unresolvable"]) for n in nodes if not n["passed"]}
    assert reasons == {
        "gpu-a100": ("gpu_fit", False),
        "gpu-t4": ("class_required", True),
        "cpu-1": ("class_required", True),
    }
    scores = priorities(await post(client, "/prioritize", names_args(scheduler_pod(), ALL)), ALL)
    for node in nodes:
        if node["passed"]:
            assert node["score"] == scores[node["node"]]


async def test_debug_explain_builds_its_answer_while_filter_goes_on_answering(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explanation is a dict per node (over 100 ms at 15,000 nodes): while one is being
    built, the scheduler's filter calls must still be answered, not wait behind it."""
    building, filtered = threading.Event(), threading.Event()
    build = explanation_json

    def held_until_filter_answers(*args: Any) -> bytes:
        building.set()
        assert filtered.wait(5), "filter got no answer while the explanation was built"
        return build(*args)

    monkeypatch.setattr(app_module, "explanation_json", held_until_filter_answers)
    monkeypatch.setattr(app_module, "EXPLAIN_ON_THE_LOOP_NODES", 2)  # a large one, then
    explain = asyncio.ensure_future(client.post("/debug/explain", data=POD_YAML))
    assert await asyncio.get_running_loop().run_in_executor(None, building.wait, 5)
    answer = await post(client, "/filter", names_args(scheduler_pod(), ALL))
    assert answer["NodeNames"] == ["gpu-h100", "gpu-l40s"]
    filtered.set()
    response = await explain
    assert response.status == 200
    assert [n["node"] for n in (await response.json())["nodes"]][:2] == ["gpu-h100", "gpu-l40s"]


async def test_debug_explain_takes_a_json_pod_and_a_node_subset(client: Client) -> None:
    response = await client.post(
        "/debug/explain",
        params={"nodes": "gpu-t4,gpu-h100"},
        data=json.dumps(scheduler_pod()).encode(),
    )
    assert response.status == 200
    body = await response.json()
    assert [n["node"] for n in body["nodes"]] == ["gpu-h100", "gpu-t4"]
    assert "below the required tier standard" in body["nodes"][1]["reason"]


async def test_debug_explain_rejects_a_manifest_that_is_not_a_pod(client: Client) -> None:
    response = await client.post("/debug/explain", data=b"kind: Deployment\nmetadata: {name: x}\n")
    assert response.status == 400
    assert await response.json() == {
        "error": "WireError",
        "message": "pod manifest: expected a single Pod object",
    }


async def test_a_second_batch_pod_filtered_before_the_first_is_bound_respects_the_reserve(
    aiohttp_client: AiohttpClient,
) -> None:
    # The scheduler binds asynchronously: pod b's filter may come before pod a's bind.
    policy = example_policy()
    cache = make_cache(policy, [make_node("h100-a", "H100", 8)])
    client = await aiohttp_client(app_for(policy, cache))
    a = scheduler_pod("a", 4, workload="batch")
    b = scheduler_pod("b", 4, workload="batch")
    assert (await post(client, "/filter", names_args(a, ["h100-a"])))["NodeNames"] == ["h100-a"]
    # Its prioritize call must not count its own hold against it.
    [score] = await post(client, "/prioritize", names_args(a, ["h100-a"]))
    assert score["Score"] > 0
    answer = await post(client, "/filter", names_args(b, ["h100-a"]))
    assert answer["NodeNames"] == []
    assert "premium headroom reserved: 2 of 8" in answer["FailedNodes"]["h100-a"]


class FakeTransport:
    def __init__(self, peer: tuple[str, int] | None, cert: dict[str, Any] | None = None) -> None:
        self.extra = {"peername": peer, "peercert": cert}

    def get_extra_info(self, name: str) -> Any:
        return self.extra.get(name)


@pytest.mark.parametrize(
    ("peer", "cert", "allowed"),
    [
        (("127.0.0.1", 50000), None, True),
        (("::1", 50000, 0, 0), None, True),
        (("::ffff:127.0.0.1", 50000, 0, 0), None, True),
        (("10.0.0.7", 50000), None, False),
        (("fe80::1%eth0", 50000, 0, 2), None, False),
        (("10.0.0.7", 50000), {"subject": ((("commonName", "kube-scheduler"),),)}, True),
        (None, None, False),
    ],
    ids=[
        "ipv4-loopback",
        "ipv6-loopback",
        "mapped-loopback",
        "remote",
        "link-local",
        "remote-with-client-cert",
        "unknown-peer",
    ],
)
def test_only_loopback_or_certificate_callers_may_bind(
    peer: tuple[Any, ...] | None, cert: dict[str, Any] | None, allowed: bool
) -> None:
    refusal = bind_refusal(FakeTransport(peer, cert))  # type: ignore[arg-type]

    assert (refusal is None) == allowed
    if not allowed:
        assert "not on loopback and presented no client certificate" in str(refusal)


async def test_a_remote_caller_without_a_certificate_gets_403_and_nothing_is_bound(
    policy: Policy, cache: ClusterCache, binder: RecordingBinder
) -> None:
    """The bind handler on a connection from 10.0.0.7 without a client certificate (test
    servers listen on loopback only, so the request is built on such a transport)."""
    app = app_for(policy, cache, binder=binder)
    body = bind_args(scheduler_pod("infer-a"), "gpu-h100")
    payload = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(body)
    payload.feed_eof()
    request = make_mocked_request(
        "POST",
        "/bind",
        headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
        app=app,
        transport=FakeTransport(("10.0.0.7", 50000)),
        payload=payload,
    )

    response = await bind_handler(request)

    assert response.status == 403
    assert isinstance(response, web.Response)
    assert isinstance(response.body, bytes)
    assert orjson.loads(response.body) == {
        "error": "Forbidden",
        "message": "bind refused: caller 10.0.0.7 is not on loopback and presented no client "
        "certificate (serve with --client-ca so the scheduler authenticates)",
    }
    assert binder.calls == []
    assert binder.reads == []


async def test_the_record_names_the_policy_that_scored_the_pod_when_a_reload_came_before_bind(
    aiohttp_client: AiohttpClient, tmp_path: Path, binder: RecordingBinder
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE_POLICY.read_text())
    store = PolicyStore.from_file(path)
    scored_under = store.current.digest
    cache = cluster(store.current)
    app = create_app(store, cache, binder=binder, pod_reader=binder.read_pod)
    client = await aiohttp_client(app)
    pod = scheduler_pod("infer-a")
    await post(client, "/filter", names_args(pod, ALL))
    await post(client, "/prioritize", names_args(pod, ALL))

    path.write_text(EXAMPLE_POLICY.read_text().replace("classFit: 4", "classFit: 5"))
    assert store.reload().result == "applied"
    assert store.current.digest != scored_under
    assert await post(client, "/bind", bind_args(pod, "gpu-h100")) == {"Error": ""}

    annotations = binder.calls[0]["annotations"]
    assert isinstance(annotations, dict)
    assert annotations[f"{DECISION}policy"] == scored_under
    assert annotations[f"{DECISION}score"] == "10"
