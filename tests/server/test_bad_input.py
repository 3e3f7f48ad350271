"""Bad and odd requests: a precise JSON error or the protocol answer, and state untouched."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from extender.policy import Policy
from extender.server.app import Limits
from tests.builders import example_policy, make_cache, make_pod, node_dict
from tests.server.payloads import (
    FLEET,
    Client,
    RecordingBinder,
    app_for,
    bind_args,
    classes,
    fleet_nodes,
    full_args,
    names_args,
    scheduler_node,
    scheduler_pod,
)

NODES = FLEET
ALL = list(NODES)
PROBE_POD = scheduler_pod("probe", 1)
PROBE_NAMES = [*ALL, "ghost"]


def make_app(policy: Policy, **kw: Any) -> web.Application:
    nodes = fleet_nodes()
    train = make_pod("train", 2, workload="batch", node="gpu-a100", phase="Running", uid="u-train")
    binder = RecordingBinder()
    # A pod the API server has but our cache has never seen (its watch event is late).
    binder.knows(scheduler_pod("stranger"))
    return app_for(policy, make_cache(policy, nodes, [train]), binder=binder, **kw)


@pytest.fixture
def policy() -> Policy:
    return example_policy()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, policy: Policy) -> Client:
    return await aiohttp_client(make_app(policy))


async def probe(client: Client) -> tuple[Any, ...]:
    """A fixed filter + prioritize, and every node's cached features."""
    filtered = await client.post("/filter", data=names_args(PROBE_POD, PROBE_NAMES))
    scored = await client.post("/prioritize", data=names_args(PROBE_POD, PROBE_NAMES))
    assert (filtered.status, scored.status) == (200, 200)
    views = [await (await client.get("/debug/cache", params={"node": n})).json() for n in ALL]
    return await filtered.json(), await scored.json(), views


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text


@dataclass(frozen=True)
class Bad:
    """A request the server must refuse with `status` and a WireError-like JSON body."""

    id: str
    path: str
    body: bytes
    status: int
    error: str
    message: str  # an exact message, or its start when it ends with "..."
    method: str = "POST"


def _obj(value: Any) -> bytes:
    return json.dumps(value).encode()


def _pod_with_gpu_quantity(value: Any) -> dict[str, Any]:
    pod = scheduler_pod("odd", 1)
    pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = value
    return pod


NAMELESS_NODE: dict[str, Any] = {"metadata": {"labels": {}}, "spec": {}, "status": {}}
EXPECTED = "ExtenderArgs: Expected"
MALFORMED = "ExtenderArgs: malformed JSON: ..."
EMPTY = "ExtenderArgs: empty body, expected a JSON object"
W, ALLOWED, MISSING = "WireError", "405: Method Not Allowed", "404: Not Found"

