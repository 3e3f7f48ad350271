"""The admission webhook as tests run it: `gpuclass-extender serve --admission-port` on
loopback with its own CA, registered through the shipped MutatingWebhookConfiguration
(components/admission-webhook) by URL, limited to one fleet's namespace."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import localcluster  # hack/, on pytest's pythonpath

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
        self.port = 0  # the OS picks it at the first start; kept for restarts
        self.log = directory / "webhook.log"
        self.argv = [
            str(Path(sys.executable).parent / "gpuclass-extender"),
            "serve",
            "--policy", str(stack.policy_path),
            "--kubeconfig", str(stack.cluster.kubeconfig),
            "--port", "0",
            "--tls-cert", str(served.cert),
            "--tls-key", str(served.key),
            "--admission-host", "127.0.0.1",
            "--log-format", "json",
        ]  # fmt: skip
        self.context = ssl.create_default_context(cafile=str(ca.path))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    def start(self) -> None:
        logged = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.argv, "--admission-port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # This worktree's code, whatever the venv's editable install points at.
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
            )
        ports = localcluster.await_serving_ports(self.log, logged, self.process)
        self.port = self.port or ports["admission_port"]
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


def class_expressions(pod: Any) -> list[Any]:
    affinity = pod["spec"].get("affinity") or {}
    terms = (affinity.get("nodeAffinity") or {}).get(REQUIRED, {}).get("nodeSelectorTerms", [])
    return [e for t in terms for e in t.get("matchExpressions", []) if e["key"] == CLASS_LABEL]
