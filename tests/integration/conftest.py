"""The integration tier: a real kube-apiserver and kube-scheduler calling the extender.

By default the stack runs locally (hack/localcluster.py; `make controlplane` builds it).
With GPUCLASS_E2E_KUBECONFIG set, the suite runs against that cluster instead (e.g. kind
with manifests/second-scheduler deployed), and GPUCLASS_E2E_EXTENDER_URL may point at the
extender.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import localcluster  # hack/, on pytest's pythonpath
import pytest

from tests.integration.fleet import FLEET_LABEL, Fleet
from tests.integration.stack import ExternalStack, LocalStack, SchedulerSettings
from tests.integration.webhook import WEBHOOKS, Webhook, shipped_webhook

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack | ExternalStack]:
    external = os.environ.get("GPUCLASS_E2E_KUBECONFIG")
    if external:
        yield ExternalStack(Path(external), os.environ.get("GPUCLASS_E2E_EXTENDER_URL"))
        return
    if not localcluster.binaries_available():
        message = "kube-apiserver/kube-scheduler not built: run `make controlplane`"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run this tier, never skip it
        pytest.skip(message)
    with tempfile.TemporaryDirectory(prefix="gpuclass-e2e-") as workdir:
        local = LocalStack(Path(workdir))
        local.start()
        try:
            yield local
        finally:
            local.stop()


@pytest.fixture
def local(stack: LocalStack | ExternalStack) -> LocalStack:
    """The stack, for tests that must stop, restart or reconfigure its parts."""
    if not isinstance(stack, LocalStack):
        pytest.skip("needs control of the scheduler and extender (local stack only)")
    return stack


@pytest.fixture
def fleet(stack: LocalStack | ExternalStack) -> Iterator[Fleet]:
    """A fresh namespace and node set; the scheduler is back to the shipped settings."""
    if isinstance(stack, LocalStack):
        stack.configure_scheduler(SchedulerSettings())
        if not stack.extender_running:
            stack.start_extender()
    created = Fleet(stack)
    try:
        yield created
    finally:
        created.cleanup()
        if isinstance(stack, LocalStack):
            stack.restore_policy()


@pytest.fixture
def sole_gpu_fleet(fleet: Fleet) -> Fleet:
    """The fleet, for tests of class-wide rules (headroom): no other GPU nodes may exist."""
    nodes = fleet.kube.request("GET", "/api/v1/nodes")["items"]
    foreign = [
        n["metadata"]["name"]
        for n in nodes
        if "nvidia.com/gpu" in n.get("status", {}).get("capacity", {})
        and n["metadata"].get("labels", {}).get(FLEET_LABEL) != fleet.id
    ]
    if foreign:
        pytest.skip(f"class-wide rules need a cluster without other GPU nodes: {foreign[:5]}")
    return fleet


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
