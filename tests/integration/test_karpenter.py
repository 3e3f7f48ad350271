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

from tests.integration.cli import doctor, findings_on
from tests.integration.fleet import FLEET_LABEL, PREFIX, Fleet, wait_for
from tests.integration.stack import LocalStack

CLASS_LABEL = f"{PREFIX}class"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
TERMS = "nodeSelectorTerms"
INITIALIZED = "karpenter.sh/initialized"
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
        instance_types: list[str] | None,
        labels: dict[str, str],
        weight: int | None = None,
        consolidate_after: str = "Never",
        gpu_names: list[str] | None = None,
    ) -> str:
        full = f"{self.fleet.id}-{name}"
        labels = {FLEET_LABEL: self.fleet.id, **labels}
        pool = node_pool(
            full, instance_types, labels, weight, consolidate_after=consolidate_after,
            gpu_names=gpu_names,
        )  # fmt: skip
        self.kube.request("POST", NODEPOOLS, pool)
        self.names.append(full)
        return full

    def per_class(self, consolidate_after: str = "Never") -> None:
        for name, (types, weight) in POOLS.items():
            self.add(name, types, {CLASS_LABEL: name}, weight, consolidate_after)

    def _orphans_deleted(self) -> bool:
        claimed = {
            c["status"].get("nodeName")
            for c in self.kube.request("GET", NODECLAIMS)["items"]
            if c.get("status")
        }
        nodes = self.nodes()
        for node in nodes:
            name = node["metadata"]["name"]
            if name not in claimed:
                self.kube.request("DELETE", f"/api/v1/nodes/{name}", ok=(200, 202, 404))
        return not nodes

    def template_labels(self, name: str) -> dict[str, str]:
        pool = self.kube.request("GET", f"{NODEPOOLS}/{name}")
        return dict(pool["spec"]["template"]["metadata"]["labels"])

    def nodes(self) -> list[dict[str, Any]]:
        selector = f"{FLEET_LABEL}={self.fleet.id}"
        return list(self.kube.request("GET", f"/api/v1/nodes?labelSelector={selector}")["items"])

    def cleanup(self) -> None:
        """The fleet's workloads first (nothing left to provision for), then Karpenter's
        nodes through their NodeClaims, then the pools (a NodeClaim whose pool is gone
        cannot finish registering, nor be deleted)."""
        ns = f"namespaces/{self.fleet.namespace}"
        for path in (f"/apis/apps/v1/{ns}/deployments", f"/apis/apps/v1/{ns}/replicasets"):
            self.kube.request("DELETE", path, ok=(200, 404))
        self.kube.request("DELETE", f"/api/v1/{ns}/pods?gracePeriodSeconds=0", ok=(200, 404))
        for name in self.names:
            claims = self.kube.request("GET", f"{NODECLAIMS}?labelSelector={NODEPOOL_LABEL}={name}")
            for claim in claims["items"]:
                self.kube.request(
                    "DELETE", f"{NODECLAIMS}/{claim['metadata']['name']}", ok=(200, 202, 404)
                )
        # A NodeClaim deleted before its node registered leaves the node behind (the KWOK
        # provider writes it later): such orphans are deleted here, as a cloud's GC would.
        wait_for(self._orphans_deleted, 60, "Karpenter's nodes gone")
        for name in self.names:
            self.kube.request("DELETE", f"{NODEPOOLS}/{name}", ok=(200, 202, 404))


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
    labels = created["metadata"]["labels"]
    assert labels[CLASS_LABEL] == "premium"
    # The mirrored affinity reads only labels the NodePool gives its nodes from birth...
    (term,) = fleet.get_pod("chat")["spec"]["affinity"]["nodeAffinity"][REQUIRED][TERMS]
    template = pools.template_labels(f"{fleet.id}-premium")
    assert {e["key"] for e in term["matchExpressions"]} <= set(template)
    # ...and the interactive memory requirement was read from Karpenter's label, GFD's
    # not being there yet.
    assert "nvidia.com/gpu.memory" not in labels
    assert labels["karpenter.k8s.aws/instance-gpu-memory"] == "81920"
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
    assert "GPU class economy (T4-16GB) is below the required tier premium" in reason
    code, report = doctor(capsys, fleet)
    assert code == 1
    subject = f"pod/{fleet.namespace}/chat"
    found = findings_on(report, subject)
    assert "scale-up-wrong-class" in found, sorted(found)
    assert f"{fleet.id}-economy" in found["scale-up-wrong-class"]["message"]
    assert "enable the admission webhook" in found["scale-up-wrong-class"]["fix"]
    record(
        "2. the same without the webhook (the pod stays Pending)",
        "test_without_the_webhook_karpenter_adds_the_cheapest_node_and_doctor_says_why",
        took,
        created,
    )


