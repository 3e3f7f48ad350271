"""`doctor` and live `explain` against the real control plane: each situation is built
through the API, and the command (and the server's /debug/doctor) must report it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import localcluster  # hack/, on pytest's pythonpath
import orjson
import pytest
import yaml
from controlplane.karpenter import NODEPOOLS, build_karpenter, install_crds, node_pool

from extender.doctor.templates import ASG_LABEL_TAG
from tests.integration.cli import run
from tests.integration.fleet import FLEET_LABEL, PREFIX, Fleet
from tests.integration.stack import EXAMPLE_POLICY, LocalStack

CLASS = f"{PREFIX}class"
GPU_NAME = "karpenter.k8s.aws/instance-gpu-name"
ASG_INSTANCE_TYPE = ASG_LABEL_TAG + "node.kubernetes.io/instance-type"


def found(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["code"], f["subject"]) for f in report["findings"]}


def finding(report: dict[str, Any], code: str, subject: str) -> dict[str, str]:
    matches = [f for f in report["findings"] if (f["code"], f["subject"]) == (code, subject)]
    assert matches, f"no {code} on {subject}; got {sorted(found(report))}"
    return dict(matches[0])


def policy_file(tmp_path: Path, **changes: Any) -> Path:
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    doc["gpuClasses"].append({"name": "ultra", "products": ["GB200"]})
    doc["workloadClasses"].update(changes.pop("workloads", {}))
    doc.update(changes)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_label_and_policy_findings_on_a_live_fleet(
    sole_gpu_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = sole_gpu_fleet
    fleet.node("h", "H100", 8)
    fleet.node("t4-says-premium", "T4", 4, labels={CLASS: "premium"})
    fleet.node("bare", None, 2)
    fleet.node("rtx", None, 2, labels={"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-4090"})
    fleet.node("mixed", "H100", 8, labels={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"})
    fleet.node("odd", None, 2, labels={CLASS: "platinum"})
    fleet.node("typo", "H100", 8, labels={f"{PREFIX}dedicated": "trainig"})
    fleet.node("t4-for-interactive", "T4", 4, labels={f"{PREFIX}dedicated": "interactive"})
    policy = policy_file(
        tmp_path,
        headroom=[
            {"class": "premium", "reserve": 0.04, "for": ["interactive"], "mode": "hard"},
            {"class": "standard", "reserve": 0.2, "for": ["interactive"]},
            {"class": "economy", "reserve": 0.5, "for": ["interactive"]},
        ],
        dedicated={"classes": [{"class": "economy", "workload": "training"}]},
        workloads={"training": {"requiredClasses": ["premium"]}},
    )
    kubeconfig = str(fleet.kube.kubeconfig)
    code, report = run(capsys, "doctor", "--kubeconfig", kubeconfig, "--policy", str(policy))
    assert code == 1  # errors present: a pipeline can gate on the exit status
    node = f"node/{fleet.id}-"
    assert "economy" in finding(report, "class-label-disagrees", node + "t4-says-premium")["fix"]
    assert finding(report, "gpu-node-unclassified", node + "bare")["severity"] == "error"
    unmapped = finding(report, "unmapped-product", "product/RTX-4090")
    assert f"{fleet.id}-rtx" in unmapped["message"]
    assert (
        "nvidia.com/gpu.product wins"
        in finding(report, "product-labels-disagree", node + "mixed")["message"]
    )
    assert "GB200" in finding(report, "class-without-nodes", "class/ultra")["fix"]
    assert (
        "platinum names no GPU class"
        in finding(report, "unknown-class-label", node + "odd")["message"]
    )
    assert "trainig" in finding(report, "node-label-invalid", node + "typo")["message"]
    below = finding(report, "headroom-below-one-gpu", "headroom/premium")["message"]
    assert "4% of 24 premium GPUs is 0.96 GPU" in below  # h, typo and mixed: 24 GPUs
    assert (
        finding(report, "headroom-without-capacity", "headroom/standard")["severity"] == "warning"
    )
    nobody = finding(report, "headroom-for-nobody", "headroom/economy")["message"]
    assert "interactive, which may not use economy" in nobody
    unusable = finding(report, "dedicated-class-unusable", "class/economy")
    assert "dedicated (hard) to training" in unusable["message"]
    assert finding(report, "dedicated-node-unusable", node + "t4-for-interactive")
    assert finding(report, "no-node-templates", "cluster")["severity"] == "info"
    summary = report["summary"]
    assert summary["nodesPerClass"]["premium"] == 3  # h, typo and mixed (its GFD label wins)


def test_pending_pods_our_rules_block_are_explained_with_what_would_admit_them(
    sole_gpu_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = sole_gpu_fleet
    fleet.node("h", "H100", 8)
    fleet.node("t", "T4", 4)
    fleet.await_cached()
    # Batch takes all of premium but its 2-GPU reserve; then interactive eats into it.
    fleet.pod("batch-on-premium", 6, workload="batch", annotations={"required-classes": "premium"})
    fleet.bound("batch-on-premium")
    fleet.pod("needs-standard", 2, annotations={"required-classes": "standard"})
    fleet.pod(
        "contradicts", 1, annotations={"required-classes": "premium", "excluded-classes": "premium"}
    )
    fleet.pod("too-big", 16, workload="interactive")
    fleet.pod("fits", 1, workload="interactive")
    fleet.bound("fits")
    for name in ("needs-standard", "contradicts", "too-big"):
        fleet.pending_reason(name)
    # The policy from a ConfigMap, as `doctor` reads it in-cluster by default.
    fleet.kube.request(
        "POST",
        f"/api/v1/namespaces/{fleet.namespace}/configmaps",
        {"metadata": {"name": "policy"}, "data": {"policy.yaml": EXAMPLE_POLICY.read_text()}},
    )
    code, report = run(
        capsys,
        "doctor",
        "--kubeconfig",
        str(fleet.kube.kubeconfig),
        "--policy-configmap",
        f"{fleet.namespace}/policy:policy.yaml",
    )
    assert code == 1
    pod = f"pod/{fleet.namespace}/"
    blocked = finding(report, "no-eligible-node", pod + "needs-standard")
    assert "0/2 nodes: 2 wrong GPU class (need standard)" in blocked["message"]
    assert "add a node of class standard" in blocked["fix"]
    assert f"{PREFIX}required-classes=premium,standard" in blocked["fix"]
    contradiction = finding(report, "contradictory-wishes", pod + "contradicts")
    assert "requires premium but excludes premium" in contradiction["message"]
    big = finding(report, "no-eligible-node-with-room", pod + "too-big")
    assert "no node of an allowed class has 16 GPUs (the largest has 8)" in big["fix"]
    assert not {c for c, s in found(report) if s == pod + "fits"}
    unmet = finding(report, "headroom-unmet-now", "headroom/premium")
    assert (
        "1 of 8 premium GPUs are free, below the 2 reserve; other workloads hold 6"
        in unmet["message"]
    )
    small = finding(report, "headroom-smaller-than-pods", "headroom/premium")
    assert "interactive pods here ask up to 16 GPUs" in small["message"]


@pytest.fixture
def nodepools(fleet: Fleet) -> Iterator[list[str]]:
    """Karpenter's CRDs, of the version `make karpenter` builds; NodePools made through the
    returned list are deleted after the test (Karpenter itself does not run here)."""
    install_crds(fleet.kube, build_karpenter())
    created: list[str] = []
    yield created
    for name in created:
        fleet.kube.request("DELETE", f"{NODEPOOLS}/{name}")


def make_nodepool(
    fleet: Fleet, created: list[str], name: str, gpus: list[str], labels: dict[str, str]
) -> str:
    full = f"{fleet.id}-{name}"
    # The fleet's pods select their fleet: its templates carry the label too.
    body = node_pool(full, None, {FLEET_LABEL: fleet.id, **labels}, gpu_names=gpus)
    fleet.kube.request("POST", NODEPOOLS, body)
    created.append(full)
    return f"NodePool/{full}"


def test_nodepools_and_node_group_files_are_checked_against_classes_and_pending_pods(
    fleet: Fleet,
    nodepools: list[str],
    local: LocalStack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet.node("h", "H100", 8)
    fleet.await_cached()
    t4 = make_nodepool(fleet, nodepools, "t4", ["t4"], {CLASS: "economy"})
    a100 = make_nodepool(fleet, nodepools, "a100", ["a100"], {CLASS: "premium"})
    h100 = make_nodepool(fleet, nodepools, "h100", ["h100"], {})
    rtx = make_nodepool(fleet, nodepools, "rtx", ["rtx-4090"], {})
    fleet.pod("big", 16, annotations={"required-classes": "premium"})
    fleet.pending_reason("big")
    # As the admission webhook stores it: the class mirrored into required node affinity.
    mirrored = fleet.kube.request("GET", f"/api/v1/namespaces/{fleet.namespace}/pods/big")
    mirrored["metadata"] = {
        "name": "big-mirrored",
        "annotations": mirrored["metadata"]["annotations"],
    }
    mirrored["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": CLASS, "operator": "In", "values": ["premium"]}]}
                ]
            }
        }
    }
    mirrored.pop("status", None)
    fleet.kube.request("POST", f"/api/v1/namespaces/{fleet.namespace}/pods", mirrored)
    fleet.pods.append("big-mirrored")
    fleet.pending_reason("big-mirrored")
    asg = {
        "AutoScalingGroups": [
            {
                "AutoScalingGroupName": f"{fleet.id}-g5",
                "Tags": [
                    {
                        "Key": ASG_INSTANCE_TYPE,
                        "Value": "g5.xlarge",
                    }
                ],
            }
        ]
    }
    groups = tmp_path / "asg.json"
    groups.write_text(json.dumps(asg))
    argv = [
        "doctor",
        "--kubeconfig",
        str(fleet.kube.kubeconfig),
        "--policy",
        str(policy_file(tmp_path)),
    ]
    _, report = run(capsys, *argv, "--templates", str(groups))
    disagree = finding(report, "template-class-disagrees", a100)
    assert "premium disagrees with standard" in disagree["message"]
    assert CLASS in finding(report, "template-without-class-label", h100)["fix"]
    assert finding(report, "class-not-creatable", "class/ultra")["severity"] == "warning"
    assert ("class-not-creatable", "class/standard") not in found(report)  # a100 pool, g5 group
    wrong = finding(report, "scale-up-wrong-class", f"pod/{fleet.namespace}/big")["message"]
    assert f"{t4} (economy)" in wrong
    assert f"{a100} (standard)" in wrong
    assert h100 not in wrong
    assert "RTX-4090" in finding(report, "template-unclassified", rtx)["message"]
    # Mirrored, the pod matches only templates that carry the class label: none is premium.
    unserved = finding(report, "no-template-for-pod", f"pod/{fleet.namespace}/big-mirrored")
    assert "of class premium" in unserved["message"]
    # The mislabelled a100 pool still matches it: the autoscaler would create a standard node.
    misled = finding(report, "scale-up-wrong-class", f"pod/{fleet.namespace}/big-mirrored")
    assert f"admits {a100} (standard):" in misled["message"]
    # ... and the scheduler keeps it off the unlabelled premium node.
    assert (
        "premium node lacks the label"
        in finding(report, "node-without-class-label", f"node/{fleet.id}-h")["message"]
    )

    # The server's read-only endpoint lists the same cluster with the same checks.
    status, body = local.get("/debug/doctor")
    assert status == 200
    served = orjson.loads(body)
    assert ("template-class-disagrees", a100) in found(served)
    assert ("scale-up-wrong-class", f"pod/{fleet.namespace}/big") in found(served)


def test_live_explain_by_name_and_by_manifest_matches_the_server(
    fleet: Fleet, local: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.node("h", "H100", 8)
    fleet.node("l", "L40S", 4)
    fleet.node("t", "T4", 4)
    fleet.await_cached()
    fleet.pod(
        "needs-standard", 1, annotations={"required-classes": "economy", "min-class": "standard"}
    )
    fleet.pending_reason("needs-standard")
    kubeconfig = ["--kubeconfig", str(fleet.kube.kubeconfig), "--policy", str(EXAMPLE_POLICY)]
    nodes = ",".join(fleet.nodes)

    code, by_name = run(
        capsys, "explain", f"{fleet.namespace}/needs-standard", "--nodes", nodes, *kubeconfig
    )
    assert code == 0
    assert by_name["conflicts"]
    assert all(not n["passed"] for n in by_name["nodes"])

    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "infer",
                    "namespace": fleet.namespace,
                    "labels": {f"{PREFIX}workload": "interactive"},
                },
                "spec": {
                    "containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]
                },
            }
        )
    )
    code, live = run(capsys, "explain", str(manifest), "--nodes", nodes, *kubeconfig)
    assert code == 0
    ranked = [n["node"] for n in live["nodes"]]
    assert ranked[0] == f"{fleet.id}-h"  # premium first for interactive
    assert [n["passed"] for n in live["nodes"]] == [True, True, False]
    assert live["nodes"][2]["rule"] == "class_required"
    code, served = run(
        capsys, "explain", str(manifest), "--nodes", nodes, "--server", local.extender_url
    )
    assert code == 0
    assert served["nodes"] == live["nodes"]


def test_an_identity_that_may_not_list_nodepools_gets_a_finding_not_a_failure(
    fleet: Fleet,
    nodepools: list[str],
    local: LocalStack,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kube, ns = fleet.kube, fleet.namespace
    name = f"doctor-viewer-{fleet.id}"
    kube.request(
        "POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "viewer"}}
    )
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    rules = [{"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list"]}]
    kube.request("POST", f"{rbac}/clusterroles", {"metadata": {"name": name}, "rules": rules})
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": ns}],
    }
    kube.request("POST", f"{rbac}/clusterrolebindings", binding)
    try:
        token = kube.request(
            "POST",
            f"/api/v1/namespaces/{ns}/serviceaccounts/viewer/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )["status"]["token"]
        kubeconfig = tmp_path / "viewer.kubeconfig"
        cluster = local.cluster
        localcluster.write_kubeconfig(
            kubeconfig, cluster.server_url, cluster.ca_file, token, "viewer"
        )
        argv = ["doctor", "--kubeconfig", str(kubeconfig), "--policy", str(EXAMPLE_POLICY)]
        _, report = run(capsys, *argv)
        unreadable = finding(report, "templates-unreadable", "nodepools.karpenter.sh")
        assert "403" in unreadable["message"]
        assert "grant list on nodepools.karpenter.sh" in unreadable["fix"]
    finally:
        kube.request("DELETE", f"{rbac}/clusterrolebindings/{name}")
        kube.request("DELETE", f"{rbac}/clusterroles/{name}")
