"""Filter: node labels must satisfy the workload's GPU attribute requirements.

Requirements on the GPU memory or count label read the node's facts from their best source
(extender/policy/gpu_facts.py), so a GKE or Karpenter node without GPU Feature Discovery's
labels is judged by what its other labels say; a requirement on a label nothing provides
names the label and who normally sets it.
"""

from __future__ import annotations

from extender.policy.compiled import Policy
from extender.policy.gpu_facts import label_origin
from extender.policy.intent import PodIntent
from extender.policy.model import AttributeRequirement
from extender.rules.base import ClusterView, Reject
from extender.state.features import NodeFeatures
from extender.wire.placement import label_matches

NAME = "gpu_attributes"


def satisfied(requirement: AttributeRequirement, labels: dict[str, str]) -> bool:
    """Node-affinity semantics, the scheduler's own evaluation (wire.placement)."""
    return label_matches(requirement.key, requirement.operator, requirement.values, labels)


def describe(requirement: AttributeRequirement) -> str:
    symbol = {"Gt": ">", "Lt": "<", "In": "in", "NotIn": "not in"}.get(requirement.operator)
    if symbol is None:
        return f"{requirement.key} {'exists' if requirement.operator == 'Exists' else 'absent'}"
    return f"{requirement.key} {symbol} {','.join(requirement.values)}"


def missing_label(requirement: AttributeRequirement, node: NodeFeatures) -> bool:
    """The requirement fails only because no source gives the node the label it reads."""
    return requirement.key not in node.attribute_labels and requirement.operator not in (
        "DoesNotExist",
        "NotIn",
    )


def where_from(key: str, policy: Policy) -> str:
    """Who normally sets a label a requirement reads, for a human to act on."""
    nc = policy.document.node_classification
    if key == nc.memory_label:
        sources = [key, *nc.memory_fallback_labels]
        return (
            f"read from {' or '.join(sources)}, or a product the catalogue sizes "
            "(nodeClassification.productMemory)"
        )
    if key == nc.count_label:
        return f"read from {' or '.join([key, *nc.count_fallback_labels])} or allocatable GPUs"
    origin = label_origin(key)
    return f"normally set by {origin}" if origin else "set by whoever labels your nodes"


def check(
    pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy
) -> Reject | None:
    for requirement in pod.attributes:
        if satisfied(requirement, node.attribute_labels):
            continue
        if missing_label(requirement, node):
            product = f" (product {node.gpu_class.product})" if node.gpu_class.product else ""
            return Reject(
                NAME,
                f"no {requirement.key} known for this node{product}; {pod.workload} requires "
                f"{describe(requirement)} ({where_from(requirement.key, policy)})",
                False,
            )
        have = node.attribute_labels.get(requirement.key, "<unset>")
        return Reject(
            NAME,
            f"GPU attribute {requirement.key}={have} fails {pod.workload} requirement "
            f"{describe(requirement)}",
            False,
        )
    return None