def test_a_selector_on_labels_only_gfd_sets_blocks_scale_up_and_doctor_names_it(
    fleet: Fleet, pools: Pools, capsys: pytest.CaptureFixture[str]
) -> None:
    """Case 4 (karpenter#1219): GFD labels appear once a node has booted, so no NodePool
    carries them and Karpenter provisions nothing for a pod selecting one. The webhook's
    mirror reads the class label only (case 1); doctor flags such a pod."""
    pools.per_class()
    gfd = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    fleet.pod("chat", 1, workload="interactive", node_selector=gfd)

    fleet.still_pending("chat", 15)

    assert pools.nodes() == []
    code, report = doctor(capsys, fleet)
    assert code == 0  # a warning: the pod's own selector is what keeps it Pending
    subject = f"pod/{fleet.namespace}/chat"
    found = findings_on(report, subject)
    assert (
        "no template sets nvidia.com/gpu.product (set by NVIDIA GPU Feature Discovery"
        in (found["no-template-for-pod"]["message"])
    )
    assert f"such as {CLASS_LABEL}" in found["no-template-for-pod"]["fix"]
    record(
        "4. a pod selecting a GFD label (nvidia.com/gpu.product), 15 s",
        "test_a_selector_on_labels_only_gfd_sets_blocks_scale_up_and_doctor_names_it",
        None,
        [],
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


def test_equal_weights_let_batch_scale_premium_and_doctor_says_so(
    fleet: Fleet, pools: Pools, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pitfall behind case 3: with equal weights Karpenter tries NodePools by name in
    reverse, and here the premium pool's name sorts first; a batch pod, which may use any
    class, then scales premium. Doctor names the pool and the fix (weights)."""
    for prefix, name in (("a", "economy"), ("b", "standard"), ("c", "premium")):
        pools.add(f"{prefix}-{name}", POOLS[name][0], {CLASS_LABEL: name})
    fleet.pod("embed", 1, workload="batch")

    took = wait_for(lambda: pools.nodes(), 120, "a node from Karpenter")
    wait_for(
        lambda: all(INITIALIZED in n["metadata"]["labels"] for n in pools.nodes()), 60, INITIALIZED
    )

    created = pools.nodes()
    assert classes(created) == ["premium"]
    _, report = doctor(capsys, fleet)
    subject = f"NodePool/{fleet.id}-c-premium"
    (found,) = findings_on(report, subject).values()
    assert found["code"] == "costly-nodepool-first"
    assert "batch" in found["message"]
    record(
        "3c. one batch pod, NodePools of equal weight (premium's name sorts first)",
        "test_equal_weights_let_batch_scale_premium_and_doctor_says_so",
        took,
        created,
    )


def test_a_mixed_nodepool_serves_batch_and_mirrored_pods_pass_it_by(
    fleet: Fleet, pools: Pools, registered: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A NodePool of every GPU model (selected by Karpenter's GPU label) can carry no class
    label. Weighted first, it scales its cheapest type for a batch pod; a pod whose classes
    the webhook mirrors passes it by for the premium pool. Doctor says why."""
    pools.per_class()
    mixed = pools.add("mixed", None, {}, weight=100, gpu_names=["h100", "l4", "t4"])
    fleet.pod("embed", 1, workload="batch")
    embed_node = fleet.bound("embed", timeout=120)
    fleet.pod("chat", 1, workload="interactive", annotations={"required-classes": "premium"})
    chat_node = fleet.bound("chat", timeout=120)

    pool_of = {
        n["metadata"]["name"]: n["metadata"]["labels"][NODEPOOL_LABEL] for n in pools.nodes()
    }
    assert pool_of[embed_node] == mixed
    assert pool_of[chat_node] == f"{fleet.id}-premium"
    nodes = {n["metadata"]["name"]: n for n in pools.nodes()}
    assert nodes[embed_node]["metadata"]["labels"][INSTANCE_TYPE] == "g4dn.xlarge"
    _, report = doctor(capsys, fleet)
    assert "template-without-class-label" in findings_on(report, f"NodePool/{mixed}")
    record(
        "6. a mixed NodePool weighted first: a batch pod, then a premium pod",
        "test_a_mixed_nodepool_serves_batch_and_mirrored_pods_pass_it_by",
        None,
        list(nodes.values()),
    )


@pytest.fixture(scope="module")
def controller_manager(autoscaler: Autoscaler, stack: Any) -> Iterator[None]:
    """Deployments and ReplicaSets recreate the pods Karpenter evicts."""
    assert isinstance(stack, LocalStack)
    stack.cluster.start_controller_manager()
    try:
        yield
    finally:
        stack.cluster.stop_controller_manager()


def deployment(
    fleet: Fleet, name: str, replicas: int, workload: str, annotations: dict[str, str] | None = None
) -> None:
    template = fleet.pod_template(1, workload, annotations)
    template["metadata"]["labels"]["app"] = name
    template["spec"]["terminationGracePeriodSeconds"] = 0
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        },
    }
    fleet.kube.request("POST", f"/apis/apps/v1/namespaces/{fleet.namespace}/deployments", manifest)