BAD: list[Bad] = [
    Bad("filter-malformed", "/filter", b'{"Pod": {', 400, W, MALFORMED),
    Bad("filter-not-utf8", "/filter", b"\xff\xfe{}", 400, W, MALFORMED),
    Bad("prioritize-malformed", "/prioritize", b"{,}", 400, W, MALFORMED),
    Bad("bind-malformed", "/bind", b"{", 400, W, "ExtenderBindingArgs: malformed JSON: ..."),
    Bad("filter-empty", "/filter", b"", 400, W, EMPTY),
    Bad("prioritize-empty", "/prioritize", b"", 400, W, EMPTY),
    Bad("bind-empty", "/bind", b"", 400, W, EMPTY.replace("Args", "BindingArgs")),
    Bad("filter-array", "/filter", b"[]", 400, W, f"{EXPECTED} `object`, got `array`"),
    # Found by fuzzing: the decoder's recursion limit was an uncaught RecursionError (500).
    Bad(
        "nested-too-deeply",
        "/filter",
        b'{"Pod": {"unknown": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        400,
        W,
        "ExtenderArgs: JSON nested too deeply",
    ),
    Bad("filter-null", "/filter", b"null", 400, W, f"{EXPECTED} `object`, got `null`"),
    Bad(
        "names-a-string",
        "/filter",
        _obj({"Pod": PROBE_POD, "Nodes": None, "NodeNames": "gpu-h100"}),
        400,
        "WireError",
        "ExtenderArgs: Expected `array | null`, got `str` - at `$.NodeNames`",
    ),
    Bad(
        "pod-a-list",
        "/prioritize",
        _obj({"Pod": [PROBE_POD], "Nodes": None, "NodeNames": ALL}),
        400,
        "WireError",
        "ExtenderArgs: Expected `object | null`, got `array` - at `$.Pod`",
    ),
    Bad(
        "names-of-ints",
        "/filter",
        _obj({"Pod": PROBE_POD, "Nodes": None, "NodeNames": [1]}),
        400,
        "WireError",
        "ExtenderArgs: Expected `str`, got `int` - at `$.NodeNames[0]`",
    ),
    Bad(
        "gpu-quantity-a-list",
        "/filter",
        _obj({"Pod": _pod_with_gpu_quantity([1]), "Nodes": None, "NodeNames": ALL}),
        400,
        "WireError",
        f"{EXPECTED} `int | float | str`, got `array` - at `$.Pod.spec.containers[0]...",
    ),
    Bad(
        "items-a-string",
        "/filter",
        _obj({"Pod": PROBE_POD, "Nodes": {"metadata": {}, "items": "gpu-h100"}, "NodeNames": None}),
        400,
        "WireError",
        "ExtenderArgs: Expected `array | null`, got `str` - at `$.Nodes.items`",
    ),
    Bad(
        "item-a-string",
        "/filter",
        _obj(
            {"Pod": PROBE_POD, "Nodes": {"items": [node_dict("gpu-h100"), "x"]}, "NodeNames": None}
        ),
        400,
        "WireError",
        "ExtenderArgs.Nodes.items[1]: Expected `object`, got `str`",
    ),
    Bad(
        "item-without-name",
        "/prioritize",
        _obj({"Pod": PROBE_POD, "Nodes": {"items": [NAMELESS_NODE]}, "NodeNames": None}),
        400,
        "WireError",
        "ExtenderArgs.Nodes.items[0]: metadata.name is empty",
    ),
    Bad(
        "missing-pod",
        "/filter",
        _obj({"Nodes": None, "NodeNames": ALL}),
        400,
        "WireError",
        "ExtenderArgs: 'Pod' is missing or null, expected a v1.Pod object",
    ),
    Bad(
        "missing-nodes",
        "/prioritize",
        _obj({"Pod": PROBE_POD, "Nodes": None, "NodeNames": None}),
        400,
        "WireError",
        "ExtenderArgs: both 'NodeNames' and 'Nodes.items' are null, ...",
    ),
    Bad(
        "bind-missing-uid-and-node",
        "/bind",
        _obj({"PodName": "probe", "PodNamespace": "ml"}),
        400,
        "WireError",
        "ExtenderBindingArgs: missing or empty PodUID, Node",
    ),
    Bad(
        "bind-wrong-type",
        "/bind",
        _obj({"PodName": "probe", "PodNamespace": "ml", "PodUID": 7, "Node": "gpu-h100"}),
        400,
        "WireError",
        "ExtenderBindingArgs: Expected `str`, got `int` - at `$.PodUID`",
    ),
    Bad(
        "explain-not-yaml",
        "/debug/explain",
        b"metadata: [\n",
        400,
        "WireError",
        "pod manifest: neither JSON nor YAML: ...",
    ),
    Bad(
        "explain-non-string-key",
        "/debug/explain",
        b"metadata:\n  name: x\n  labels: {1: a}\n",
        400,
        "WireError",
        "pod manifest: not a JSON-compatible object: ...",
    ),
    Bad(
        "explain-a-list",
        "/debug/explain",
        b"- kind: Pod\n",
        400,
        "WireError",
        "pod manifest: expected a single Pod object",
    ),
    Bad("get-filter", "/filter", b"", 405, "MethodNotAllowed", ALLOWED, "GET"),
    Bad("put-bind", "/bind", b"{}", 405, "MethodNotAllowed", ALLOWED, "PUT"),
    Bad("get-explain", "/debug/explain", b"", 405, "MethodNotAllowed", ALLOWED, "GET"),
    Bad("unknown-path", "/scheduler/filter", b"{}", 404, "NotFound", MISSING),
    Bad("unknown-get", "/nope", b"", 404, "NotFound", MISSING, "GET"),
]


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
async def test_a_bad_request_gets_a_precise_json_error_and_leaves_state_untouched(
    client: Client, bad: Bad
) -> None:
    before = await probe(client)
    response = await client.request(bad.method, bad.path, data=bad.body)
    text = await response.text()
    assert response.status == bad.status, text
    assert response.content_type == "application/json"
    assert_no_traceback(text)
    body = json.loads(text)
    assert set(body) == {"error", "message"}
    assert body["error"] == bad.error
    if bad.message.endswith("..."):
        assert body["message"].startswith(bad.message.removesuffix("...")), body["message"]
    else:
        assert body["message"] == bad.message
    if bad.status == 405:
        assert response.headers["Allow"] == "POST"
    assert await probe(client) == before


