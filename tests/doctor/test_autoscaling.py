"""Autoscaling: node templates against the classes, and what an autoscaler would create for
a pod our rules leave Pending."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from extender.doctor.templates import (
    ASG_LABEL_TAG,
    CAPI_LABELS_ANNOTATION,
    NodeTemplate,
    load_template_file,
    templates_from_objects,
)
from extender.errors import WireError
from tests.builders import PREFIX, example_policy, node_dict, pod_dict
from tests.doctor.builders import codes, findings, inputs

GPU_NAME = "karpenter.k8s.aws/instance-gpu-name"
ASG_INSTANCE_TYPE = ASG_LABEL_TAG + "node.kubernetes.io/instance-type"


def nodepool(name: str, gpus: list[str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": labels or {}},
                "spec": {
                    "requirements": [
                        {"key": GPU_NAME, "operator": "In", "values": gpus},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                    ]
                },
            }
        },
    }


def pools(*objects: dict[str, Any]) -> list[NodeTemplate]:
    return templates_from_objects(list(objects), "test")


def premium_pod(name: str = "p", affinity_classes: list[str] | None = None) -> dict[str, Any]:
    pod = pod_dict(name, 1, annotations={f"{PREFIX}required-classes": "premium"})
    if affinity_classes is not None:
        expression = {"key": f"{PREFIX}class", "operator": "In", "values": affinity_classes}
        pod["spec"]["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [expression]}]
                }
            }
        }
    return pod


def test_a_nodepool_derives_one_class_per_allowed_gpu() -> None:
    (pool,) = pools(nodepool("mixed", ["h100", "t4"]))
    classes = {c.name for _, c in pool.classes(example_policy())}
    assert classes == {"premium", "economy"}


def test_classes_no_template_can_create_are_reported() -> None:
    view = inputs(example_policy(), [node_dict("h")], templates=pools(nodepool("t4", ["t4"])))
    subjects = [f["subject"] for f in findings(view, "class-not-creatable")]
    assert subjects == ["class/premium", "class/standard"]


def test_a_template_whose_class_label_disagrees_with_its_gpus() -> None:
    # a100 without a memory label is the 40 GB A100: standard, not premium
    pool = nodepool("a100", ["a100"], {f"{PREFIX}class": "premium"})
    (found,) = findings(
        inputs(example_policy(), [], templates=pools(pool)), "template-class-disagrees"
    )
    assert found["subject"] == "NodePool/a100"
    assert "premium disagrees with standard" in found["message"]


def test_a_template_without_the_class_label_cannot_serve_mirrored_pods() -> None:
    view = inputs(example_policy(), [], templates=pools(nodepool("h100", ["h100"])))
    (found,) = findings(view, "template-without-class-label")
    assert "creates premium nodes without the label" in found["message"]


def test_a_pending_pod_whose_affinity_admits_a_wrong_class_template() -> None:
    templates = pools(
        nodepool("t4", ["t4"], {f"{PREFIX}class": "economy"}),
        nodepool("h100", ["h100"], {f"{PREFIX}class": "premium"}),
    )
    view = inputs(example_policy(), [node_dict("t", "T4", 4)], [premium_pod()], templates)
    (found,) = findings(view, "scale-up-wrong-class")
    assert found["subject"] == "pod/ml/p"
    assert "admits NodePool/t4 (economy)" in found["message"]
    assert "no-template-for-pod" not in codes(view)


def test_a_mirrored_pod_only_matches_templates_of_its_classes() -> None:
    templates = pools(
        nodepool("t4", ["t4"], {f"{PREFIX}class": "economy"}),
        nodepool("h100", ["h100"], {f"{PREFIX}class": "premium"}),
    )
    view = inputs(
        example_policy(),
        [node_dict("t", "T4", 4)],
        [premium_pod(affinity_classes=["premium"])],
        templates,
    )
    assert not codes(view) & {"scale-up-wrong-class", "no-template-for-pod"}


def test_a_mirrored_pod_with_no_labelled_template_gets_no_scale_up() -> None:
    # the premium pool lacks the class label, so the mirrored affinity never matches it
    templates = pools(nodepool("h100", ["h100"]))
    view = inputs(
        example_policy(),
        [node_dict("t", "T4", 4)],
        [premium_pod(affinity_classes=["premium"])],
        templates,
    )
    (found,) = findings(view, "no-template-for-pod")
    assert "no node template creates a node that is of class premium" in found["message"]


def test_a_pod_selecting_a_label_only_gfd_sets_is_told_which() -> None:
    # karpenter#1219: GFD labels a node once it has booted, so no template carries them.
    templates = pools(nodepool("h100", ["h100"], {f"{PREFIX}class": "premium"}))
    pod = premium_pod()
    pod["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    view = inputs(example_policy(), [node_dict("t", "T4", 4)], [pod], templates)

    (found,) = findings(view, "no-template-for-pod")

    assert found["message"].endswith(
        "; no template sets nvidia.com/gpu.product (set by NVIDIA GPU Feature Discovery, "
        "once the node has booted)"
    )
    assert found["fix"] == (
        f"select on labels a node carries from birth, such as {PREFIX}class (the admission "
        "webhook mirrors the pod's classes there), not on nvidia.com/gpu.product"
    )


def weighted(pool: dict[str, Any], weight: int) -> dict[str, Any]:
    pool["spec"]["weight"] = weight
    return pool


def test_a_costlier_nodepool_karpenter_tries_first_is_flagged() -> None:
    # Equal weights: Karpenter tries names in reverse order, gpu-premium before gpu-economy.
    premium = nodepool("gpu-premium", ["h100"], {f"{PREFIX}class": "premium"})
    economy = nodepool("gpu-economy", ["t4"], {f"{PREFIX}class": "economy"})
    view = inputs(example_policy(), [node_dict("h")], templates=pools(premium, economy))

    (found,) = findings(view, "costly-nodepool-first")

    assert found["subject"] == "NodePool/gpu-premium"
    assert found["message"].startswith(
        "Karpenter tries it (premium, weight 0) before NodePool/gpu-economy (economy, weight 0)"
    )
    assert (
        "batch pods, which may use either, scale premium while economy could hold them"
        in (found["message"])
    )


def test_nodepools_weighted_cheapest_first_are_not_flagged() -> None:
    premium = nodepool("gpu-premium", ["h100"], {f"{PREFIX}class": "premium"})
    economy = nodepool("gpu-economy", ["t4"], {f"{PREFIX}class": "economy"})
    mixed = nodepool("gpu-mixed", ["h100", "t4"])  # Karpenter picks the cheapest type in it
    templates = pools(weighted(premium, 10), weighted(economy, 30), weighted(mixed, 20))
    view = inputs(example_policy(), [node_dict("h")], templates=templates)

    assert "costly-nodepool-first" not in codes(view)


def test_pods_that_fit_now_are_not_checked_against_templates() -> None:
    templates = pools(nodepool("t4", ["t4"], {f"{PREFIX}class": "economy"}))
    view = inputs(example_policy(), [node_dict("h", "H100")], [premium_pod()], templates)
    assert not codes(view) & {"scale-up-wrong-class", "no-template-for-pod"}


def test_cluster_api_and_aws_node_groups_are_read_from_their_labels(tmp_path: Path) -> None:
    capi = {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "MachineDeployment",
        "metadata": {
            "name": "gpu-a",
            "namespace": "capi",
            "annotations": {
                CAPI_LABELS_ANNOTATION: "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3,pool=gpu"
            },
        },
    }
    asg = {
        "AutoScalingGroups": [
            {
                "AutoScalingGroupName": "t4-group",
                "Tags": [
                    {
                        "Key": ASG_INSTANCE_TYPE,
                        "Value": "g4dn.xlarge",
                    },
                    {"Key": "team", "Value": "ml"},
                ],
            }
        ]
    }
    (tmp_path / "capi.yaml").write_text(yaml.safe_dump(capi))
    (tmp_path / "asg.json").write_text(json.dumps(asg))
    (md,) = load_template_file(tmp_path / "capi.yaml")
    (group,) = load_template_file(tmp_path / "asg.json")
    assert md.subject == "MachineDeployment/capi/gpu-a"
    assert [c.name for _, c in md.classes(example_policy())] == ["premium"]
    assert group.labels == {"node.kubernetes.io/instance-type": "g4dn.xlarge"}
    assert [c.name for _, c in group.classes(example_policy())] == ["economy"]


def test_a_file_without_templates_is_refused_with_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "pods.yaml"
    path.write_text(yaml.safe_dump({"kind": "Pod", "metadata": {"name": "x"}}))
    with pytest.raises(WireError, match="no Karpenter NodePool, Cluster API"):
        load_template_file(path)


def test_no_templates_is_said_once_as_info() -> None:
    (found,) = findings(inputs(example_policy(), [node_dict("h")]), "no-node-templates")
    assert found["severity"] == "info"


def test_a_template_of_a_product_no_class_maps() -> None:
    view = inputs(example_policy(), [], templates=pools(nodepool("rtx", ["rtx-4090"])))
    (found,) = findings(view, "template-unclassified")
    assert found["subject"] == "NodePool/rtx"
    assert "RTX-4090" in found["message"]
