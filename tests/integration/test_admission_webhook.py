"""The admission webhook on the real API server: the shipped MutatingWebhookConfiguration
(components/admission-webhook), pointed at an extender serving /mutate over TLS on
loopback, mirrors a pod's GPU class into its stored node affinity; the scheduler then
places it on that class. With the webhook down, failurePolicy Ignore admits pods unchanged
and Fail makes the API server refuse them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from localcluster import ApiError

from tests.integration.fleet import PREFIX, Fleet
from tests.integration.webhook import CLASS_LABEL, WEBHOOKS, Webhook, class_expressions


def pod_manifest(fleet: Fleet, name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "schedulerName": "gpu-scheduler",
            "containers": [
                {
                    "name": "main",
                    "image": "example/app:1",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            ],
        },
    }


def dry_run_create(fleet: Fleet, annotations: dict[str, str]) -> Any:
    """Create a pod with dryRun=All: admission runs (sideEffects None), nothing is stored."""
    name = f"probe-{time.monotonic_ns()}"
    return fleet.kube.request(
        "POST",
        f"/api/v1/namespaces/{fleet.namespace}/pods?dryRun=All",
        pod_manifest(fleet, name, annotations),
    )


def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


PREMIUM = {f"{PREFIX}required-classes": "premium"}


def test_the_webhook_mirrors_the_class_and_its_failure_policy_decides_when_it_is_down(
    fleet: Fleet, webhook: Webhook, registered: str
) -> None:
    kube = fleet.kube
    # The API server picks up a new webhook configuration within a second or so.
    until(lambda: class_expressions(dry_run_create(fleet, PREMIUM)), 15, "webhook active")

    h100 = fleet.node("h100", "H100", labels={CLASS_LABEL: "premium"})
    fleet.node("a100", "A100-40GB", labels={CLASS_LABEL: "standard"})
    fleet.await_cached()
    fleet.pod("infer", gpus=1, annotations={"required-classes": "premium"})
    fleet.pod("chat", gpus=1, workload="interactive")
    fleet.pod("anything", gpus=1)

    stored = fleet.get_pod("infer")
    mirrored = {"key": CLASS_LABEL, "operator": "In", "values": ["premium"]}
    assert class_expressions(stored) == [mirrored]
    # The fleet's own nodeSelector is untouched; the affinity is added beside it.
    assert stored["spec"]["nodeSelector"] == {"gpuclass-e2e/fleet": fleet.id}
    assert class_expressions(fleet.get_pod("chat"))[0]["values"] == ["premium", "standard"]
    assert class_expressions(fleet.get_pod("anything")) == []  # batch may use any class
    assert fleet.bound("infer") == h100

    # The webhook goes down. failurePolicy Ignore: pods are admitted as they are.
    webhook.stop()
    fleet.pod("unmirrored", gpus=1, annotations={"required-classes": "premium"})
    assert class_expressions(fleet.get_pod("unmirrored")) == []
    assert fleet.bound("unmirrored") == h100  # the extender still enforces the class

    # failurePolicy Fail: the API server refuses to create pods it cannot have mutated.
    patch = [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Fail"}]
    kube.request("PATCH", f"{WEBHOOKS}/{registered}", patch, "application/json-patch+json")

    def refused() -> bool:
        try:
            dry_run_create(fleet, PREMIUM)
        except ApiError as exc:
            return exc.status == 500
        return False

    until(refused, 15, "failurePolicy Fail in force")
    with pytest.raises(ApiError) as refusal:
        fleet.pod("refused", gpus=1, annotations={"required-classes": "premium"})
    assert refusal.value.status == 500
    message = str(refusal.value).replace('\\"', '"')  # the Status body, JSON-escaped
    assert 'failed calling webhook "mirror-gpu-class.gpuclass.example.io"' in message
    assert f"{webhook.url}?timeout=5s" in message
