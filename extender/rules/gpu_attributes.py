"""Filter: node labels must satisfy the workload's GPU attribute requirements."""

from __future__ import annotations

from extender.policy.compiled import Policy
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


def check(
    pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy
) -> Reject | None:
    for requirement in pod.attributes:
        if not satisfied(requirement, node.labels):
            have = node.labels.get(requirement.key, "<unset>")
            return Reject(
                NAME,
                f"GPU attribute {requirement.key}={have} fails {pod.workload} requirement "
                f"{describe(requirement)}",
                False,
            )
    return None
