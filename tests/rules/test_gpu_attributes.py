"""Filter: node labels must satisfy the workload's GPU attribute requirements."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from extender.policy import load_policy_text, pod_intent
from extender.policy.model import AttributeRequirement
from extender.rules import gpu_attributes
from extender.rules.base import Reject
from extender.state import NodeFeatures
from tests.builders import example_policy, make_cache, make_node, make_pod

KEY = "nvidia.com/gpu.memory"


def req(operator: str, *values: str) -> AttributeRequirement:
    return AttributeRequirement.model_validate({"key": KEY, "operator": operator, "values": values})


@pytest.mark.parametrize(
    ("requirement", "labels", "satisfied"),
    [
        (req("In", "81920", "40960"), {KEY: "81920"}, True),
        (req("In", "81920"), {KEY: "40960"}, False),
        (req("In", "81920"), {}, False),
        (req("NotIn", "15360"), {KEY: "81920"}, True),
        (req("NotIn", "15360"), {KEY: "15360"}, False),
        (req("NotIn", "15360"), {}, True),
        (req("Exists"), {KEY: ""}, True),
        (req("Exists"), {}, False),
        (req("DoesNotExist"), {}, True),
        (req("DoesNotExist"), {KEY: "81920"}, False),
        (req("Gt", "20000"), {KEY: "81920"}, True),
        (req("Gt", "20000"), {KEY: "20000"}, False),
        (req("Gt", "20000"), {KEY: "15360"}, False),
        (req("Gt", "20000"), {}, False),
        (req("Gt", "20000"), {KEY: "80Gi"}, False),
        (req("Gt", "-1"), {KEY: "0"}, True),
        (req("Lt", "20000"), {KEY: "15360"}, True),
        (req("Lt", "20000"), {KEY: "20000"}, False),
        (req("Lt", "20000"), {KEY: "81920"}, False),
        (req("Lt", "20000"), {}, False),
        (req("Lt", "20000"), {KEY: "small"}, False),
    ],
    ids=[
        "in-listed",
        "in-not-listed",
        "in-missing",
        "notin-other",
        "notin-listed",
        "notin-missing-passes",
        "exists-empty-value",
        "exists-missing",
        "doesnotexist-missing",
        "doesnotexist-present",
        "gt-above",
        "gt-equal-fails",
        "gt-below",
        "gt-missing-fails",
        "gt-non-integer-fails",
        "gt-negative-bound",
        "lt-below",
        "lt-equal-fails",
        "lt-above",
        "lt-missing-fails",
        "lt-non-integer-fails",
    ],
)
def test_each_operator_follows_node_affinity_semantics(
    requirement: AttributeRequirement, labels: dict[str, str], satisfied: bool
) -> None:
    assert gpu_attributes.satisfied(requirement, labels) is satisfied


@pytest.mark.parametrize(
    ("requirement", "text"),
    [
        (req("In", "a", "b"), f"{KEY} in a,b"),
        (req("NotIn", "a"), f"{KEY} not in a"),
        (req("Exists"), f"{KEY} exists"),
        (req("DoesNotExist"), f"{KEY} absent"),
        (req("Gt", "5"), f"{KEY} > 5"),
        (req("Lt", "5"), f"{KEY} < 5"),
    ],
    ids=["in", "notin", "exists", "doesnotexist", "gt", "lt"],
)
def test_a_requirement_reads_as_a_short_phrase(
    requirement: AttributeRequirement, text: str
) -> None:
    assert gpu_attributes.describe(requirement) == text


def _check(labels: dict[str, str], product: str | None = "L40S", **pod: Any) -> Reject | None:
    policy = example_policy()
    cache = make_cache(policy, [make_node("n1", product, labels=labels)])
    node = cache.node("n1")
    assert isinstance(node, NodeFeatures)
    return gpu_attributes.check(pod_intent(make_pod(**pod), policy), node, cache, policy)


def test_the_example_interactive_class_needs_more_than_20000_mib() -> None:
    assert _check({}, "L40S", workload="interactive") is None  # 46068 MiB

    reject = _check({KEY: "16384"}, "L40S", workload="interactive")

    assert reject == Reject(
        "gpu_attributes",
        f"GPU attribute {KEY}=16384 fails interactive requirement {KEY} > 20000",
        False,
    )


def test_a_node_no_source_sizes_names_the_labels_that_would() -> None:
    reject = _check({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4"}, None, workload="interactive")

    assert reject == Reject(
        "gpu_attributes",
        f"no {KEY} known for this node (product A100); interactive requires {KEY} > 20000 "
        f"(read from {KEY} or karpenter.k8s.aws/instance-gpu-memory, or a product the "
        "catalogue sizes (nodeClassification.productMemory))",
        False,
    )


def test_a_missing_label_outside_the_facts_names_who_sets_it(example_doc: dict[str, Any]) -> None:
    example_doc["workloadClasses"]["batch"]["gpuAttributes"] = [
        {"key": "nvidia.com/mig.capable", "operator": "In", "values": ["true"]},
    ]
    policy = load_policy_text(yaml.safe_dump(example_doc))
    cache = make_cache(policy, [make_node("n1", "T4")])
    node = cache.node("n1")
    assert node is not None

    pod = pod_intent(make_pod(workload="batch"), policy)

    reject = gpu_attributes.check(pod, node, cache, policy)

    assert reject is not None
    assert reject.reason.endswith(
        "(normally set by NVIDIA GPU Feature Discovery, once the node has booted)"
    )


@pytest.mark.parametrize(
    "labels",
    [
        {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
        {
            "karpenter.k8s.aws/instance-gpu-name": "h100",
            "karpenter.k8s.aws/instance-gpu-memory": "81920",
        },
    ],
    ids=["gke", "karpenter"],
)
def test_premium_nodes_without_gfd_labels_meet_the_interactive_memory_requirement(
    labels: dict[str, str],
) -> None:
    assert _check(labels, None, workload="interactive") is None


def test_a_workload_without_requirements_passes_any_node() -> None:
    assert _check({}, None, workload="batch") is None


def test_every_requirement_must_hold(example_doc: dict[str, Any]) -> None:
    example_doc["workloadClasses"]["batch"]["gpuAttributes"] = [
        {"key": "nvidia.com/gpu.count", "operator": "Gt", "values": ["3"]},
        {"key": "nvidia.com/mig.capable", "operator": "DoesNotExist"},
    ]
    policy = load_policy_text(yaml.safe_dump(example_doc))
    nodes = [
        make_node("eight", "T4", gpus=8),
        make_node("two", "T4", gpus=2),
        make_node("mig", "T4", gpus=8, labels={"nvidia.com/mig.capable": "true"}),
    ]
    cache = make_cache(policy, nodes)
    pod = pod_intent(make_pod(workload="batch"), policy)

    passed = [
        node.name
        for node in cache.nodes()
        if gpu_attributes.check(pod, node, cache, policy) is None
    ]

    assert passed == ["eight"]
