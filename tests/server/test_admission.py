"""POST /mutate: AdmissionReview v1 in, the GPU-class node affinity patch out; never a refusal."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from extender.policy import Policy
from extender.server.app import Limits
from extender.server.metrics import Metrics
from extender.state import ClusterCache
from tests.builders import apply_json_patch, example_policy, make_cache, pod_dict
from tests.server.payloads import Client, app_for, classes, fleet_nodes

CLASS_LABEL = "gpuclass.example.io/class"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
MIRRORED = {"key": CLASS_LABEL, "operator": "In", "values": ["premium"]}


@pytest.fixture
def policy() -> Policy:
    return example_policy()


@pytest.fixture
def cache(policy: Policy) -> ClusterCache:
    return make_cache(policy, fleet_nodes())


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, policy: Policy, cache: ClusterCache, metrics: Metrics
) -> Client:
    return await aiohttp_client(app_for(policy, cache, metrics=metrics, admission=True))


def review(
    pod: Any,
    *,
    uid: str = "review-1",
    operation: str = "CREATE",
    kind: dict[str, str] | None = None,
    sub_resource: str | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": uid,
        "kind": kind or {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "ml",
        "operation": operation,
        "userInfo": {"username": "alice"},
        "object": pod,
        "dryRun": False,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def premium_pod(**kw: Any) -> dict[str, Any]:
    return pod_dict("infer", 1, annotations=classes(required_classes="premium"), **kw)


async def mutate(client: Client, body: Any) -> dict[str, Any]:
    response = await client.post("/mutate", data=json.dumps(body))
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["allowed"] is True
    result: dict[str, Any] = answer["response"]
    return result


def patched(pod: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    assert response["patchType"] == "JSONPatch"
    result: dict[str, Any] = apply_json_patch(pod, json.loads(base64.b64decode(response["patch"])))
    return result


def outcome(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(
        "gpuclass_extender_admission_reviews_total", {"outcome": name}
    )
    return value or 0.0


async def test_a_pod_with_a_class_rule_gets_the_mirrored_node_affinity(
    client: Client, metrics: Metrics
) -> None:
    pod = premium_pod()
    response = await mutate(client, review(pod, uid="abc-123"))
    assert response["uid"] == "abc-123"
    terms = patched(pod, response)["spec"]["affinity"]["nodeAffinity"][REQUIRED]
    assert terms == {"nodeSelectorTerms": [{"matchExpressions": [MIRRORED]}]}
    assert "warnings" not in response
    assert outcome(metrics, "mirrored") == 1


async def test_the_workload_class_default_is_mirrored_too(client: Client) -> None:
    pod = pod_dict("chat", 1, workload="interactive")
    terms = patched(pod, await mutate(client, review(pod)))["spec"]["affinity"]["nodeAffinity"]
    expression = terms[REQUIRED]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert expression["values"] == ["premium", "standard"]


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (pod_dict("any", 1), "unrestricted"),
        (pod_dict("cpu", 0, annotations=classes(required_classes="premium")), "unrestricted"),
        (premium_pod(node="gpu-h100-a"), "skipped"),
        (
            {**premium_pod(), "spec": {**premium_pod()["spec"], "schedulerName": "other"}},
            "skipped",
        ),
    ],
    ids=["no-class-rule", "no-gpus", "already-bound", "another-scheduler"],
)
async def test_pods_the_rule_does_not_concern_are_admitted_unchanged(
    client: Client, metrics: Metrics, pod: dict[str, Any], expected: str
) -> None:
    response = await mutate(client, review(pod))
    assert "patch" not in response
    assert "patchType" not in response
    assert outcome(metrics, expected) == 1


@pytest.mark.parametrize(
    ("operation", "kind", "sub_resource"),
    [
        ("UPDATE", None, None),
        ("CREATE", {"group": "", "version": "v1", "kind": "Binding"}, "binding"),
        ("CREATE", {"group": "apps", "version": "v1", "kind": "Deployment"}, None),
    ],
    ids=["update", "binding-subresource", "not-a-pod"],
)
async def test_only_pod_creation_is_mutated(
    client: Client,
    metrics: Metrics,
    operation: str,
    kind: dict[str, str] | None,
    sub_resource: str | None,
) -> None:
    body = review(premium_pod(), operation=operation, kind=kind, sub_resource=sub_resource)
    assert "patch" not in await mutate(client, body)
    assert outcome(metrics, "skipped") == 1


async def test_a_pod_already_carrying_the_rule_gets_no_patch(
    client: Client, metrics: Metrics
) -> None:
    pod = premium_pod()
    pod = patched(pod, await mutate(client, review(pod)))
    response = await mutate(client, review(pod, uid="again"))  # reinvocationPolicy: IfNeeded
    assert response["uid"] == "again"
    assert "patch" not in response
    assert outcome(metrics, "unchanged") == 1


async def test_contradictory_wishes_are_admitted_unchanged_with_a_warning(
    client: Client, metrics: Metrics
) -> None:
    pod = pod_dict("odd", 1, annotations=classes(required_classes="economy", min_class="premium"))
    response = await mutate(client, review(pod))
    assert "patch" not in response
    (warning,) = response["warnings"]
    assert warning.startswith("gpuclass-extender: GPU-class node affinity not added")
    assert "contradict" in warning
    assert len(warning) <= 256
    assert outcome(metrics, "conflict") == 1


@pytest.mark.parametrize(
    ("pod", "problem"),
    [
        ({"metadata": {"name": "x"}, "spec": {"containers": "main"}}, "request.object"),
        ({**premium_pod(), "spec": {**premium_pod()["spec"], "affinity": "zone-a"}}, "affinity"),
    ],
    ids=["containers-not-a-list", "affinity-not-an-object"],
)
async def test_a_pod_we_cannot_read_is_admitted_unchanged_with_a_warning(
    client: Client, metrics: Metrics, pod: dict[str, Any], problem: str
) -> None:
    response = await mutate(client, review(pod))
    assert "patch" not in response
    (warning,) = response["warnings"]
    assert warning.startswith("gpuclass-extender: pod admitted without GPU-class node affinity")
    assert problem in warning
    assert outcome(metrics, "unreadable") == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "AdmissionReview: empty body"),
        (b"{not json", "AdmissionReview: malformed JSON"),
        (b"[]", "AdmissionReview: Expected `object`"),
        (
            json.dumps({**review(premium_pod()), "apiVersion": "admission.k8s.io/v1beta1"}),
            "expected admission.k8s.io/v1 AdmissionReview",
        ),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
            "'request' is missing",
        ),
        (json.dumps(review(premium_pod(), uid="")), "request.uid is missing"),
        (
            json.dumps({**review(premium_pod()), "request": {"uid": 7}}),
            "Expected `str`, got `int` - at `$.request.uid`",
        ),
    ],
    ids=["empty", "not-json", "not-an-object", "v1beta1", "no-request", "no-uid", "uid-type"],
)
async def test_a_malformed_review_is_a_400_with_a_precise_message(
    client: Client, body: bytes | str, message: str
) -> None:
    response = await client.post("/mutate", data=body)
    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == "WireError"
    assert message in answer["message"]


async def test_the_webhook_is_off_unless_asked_for(
    aiohttp_client: AiohttpClient, policy: Policy, cache: ClusterCache
) -> None:
    client = await aiohttp_client(app_for(policy, cache))
    response = await client.post("/mutate", data=json.dumps(review(premium_pod())))
    assert response.status == 404


async def test_the_webhook_does_not_wait_for_the_cache(
    aiohttp_client: AiohttpClient, policy: Policy
) -> None:
    """Pods are created before our watches sync; the patch needs the policy only."""
    client = await aiohttp_client(app_for(policy, ClusterCache(policy), admission=True))
    response = await mutate(client, review(premium_pod()))
    assert response["patchType"] == "JSONPatch"


async def test_the_body_limit_applies_to_reviews(
    aiohttp_client: AiohttpClient, policy: Policy, cache: ClusterCache
) -> None:
    app = app_for(policy, cache, admission=True, limits=Limits(max_body_bytes=1024))
    client = await aiohttp_client(app)
    pod = premium_pod()
    pod["metadata"]["annotations"]["padding"] = "x" * 2048
    response = await client.post("/mutate", data=json.dumps(review(pod)))
    assert response.status == 413
    assert (await response.json())["error"] == "RequestEntityTooLarge"
