"""GPU facts without GPU Feature Discovery, through the real kube-scheduler: fleets labelled
as GKE, Karpenter and GFD label them meet the shipped policy's interactive requirement
(`nvidia.com/gpu.memory Gt 20000`), and a fleet nothing sizes gets a doctor finding that
names the missing label."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from localcluster import gfd_labels, gke_labels, karpenter_labels

from tests.integration.cli import doctor, run
from tests.integration.fleet import Fleet
from tests.integration.stack import LocalStack

Labeller = Callable[[str, int], dict[str, str]]
MEMORY = "nvidia.com/gpu.memory"


@pytest.mark.parametrize(
    ("labeller", "source"),
    [
        (gfd_labels, f"label {MEMORY}"),
        (gke_labels, "product name H100-80GB"),
        (karpenter_labels, "label karpenter.k8s.aws/instance-gpu-memory"),
    ],
    ids=["gfd", "gke", "karpenter"],
)
def test_interactive_pods_land_on_premium_however_the_fleet_is_labelled(
    fleet: Fleet,
    local: LocalStack,
    labeller: Labeller,
    source: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    premium = fleet.node("h100", "H100", 8, labeller=labeller)
    economy = fleet.node("t4", "T4", 4, labeller=labeller)
    fleet.await_cached()

    fleet.pod("chat", 1, workload="interactive")

    assert fleet.bound("chat") == premium
    manifest = tmp_path / "chat.json"
    manifest.write_text(json.dumps(fleet.get_pod("chat")))
    nodes = f"{premium},{economy}"
    code, explained = run(
        capsys, "explain", str(manifest), "--nodes", nodes, "--server", local.extender_url
    )
    assert code == 0
    assert explained["gpuAttributes"] == [f"{MEMORY} > 20000"]
    by_node = {n["node"]: n for n in explained["nodes"]}
    assert by_node[premium]["gpuFacts"]["memoryMiB"]["source"] == source
    assert by_node[premium]["gpuFacts"]["memoryMiB"]["value"] > 20000


def test_doctor_names_the_label_an_unsized_fleet_lacks(
    sole_gpu_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """An A100 comes in 40 and 80 GB: with only its product label, nothing says which."""
    fleet = sole_gpu_fleet
    unsized = fleet.node(
        "a100", "A100", 8, labeller=lambda _, __: {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4"}
    )
    fleet.await_cached()
    fleet.pod("chat", 1, workload="interactive")
    reason = fleet.pending_reason("chat")
    assert f"no {MEMORY} known for this node (product A100)" in reason

    code, report = doctor(capsys, fleet)

    assert code == 1
    subject = f"pod/{fleet.namespace}/chat"
    (finding,) = [
        f for f in report["findings"] if f["subject"] == subject and f["area"] == "over-constraint"
    ]
    assert finding["code"] == "attribute-label-missing"
    assert f"({unsized}) have no {MEMORY}" in finding["message"]
    assert finding["fix"].startswith(f"give those nodes {MEMORY}")
    # Following the fix places the pod.
    fleet.label_node(unsized, {MEMORY: "81920"})
    assert fleet.bound("chat", timeout=60) == unsized