async def test_a_body_over_the_limit_is_a_413_json_and_the_server_keeps_serving(
    aiohttp_client: AiohttpClient, policy: Policy
) -> None:
    limit = 16 * 1024
    client = await aiohttp_client(make_app(policy, limits=Limits(max_body_bytes=limit)))
    before = await probe(client)
    assert len(names_args(PROBE_POD, PROBE_NAMES)) < limit
    nodes = [scheduler_node(f"gpu-{i}", "H100", 8) for i in range(20)]
    body, _ = full_args(PROBE_POD, nodes)
    assert len(body) > limit
    for path in ("/filter", "/prioritize", "/bind"):
        response = await client.post(path, data=body)
        text = await response.text()
        assert response.status == 413, text
        assert_no_traceback(text)
        assert json.loads(text) == {
            "error": "RequestEntityTooLarge",
            "message": f"Maximum request body size {limit} exceeded.",
        }
        assert await probe(client) == before


# ---- protocol answers to odd but well-formed requests -----------------------------------


async def filter_answer(client: Client, pod: dict[str, Any], names: list[str]) -> Any:
    response = await client.post("/filter", data=names_args(pod, names))
    text = await response.text()
    assert response.status == 200, text
    assert_no_traceback(text)
    return json.loads(text)


async def test_unknown_node_names_fail_with_a_retry_reason(client: Client) -> None:
    before = await probe(client)
    answer = await filter_answer(client, PROBE_POD, ["ghost-1", "gpu-h100", "ghost-2"])
    assert answer == {
        "NodeNames": ["gpu-h100"],
        "Nodes": None,
        "FailedNodes": {
            "ghost-1": "node not yet in the extender's cache; retrying",
            "ghost-2": "node not yet in the extender's cache; retrying",
        },
        "FailedAndUnresolvableNodes": {},
        "Error": "",
    }
    assert await probe(client) == before


async def test_duplicate_node_names_are_answered_once_each(client: Client) -> None:
    before = await probe(client)
    names = ["gpu-h100", "gpu-t4", "gpu-h100", "gpu-t4", "gpu-h100"]
    answer = await filter_answer(client, PROBE_POD, names)
    assert answer["NodeNames"] == ["gpu-h100"]
    assert list(answer["FailedAndUnresolvableNodes"]) == ["gpu-t4"]
    response = await client.post("/prioritize", data=names_args(PROBE_POD, names))
    # gpu-h100 (named three times) once; gpu-t4 scores 0, so the answer leaves it out.
    assert [p["Host"] for p in await response.json()] == ["gpu-h100"]
    assert await probe(client) == before


