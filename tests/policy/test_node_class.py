"""A node's GPU class: explicit label, product labels, instance type, and their conflicts."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from extender.policy import ClassName, NodeClass, Policy, classify_node, load_policy_text
from tests.builders import example_policy

CLASS = "gpuclass.example.io/class"
GFD = "nvidia.com/gpu.product"
MEMORY = "nvidia.com/gpu.memory"
GKE = "cloud.google.com/gke-accelerator"
KARPENTER = "karpenter.k8s.aws/instance-gpu-name"
INSTANCE = "node.kubernetes.io/instance-type"


def load(doc: dict[str, Any]) -> Policy:
    return load_policy_text(yaml.safe_dump(doc))


@pytest.mark.parametrize(
    ("labels", "name", "product", "source"),
    [
        ({GFD: "NVIDIA-H100-80GB-HBM3"}, "premium", "H100-80GB", GFD),
        ({GFD: "NVIDIA-A100-SXM4-80GB"}, "premium", "A100-80GB", GFD),
        ({GFD: "NVIDIA-A100-SXM4-40GB"}, "standard", "A100-40GB", GFD),
        ({GFD: "NVIDIA-A100-SXM4", MEMORY: "81920"}, "premium", "A100-80GB", GFD),
        ({GFD: "NVIDIA-A100-PCIE", MEMORY: "40960"}, "standard", "A100-40GB", GFD),
        ({GFD: "Tesla-T4", MEMORY: "15360"}, "economy", "T4-15GB", GFD),
        ({GKE: "nvidia-tesla-t4"}, "economy", "T4", GKE),
        ({GKE: "nvidia-a100-80gb"}, "premium", "A100-80GB", GKE),
        ({KARPENTER: "a10g"}, "standard", "A10G", KARPENTER),
        ({GFD: "NVIDIA-L4", GKE: "nvidia-tesla-t4"}, "standard", "L4", GFD),
        ({INSTANCE: "p4de.24xlarge"}, "premium", "A100-80GB", INSTANCE),
        ({INSTANCE: "g4dn.xlarge"}, "economy", "T4", INSTANCE),
        ({INSTANCE: "g4dn.xlarge", KARPENTER: "a10g"}, "standard", "A10G", KARPENTER),
        ({CLASS: "standard"}, "standard", None, "explicit"),
        ({CLASS: "economy", GFD: "Tesla-T4"}, "economy", "T4", "explicit"),
    ],
    ids=[
        "gfd-h100",
        "gfd-a100-80gb-is-premium",
        "gfd-a100-40gb-is-standard",
        "memory-label-makes-a100-80gb",
        "memory-label-makes-a100-40gb",
        "gfd-t4",
        "gke-t4",
        "gke-a100-80gb",
        "karpenter-a10g",
        "first-product-label-wins",
        "instance-type-fallback",
        "instance-type-t4",
        "product-label-beats-instance-type",
        "explicit-label-only",
        "explicit-label-agrees",
    ],
)
def test_a_node_is_classified_from_the_labels_real_clusters_carry(
    labels: dict[str, str], name: str, product: str | None, source: str
) -> None:
    node_class = classify_node(labels, example_policy())

    assert (node_class.name, node_class.product, node_class.source) == (name, product, source)
    assert node_class.rank == example_policy().rank(ClassName(name))
    assert node_class.finding is None


@pytest.mark.parametrize(
    "labels",
    [{}, {INSTANCE: "m5.large"}, {"kubernetes.io/hostname": "cpu-1"}],
    ids=["no-labels", "unknown-instance-type", "cpu-node"],
)
def test_a_node_without_gpu_labels_is_unclassified_without_a_finding(
    labels: dict[str, str],
) -> None:
    assert classify_node(labels, example_policy()) == NodeClass(None, None, None, "none")


def test_an_unmapped_product_is_unclassified_with_a_finding() -> None:
    node_class = classify_node({GFD: "NVIDIA-RTX-6000"}, example_policy())

    assert node_class.name is None
    assert node_class.product == "RTX-6000"
    assert node_class.finding == (
        "GPU product RTX-6000 (from nvidia.com/gpu.product) matches no class's products"
    )


def test_an_explicit_label_naming_no_class_is_ignored_with_a_finding() -> None:
    node_class = classify_node({CLASS: "gold", GFD: "Tesla-T4"}, example_policy())

    assert (node_class.name, node_class.source) == ("economy", GFD)
    assert node_class.finding is not None
    assert "gold names no GPU class (known: premium, standard, economy)" in node_class.finding


@pytest.mark.parametrize(
    ("on_conflict", "winner", "source"),
    [("derived", "economy", GFD), ("explicit", "premium", "explicit")],
    ids=["derived-wins", "explicit-wins"],
)
def test_an_explicit_label_that_disagrees_is_settled_by_on_conflict_and_reported(
    example_doc: dict[str, Any], on_conflict: str, winner: str, source: str
) -> None:
    example_doc["nodeClassification"]["onConflict"] = on_conflict
    policy = load(example_doc)

    node_class = classify_node({CLASS: "premium", GFD: "Tesla-T4"}, policy)

    assert (node_class.name, node_class.source) == (winner, source)
    assert node_class.rank == policy.rank(ClassName(winner))
    assert node_class.finding == (
        f"label {CLASS}=premium disagrees with economy derived from {GFD}=T4; "
        f"{winner} wins (onConflict: {on_conflict})"
    )


def test_the_most_specific_product_pattern_wins_over_tier_order(
    minimal_doc: dict[str, Any],
) -> None:
    # A higher tier claims every A100; a lower tier claims the 40 GB ones specifically.
    minimal_doc["gpuClasses"] = [
        {"name": "fast", "products": ["A100", "H100"]},
        {"name": "slow", "products": ["A100-40GB", "T4"]},
    ]
    policy = load(minimal_doc)

    assert classify_node({GFD: "NVIDIA-A100-SXM4-40GB"}, policy).name == "slow"
    assert classify_node({GFD: "NVIDIA-A100-SXM4-80GB"}, policy).name == "fast"
    assert classify_node({GFD: "NVIDIA-A100-SXM4"}, policy).name == "fast"


def test_an_alias_maps_a_product_name_onto_a_listed_one(example_doc: dict[str, Any]) -> None:
    example_doc["nodeClassification"]["aliases"] = {"NVIDIA-GH200-480GB": "H200"}
    policy = load(example_doc)

    node_class = classify_node({GFD: "NVIDIA-GH200-480GB"}, policy)

    assert (node_class.name, node_class.product) == ("premium", "H200")


def test_a_custom_class_label_and_product_label_are_read(example_doc: dict[str, Any]) -> None:
    example_doc["nodeClassification"]["classLabel"] = "acme.org/gpu-tier"
    example_doc["nodeClassification"]["productLabels"] = ["acme.org/gpu"]
    policy = load(example_doc)

    assert classify_node({"acme.org/gpu": "t4"}, policy).name == "economy"
    assert classify_node({GFD: "Tesla-T4"}, policy).name is None
    assert classify_node({"acme.org/gpu-tier": "standard"}, policy).source == "explicit"
