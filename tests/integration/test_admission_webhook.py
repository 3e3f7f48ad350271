"""The admission webhook on the real API server: the shipped MutatingWebhookConfiguration
(components/admission-webhook), pointed at an extender serving /mutate over TLS on
loopback, mirrors a pod's GPU class into its stored node affinity; the scheduler then
places it on that class. With the webhook down, failurePolicy Ignore admits pods unchanged
and Fail makes the API server refuse them."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import localcluster  # hack/, on pytest's pythonpath
import pytest
from localcluster import ApiError, free_port

from tests.certificates import CertificateAuthority
from tests.deploy.render import find, render
from tests.integration.fleet import PREFIX, Fleet
from tests.integration.stack import REPO, LocalStack

CLASS_LABEL = f"{PREFIX}class"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


class Webhook:
    """`gpuclass-extender serve --admission-port` on loopback, with its own CA."""

    def __init__(self, stack: LocalStack, directory: Path) -> None:
        ca = CertificateAuthority(directory, "webhook-ca")
        served = ca.issue("gpuclass-extender", server=True)
        self.ca_pem = ca.path.read_bytes()
        self.port = free_port()
        self.log = directory / "webhook.log"
        self.argv = [
            str(Path(sys.executable).parent / "gpuclass-extender"),
            "serve",
            "--policy", str(stack.policy_path),
            "--kubeconfig", str(stack.cluster.kubeconfig),
            "--port", str(free_port()),
            "--tls-cert", str(served.cert),
            "--tls-key", str(served.key),
            "--admission-host", "127.0.0.1",
            "--admission-port", str(self.port),
            "--log-format", "json",
        ]  # fmt: skip
        self.context = ssl.create_default_context(cafile=str(ca.path))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # This worktree's code, whatever the venv's editable install points at.
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
            )
        deadline = time.monotonic() + 30
        while not self.healthy():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"webhook not serving: {self.log.read_text()}"
            time.sleep(0.05)

    def healthy(self) -> bool:
        url = f"https://127.0.0.1:{self.port}/healthz"
        try:
            with urllib.request.urlopen(url, context=self.context, timeout=2) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        localcluster.terminate(self.process, grace=10)
        self.process = None


def shipped_webhook(fleet: Fleet, webhook: Webhook) -> dict[str, Any]:
    """The component's MutatingWebhookConfiguration, calling `webhook` by URL (no Service
    here) and limited to the fleet's namespace (the shipped one excludes only ours)."""
    objects = render("examples/cluster-scheduler-with-webhook")
    config = find(objects, "MutatingWebhookConfiguration", "gpuclass-extender")
    config["metadata"] = {"name": f"gpuclass-e2e-{fleet.id}"}
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    hook["clientConfig"] = {
        "url": webhook.url,
        "caBundle": base64.b64encode(webhook.ca_pem).decode(),
    }
    hook["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": fleet.namespace}}
    return dict(config)


@pytest.fixture
def webhook(local: LocalStack, tmp_path: Path) -> Iterator[Webhook]:
    running = Webhook(local, tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def registered(fleet: Fleet, webhook: Webhook) -> Iterator[str]:
    """The shipped webhook configuration, registered; yields its name."""
    config = shipped_webhook(fleet, webhook)
    name = config["metadata"]["name"]
    fleet.kube.request("POST", WEBHOOKS, config)
    try:
        yield name
    finally:
        fleet.kube.request("DELETE", f"{WEBHOOKS}/{name}", ok=(200, 202, 404))


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


def class_expressions(pod: Any) -> list[Any]:
    affinity = pod["spec"].get("affinity") or {}
    terms = (affinity.get("nodeAffinity") or {}).get(REQUIRED, {}).get("nodeSelectorTerms", [])
    return [e for t in terms for e in t.get("matchExpressions", []) if e["key"] == CLASS_LABEL]


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