async def test_duplicate_node_objects_in_full_mode_are_echoed_once(client: Client) -> None:
    node = scheduler_node("gpu-h100", "H100", 8)
    body, _ = full_args(PROBE_POD, [node, node])
    response = await client.post("/filter", data=body)
    assert response.status == 200
    assert (await response.json())["Nodes"]["items"] == [node]


async def test_contradictory_class_wishes_make_every_node_unresolvable(client: Client) -> None:
    before = await probe(client)
    pod = scheduler_pod(
        "contrary", annotations=classes(required_classes="premium", excluded_classes="premium")
    )
    answer = await filter_answer(client, pod, PROBE_NAMES)
    assert answer["NodeNames"] == []
    assert answer["FailedNodes"] == {}
    assert answer["Error"] == ""
    reasons = answer["FailedAndUnresolvableNodes"]
    assert list(reasons) == PROBE_NAMES
    expected = "pod cannot be placed: GPU-class wishes contradict: pod requires premium"
    expected += " but excludes premium"
    assert set(reasons.values()) == {expected}  # one identical reason aggregates in the event
    response = await client.post("/prioritize", data=names_args(pod, PROBE_NAMES))
    assert await response.json() == []  # every node scores 0: none is named
    assert await probe(client) == before


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (_pod_with_gpu_quantity("1e1000000"), "nvidia.com/gpu '1e1000000' is out of range"),
        (_pod_with_gpu_quantity("lots"), "nvidia.com/gpu 'lots' is not a quantity"),
        (_pod_with_gpu_quantity("2"), "request 1 differs from limit 2"),
        (
            scheduler_pod("odd", annotations=classes(gpu_milli="abc")),
            "gpu-milli='abc' is not an integer 1..1000",
        ),
        (scheduler_pod("odd", workload="gold"), "names no workload class"),
    ],
    ids=["huge-quantity", "bad-quantity", "request-neq-limit", "bad-milli", "unknown-workload"],
)
async def test_an_impossible_pod_is_unresolvable_everywhere_with_its_problem_named(
    client: Client, pod: dict[str, Any], reason: str
) -> None:
    before = await probe(client)
    answer = await filter_answer(client, pod, ALL)
    assert answer["NodeNames"] == []
    assert list(answer["FailedAndUnresolvableNodes"]) == ALL
    for text in answer["FailedAndUnresolvableNodes"].values():
        assert text.startswith("pod cannot be placed: ")
        assert reason in text
    assert await probe(client) == before


async def test_a_pod_without_a_gpu_request_passes_every_node(client: Client) -> None:
    before = await probe(client)
    answer = await filter_answer(client, scheduler_pod("cpu-only", 0), PROBE_NAMES)
    assert answer == {
        "NodeNames": PROBE_NAMES,
        "Nodes": None,
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {},
        "Error": "",
    }
    assert await probe(client) == before


async def test_a_bind_for_an_unknown_pod_charges_nothing(client: Client) -> None:
    before = await probe(client)
    response = await client.post("/bind", data=bind_args(scheduler_pod("stranger"), "gpu-l40s"))
    assert await response.json() == {"Error": ""}
    assert await probe(client) == before


async def test_the_server_keeps_serving_after_a_burst_of_bad_requests(client: Client) -> None:
    before = await probe(client)
    for bad in BAD:
        response = await client.request(bad.method, bad.path, data=bad.body)
        assert response.status == bad.status
        await response.read()
    assert await probe(client) == before
    metrics = await (await client.get("/metrics")).text()
    assert 'gpuclass_extender_requests_total{code="400",verb="filter"}' in metrics


async def test_explain_of_a_pod_asking_for_absurdly_many_gpus_names_the_conflict(
    client: Client,
) -> None:
    # Found by `make fuzz`: 2**70 GPUs reached the JSON encoder (a 500).
    pod = scheduler_pod("greedy")
    pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 2**70}}

    response = await client.post("/debug/explain", data=json.dumps(pod).encode())

    assert response.status == 200, await response.text()
    assert f"asks for {2**70} nvidia.com/gpu" in await response.text()
