"""GPU memory and count from the best source a node carries: GFD, Karpenter, GKE, catalogue."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from extender.policy import load_policy_text
from extender.policy.compiled import Policy
from extender.policy.gpu_facts import GpuFact, attribute_labels, gpu_facts, label_origin
from extender.state import NodeFeatures, node_features
from tests.builders import example_policy, make_node

MEMORY = "nvidia.com/gpu.memory"
COUNT = "nvidia.com/gpu.count"
GKE = "cloud.google.com/gke-accelerator"
K_NAME = "karpenter.k8s.aws/instance-gpu-name"
K_MEMORY = "karpenter.k8s.aws/instance-gpu-memory"
K_COUNT = "karpenter.k8s.aws/instance-gpu-count"


def facts_of(labels: dict[str, str], policy: Policy | None = None, gpus: int = 8) -> NodeFeatures:
    node = make_node("n1", None, gpus=gpus, labels=labels)
    return node_features(node, policy or example_policy())


@pytest.mark.parametrize(
    ("labels", "mib", "source", "gpu_class"),
    [
        (
            {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", MEMORY: "81559"},
            81559,
            f"label {MEMORY}",
            "premium",
        ),
        ({K_NAME: "h100", K_MEMORY: "81920"}, 81920, f"label {K_MEMORY}", "premium"),
        # Karpenter's A100 is sized by its memory label, and that makes it premium.
        ({K_NAME: "a100", K_MEMORY: "81920"}, 81920, f"label {K_MEMORY}", "premium"),
        ({K_NAME: "a100", K_MEMORY: "40960"}, 40960, f"label {K_MEMORY}", "standard"),
        ({GKE: "nvidia-h100-80gb"}, 80 * 1024, "product name H100-80GB", "premium"),
        ({GKE: "nvidia-l4"}, 24 * 1024, "catalogue: L4 has 24 GB", "standard"),
        ({GKE: "nvidia-tesla-t4"}, 16 * 1024, "catalogue: T4 has 16 GB", "economy"),
        ({GKE: "nvidia-tesla-a100"}, 40 * 1024, "GKE accelerator nvidia-tesla-a100", "standard"),
        ({GKE: "nvidia-h100-mega-80gb"}, 80 * 1024, "product name H100-MEGA-80GB", "premium"),
    ],
    ids=[
        "gfd",
        "karpenter",
        "karpenter-a100-80",
        "karpenter-a100-40",
        "gke-name-says",
        "gke-catalogue-l4",
        "gke-catalogue-t4",
        "gke-a100-is-40gb",
        "gke-h100-mega",
    ],
)
def test_gpu_memory_comes_from_the_best_source_present(
    labels: dict[str, str], mib: int, source: str, gpu_class: str
) -> None:
    node = facts_of(labels)

    assert node.gpu_facts.memory_mib == GpuFact(mib, source)
    assert node.attribute_labels[MEMORY] == str(mib)
    assert node.gpu_class.name == gpu_class


def test_a_product_sold_in_several_sizes_has_no_memory_until_something_says_which() -> None:
    node = facts_of({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4"})

    assert node.gpu_facts.memory_mib is None
    assert MEMORY not in node.attribute_labels


def test_the_policy_can_size_products_the_catalogue_does_not(example_doc: dict[str, Any]) -> None:
    example_doc["nodeClassification"]["productMemory"] = {"A100": 80, "L4": 23}
    policy = load_policy_text(yaml.safe_dump(example_doc))

    a100 = facts_of({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4"}, policy)
    l4 = facts_of({GKE: "nvidia-l4"}, policy)

    assert a100.gpu_facts.memory_mib == GpuFact(80 * 1024, "policy productMemory: A100 has 80 GB")
    assert l4.gpu_facts.memory_mib == GpuFact(23 * 1024, "policy productMemory: L4 has 23 GB")


def test_a_malformed_memory_label_is_reported_and_the_next_source_read() -> None:
    node = facts_of({"nvidia.com/gpu.product": "NVIDIA-L4", MEMORY: "24Gi", K_MEMORY: "22888"})

    assert node.gpu_facts.memory_mib == GpuFact(22888, f"label {K_MEMORY}")
    assert node.attribute_labels[MEMORY] == "22888"
    assert f"label {MEMORY}='24Gi' is not a positive whole number; not read" in node.findings


@pytest.mark.parametrize(
    ("labels", "gpus", "count"),
    [
        ({COUNT: "4", K_COUNT: "8"}, 8, GpuFact(4, f"label {COUNT}")),
        ({K_COUNT: "8"}, 0, GpuFact(8, f"label {K_COUNT}")),
        ({}, 2, GpuFact(2, "allocatable nvidia.com/gpu")),
        ({}, 0, None),
    ],
    ids=["gfd", "karpenter-before-the-device-plugin", "allocatable", "nothing"],
)
def test_the_gpu_count_comes_from_labels_then_allocatable(
    labels: dict[str, str], gpus: int, count: GpuFact | None
) -> None:
    node = facts_of({GKE: "nvidia-l4", **labels}, gpus=gpus)

    assert node.gpu_facts.count == count
    assert node.attribute_labels.get(COUNT) == (str(count.value) if count else None)


def test_facts_that_add_nothing_leave_the_labels_as_they_are() -> None:
    policy = example_policy()
    labels = {MEMORY: "81559", COUNT: "8"}
    facts = gpu_facts(labels, "H100-80GB", 8, policy)

    assert attribute_labels(labels, facts, policy) is labels


@pytest.mark.parametrize(
    ("key", "origin"),
    [
        (MEMORY, "NVIDIA GPU Feature Discovery"),
        (K_MEMORY, "Karpenter's AWS provider"),
        (GKE, "GKE"),
        ("example.com/rack", None),
    ],
)
def test_a_label_names_who_normally_sets_it(key: str, origin: str | None) -> None:
    found = label_origin(key)

    assert (found is None) if origin is None else (found is not None and origin in found)
