"""Label findings: disagreeing labels, unclassifiable GPU nodes, unmapped products, empty
classes."""

from __future__ import annotations

from tests.builders import PREFIX, example_policy, node_dict, pod_dict
from tests.doctor.builders import codes, findings, inputs


def test_a_class_label_that_disagrees_with_the_hardware_is_reported_with_the_winner() -> None:
    view = inputs(
        example_policy(), [node_dict("t4", "T4", 4, labels={f"{PREFIX}class": "premium"})]
    )
    (found,) = findings(view, "class-label-disagrees")
    assert found["subject"] == "node/t4"
    assert found["severity"] == "warning"
    assert "premium disagrees with economy" in found["message"]
    assert f"set {PREFIX}class=economy" in found["fix"]


def test_product_labels_naming_different_classes_are_reported() -> None:
    node = node_dict(
        "mixed", "H100", 8, labels={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    )
    (found,) = findings(inputs(example_policy(), [node]), "product-labels-disagree")
    assert found["subject"] == "node/mixed"
    assert "(premium)" in found["message"]
    assert "(economy)" in found["message"]
    assert "nvidia.com/gpu.product wins" in found["message"]


def test_a_gpu_node_without_any_class_label_is_an_error() -> None:
    (found,) = findings(
        inputs(example_policy(), [node_dict("bare", None, 2)]), "gpu-node-unclassified"
    )
    assert found["severity"] == "error"
    assert found["subject"] == "node/bare"
    assert "2 GPU(s)" in found["message"]


def test_a_node_without_gpus_or_labels_is_not_a_finding() -> None:
    assert "gpu-node-unclassified" not in codes(
        inputs(example_policy(), [node_dict("cpu", None, 0)])
    )


def test_an_unmapped_product_is_reported_once_with_its_nodes() -> None:
    nodes = [node_dict(f"r{i}", "RTX-4090", 2) for i in range(5)]
    (found,) = findings(inputs(example_policy(), nodes), "unmapped-product")
    assert found["subject"] == "product/RTX-4090"
    assert "on 5 node(s) (r0, r1, r2 and 2 more)" in found["message"]
    assert "add RTX-4090 to the products of a class" in found["fix"]


def test_an_explicit_label_naming_no_class_is_reported() -> None:
    node = node_dict("odd", None, 2, labels={f"{PREFIX}class": "platinum"})
    (found,) = findings(inputs(example_policy(), [node]), "unknown-class-label")
    assert "platinum names no GPU class" in found["message"]


def test_classes_with_no_nodes_are_listed() -> None:
    view = inputs(example_policy(), [node_dict("h", "H100", 8), node_dict("t", "T4", 4)])
    assert [f["subject"] for f in findings(view, "class-without-nodes")] == ["class/standard"]


def test_a_consistent_fleet_has_no_label_findings() -> None:
    nodes = [node_dict("h", "H100", 8), node_dict("a", "A10G", 4), node_dict("t", "T4", 4)]
    found = [f for f in findings(inputs(example_policy(), nodes)) if f["area"] == "labels"]
    assert found == []


def test_other_invalid_node_labels_are_reported_with_the_label() -> None:
    node = node_dict("h", "H100", 8, labels={f"{PREFIX}dedicated": "trainig"})
    (found,) = findings(inputs(example_policy(), [node]), "node-label-invalid")
    assert f"{PREFIX}dedicated=trainig names no workload class" in found["message"]


def test_with_mirrored_pods_a_gpu_node_without_the_class_label_is_reported() -> None:
    labelled = node_dict("a", "H100", 8, labels={f"{PREFIX}class": "premium"})
    unlabelled = node_dict("b", "H100", 8)
    assert "node-without-class-label" not in codes(inputs(example_policy(), [labelled, unlabelled]))
    pod = pod_dict("p", annotations={f"{PREFIX}required-classes": "premium"})
    expression = {"key": f"{PREFIX}class", "operator": "In", "values": ["premium"]}
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [expression]}]
            }
        }
    }
    (found,) = findings(
        inputs(example_policy(), [labelled, unlabelled], [pod]), "node-without-class-label"
    )
    assert found["subject"] == "node/b"
    assert f"label it {PREFIX}class=premium" in found["fix"]