def scale(fleet: Fleet, name: str, replicas: int) -> None:
    fleet.kube.request(
        "PATCH",
        f"/apis/apps/v1/namespaces/{fleet.namespace}/deployments/{name}",
        {"spec": {"replicas": replicas}},
        "application/merge-patch+json",
    )


def live_pods(fleet: Fleet, app: str) -> dict[str, str | None]:
    """The app's pods that are not being deleted -> their nodes (None: not bound)."""
    pods = fleet.kube.request(
        "GET", f"/api/v1/namespaces/{fleet.namespace}/pods?labelSelector=app={app}"
    )["items"]
    return {
        p["metadata"]["name"]: p["spec"].get("nodeName")
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    }


def premium_nodes(pools: Pools) -> set[str]:
    return {
        n["metadata"]["name"]
        for n in pools.nodes()
        if n["metadata"]["labels"].get(CLASS_LABEL) == "premium"
    }


def keep_on_scale_down(fleet: Fleet, pods: list[str]) -> None:
    """A ReplicaSet scaling down deletes the pods of lowest deletion cost first."""
    for name in pods:
        fleet.kube.request(
            "PATCH",
            f"/api/v1/namespaces/{fleet.namespace}/pods/{name}",
            {"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "100"}}},
            "application/merge-patch+json",
        )


def test_pods_displaced_by_consolidation_are_placed_again_by_our_rules(
    fleet: Fleet, pools: Pools, registered: str, controller_manager: None
) -> None:
    """Case 5: ten interactive replicas scale premium; scaled down to three, they leave two
    premium nodes underused; Karpenter consolidates them into one, and every replica it
    displaces is recreated and placed on premium again (none on the economy node)."""
    pools.per_class(consolidate_after="0s")
    deployment(fleet, "embed", 2, "batch")
    wait_for(lambda: len([n for n in live_pods(fleet, "embed").values() if n]) == 2, 60, "embed")
    deployment(fleet, "chat", 10, "interactive", {"required-classes": "premium"})
    wait_for(lambda: len([n for n in live_pods(fleet, "chat").values() if n]) == 10, 180, "chat")
    before = premium_nodes(pools)
    assert len(before) == 2
    # Three replicas stay, two on one premium node and one on the other: both nodes keep
    # pods, so consolidating them must move some (scaling down alone empties no node).
    by_node: dict[str, list[str]] = {}
    for pod, node in live_pods(fleet, "chat").items():
        by_node.setdefault(str(node), []).append(pod)
    fuller, emptier = sorted(by_node, key=lambda n: -len(by_node[n]))[:2]
    kept = by_node[fuller][:2] + by_node[emptier][:1]
    keep_on_scale_down(fleet, kept)

    scale(fleet, "chat", 3)
    started = time.monotonic()

    def consolidated() -> bool:
        now = premium_nodes(pools)
        chat = live_pods(fleet, "chat")
        return len(now) < len(before) and len(chat) == 3 and set(chat.values()) <= now

    wait_for(consolidated, 240, "Karpenter's consolidation and the replicas placed again")
    took = time.monotonic() - started
    nodes = {n["metadata"]["name"]: n for n in pools.nodes()}
    of_class = {name: n["metadata"]["labels"].get(CLASS_LABEL) for name, n in nodes.items()}
    chat = live_pods(fleet, "chat")
    assert set(chat) - set(kept), "consolidation moved no replica"
    assert [of_class[str(n)] for n in chat.values()] == ["premium"] * 3

    # Batch may use any class (idle premium too): its replicas only have to be placed
    # again, which takes a moment when the same consolidation moved them.
    def embed_placed() -> bool:
        embed = live_pods(fleet, "embed")
        return len(embed) == 2 and all(embed.values())

    wait_for(embed_placed, 60, "the batch replicas placed again")
    record(
        "5. ten premium replicas scaled to three: consolidation (nodes left)",
        "test_pods_displaced_by_consolidation_are_placed_again_by_our_rules",
        took,
        list(nodes.values()),
    )
