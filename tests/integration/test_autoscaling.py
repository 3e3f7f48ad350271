"""A real autoscaler against our rules: Karpenter's KWOK provider (v1.14.1, built from its Go
module by hack/build-karpenter.sh) provisions GPU nodes on the local control plane, and the
real kube-scheduler places pods on them through our extender. docs/autoscaling.md says what
each test showed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from controlplane.karpenter import (
    NODE_CLASSES,
    NODECLAIMS,
    NODEPOOL_LABEL,
    NODEPOOLS,
    KarpenterProcess,
    KubeletStandIn,
    build_karpenter,
    install_crds,
    node_class,
    node_pool,
)
from localcluster import Kube

from extender.cli.main import main
from tests.integration.fleet import FLEET_LABEL, PREFIX, Fleet, wait_for
from tests.integration.stack import EXAMPLE_POLICY, LocalStack

CLASS_LABEL = f"{PREFIX}class"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
# One pool per class, weighted as docs/autoscaling.md advises: Karpenter takes the first
# pool (by weight, then name in reverse) that fits a pod, not the cheapest, so cheaper
# classes weigh more and a pod that may use any class scales the cheapest first.
POOLS = {
    "premium": (["p5.48xlarge", "p5.4xlarge"], 10),
    "standard": (["g6.12xlarge", "g6.xlarge"], 20),
    "economy": (["g4dn.12xlarge", "g4dn.xlarge"], 30),
}


@dataclass
class Autoscaler:
    kube: Kube
    process: KarpenterProcess
    kubelet: KubeletStandIn


@pytest.fixture(scope="module")
def autoscaler(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Autoscaler]:
    if not isinstance(stack, LocalStack):
        pytest.skip("Karpenter's KWOK provider runs beside the local control plane only")
    directory = build_karpenter()
    kube = Kube(stack.cluster.kubeconfig)
    install_crds(kube, directory)
    kube.request("POST", NODE_CLASSES, node_class(), ok=(201, 409))
    process = KarpenterProcess(
        stack.cluster.kubeconfig, tmp_path_factory.mktemp("karpenter"), directory
    )
    process.start()
    kubelet = KubeletStandIn(kube)
    kubelet.start()
    try:
        yield Autoscaler(kube, process, kubelet)
    finally:
        kubelet.stop()
        process.stop()


@dataclass
class Pools:
    """One test's NodePools, whose nodes carry the fleet's label (the pods select it)."""

    fleet: Fleet
    kube: Kube
    names: list[str] = field(default_factory=list)

    def add(
        self,
        name: str,
        instance_types: list[str],
        labels: dict[str, str],
        weight: int | None = None,
    ) -> str:
        full = f"{self.fleet.id}-{name}"
        pool = node_pool(full, instance_types, {FLEET_LABEL: self.fleet.id, **labels}, weight)
        self.kube.request("POST", NODEPOOLS, pool)
        self.names.append(full)
        return full

    def per_class(self) -> None:
        for name, (types, weight) in POOLS.items():
            self.add(name, types, {CLASS_LABEL: name}, weight)

    def nodes(self) -> list[dict[str, Any]]:
        selector = f"{FLEET_LABEL}={self.fleet.id}"
        return list(self.kube.request("GET", f"/api/v1/nodes?labelSelector={selector}")["items"])

    def cleanup(self) -> None:
        for name in self.names:
            self.kube.request("DELETE", f"{NODEPOOLS}/{name}", ok=(200, 202, 404))
            claims = self.kube.request("GET", f"{NODECLAIMS}?labelSelector={NODEPOOL_LABEL}={name}")
            for claim in claims["items"]:
                self.kube.request(
                    "DELETE", f"{NODECLAIMS}/{claim['metadata']['name']}", ok=(200, 202, 404)
                )
        wait_for(lambda: not self.nodes(), 60, "Karpenter's nodes gone")


@pytest.fixture
def pools(fleet: Fleet, autoscaler: Autoscaler) -> Iterator[Pools]:
    created = Pools(fleet, autoscaler.kube)
    try:
        yield created
    finally:
        created.cleanup()


def record(case: str, test: str, seconds: float | None, nodes: list[dict[str, Any]]) -> None:
    """Append a case's figures to $GPUCLASS_AUTOSCALING_RECORD (JSON lines) when it is set:
    `make autoscaling` renders them into docs/autoscaling-karpenter.md."""
    path = os.environ.get("GPUCLASS_AUTOSCALING_RECORD")
    if not path:
        return
    row = {
        "case": case,
        "test": test,
        "seconds": None if seconds is None else round(seconds, 2),
        "nodes": [
            {
                "instanceType": n["metadata"]["labels"].get(INSTANCE_TYPE),
                "class": n["metadata"]["labels"].get(CLASS_LABEL),
            }
            for n in nodes
        ],
    }
    with Path(path).open("a") as out:
        out.write(json.dumps(row) + "\n")


def bound_all(fleet: Fleet, names: list[str], timeout: float) -> dict[str, str]:
    """pod -> node once every pod is bound; fails naming those that are not."""
    deadline = time.monotonic() + timeout
    placed: dict[str, str] = {}
    while len(placed) < len(names):
        for name in names:
            if name not in placed and (node := fleet.get_pod(name)["spec"].get("nodeName")):
                placed[name] = node
        missing = [n for n in names if n not in placed]
        assert not missing or time.monotonic() < deadline, (
            f"not bound in {timeout} s: {missing}: {fleet.failed_scheduling(missing[0])}"
        )
        time.sleep(0.1)
    return placed


def classes(nodes: list[dict[str, Any]]) -> list[str]:
    return sorted(n["metadata"]["labels"].get(CLASS_LABEL, "?") for n in nodes)


def test_with_the_webhook_karpenter_provisions_premium_and_the_pod_lands_there(
    fleet: Fleet, pools: Pools, registered: str
) -> None:
    """Case 1: no premium node exists; the mirrored class affinity is what Karpenter reads."""
    pools.per_class()
    started = time.monotonic()
    fleet.pod("chat", 1, workload="interactive", annotations={"required-classes": "premium"})

    node = fleet.bound("chat", timeout=120)

    took = time.monotonic() - started
    (created,) = pools.nodes()
    assert created["metadata"]["name"] == node
    assert created["metadata"]["labels"][CLASS_LABEL] == "premium"
    record(
        "1. interactive pod requiring premium, with the webhook",
        "test_with_the_webhook_karpenter_provisions_premium_and_the_pod_lands_there",
        took,
        [created],
    )


def test_without_the_webhook_karpenter_adds_the_cheapest_node_and_doctor_says_why(
    fleet: Fleet, pools: Pools, capsys: pytest.CaptureFixture[str]
) -> None:
    """Case 2: Karpenter sees only `nvidia.com/gpu: 1` and buys the cheapest GPU (a T4);
    our filter refuses it, and the pod stays Pending next to an idle node."""
    pools.per_class()
    fleet.pod("chat", 1, workload="interactive", annotations={"required-classes": "premium"})

    took = wait_for(lambda: pools.nodes(), 120, "a node from Karpenter")
    fleet.still_pending("chat", 15)

    created = pools.nodes()
    assert classes(created) == ["economy"]
    reason = fleet.failed_scheduling("chat")[-1]
    assert "is below the required tier premium" in reason
    code, report = run(
        capsys,
        "doctor",
        "--kubeconfig",
        str(fleet.kube.kubeconfig),
        "--policy",
        str(EXAMPLE_POLICY),
    )
    assert code == 1
    subject = f"pod/{fleet.namespace}/chat"
    found = {f["code"]: f for f in report["findings"] if f["subject"] == subject}
    assert "scale-up-wrong-class" in found, sorted(found)
    assert f"{fleet.id}-economy" in found["scale-up-wrong-class"]["message"]
    assert "enable the admission webhook" in found["scale-up-wrong-class"]["fix"]
    record(
        "2. the same without the webhook (the pod stays Pending)",
        "test_without_the_webhook_karpenter_adds_the_cheapest_node_and_doctor_says_why",
        took,
        created,
    )


def test_batch_bursts_scale_cheaper_pools_and_interactive_bursts_premium_no_more(
    fleet: Fleet, pools: Pools, registered: str
) -> None:
    """Case 3: six batch pods scale only cheaper pools; ten interactive pods requiring
    premium scale premium by what they fill: no node is left without a pod."""
    pools.per_class()
    batch = [fleet.pod(f"embed-{i}", 1, workload="batch") for i in range(6)]
    started = time.monotonic()
    placed = bound_all(fleet, batch, 120)
    took_batch = time.monotonic() - started
    after_batch = pools.nodes()
    assert set(classes(after_batch)) == {"economy"}
    assert {n["metadata"]["name"] for n in after_batch} == set(placed.values())
    record(
        "3a. six batch pods (1 GPU each)",
        "test_batch_bursts_scale_cheaper_pools_and_interactive_bursts_premium_no_more",
        took_batch,
        after_batch,
    )

    chat = [
        fleet.pod(
            f"chat-{i}", 1, workload="interactive", annotations={"required-classes": "premium"}
        )
        for i in range(10)
    ]
    started = time.monotonic()
    placed = bound_all(fleet, chat, 180)
    took_chat = time.monotonic() - started
    time.sleep(5)  # anything Karpenter still adds would show now
    premium = [n for n in pools.nodes() if n["metadata"]["labels"].get(CLASS_LABEL) == "premium"]
    assert {n["metadata"]["name"] for n in premium} == set(placed.values())
    gpus = sum(int(n["status"]["allocatable"]["nvidia.com/gpu"]) for n in premium)
    largest = 8
    assert gpus - len(chat) < largest, f"{gpus} premium GPUs for {len(chat)} pods"
    record(
        "3b. then ten interactive pods requiring premium",
        "test_batch_bursts_scale_cheaper_pools_and_interactive_bursts_premium_no_more",
        took_chat,
        premium,
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main([*argv, "-o", "json"])
    return code, json.loads(capsys.readouterr().out)
