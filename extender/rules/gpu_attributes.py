"""Filter: node labels must satisfy the workload's GPU attribute requirements."""

from __future__ import annotations

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.policy.model import AttributeRequirement
from extender.rules.base import ClusterView, Reject
from extender.state.features import NodeFeatures

NAME = "gpu_attributes"


def satisfied(requirement: AttributeRequirement, labels: dict[str, str]) -> bool:
    """Node-affinity semantics: Gt/Lt compare integers; a missing label fails them."""
    value = labels.get(requirement.key)
    op = requirement.operator
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op == "In":
        return value is not None and value in requirement.values
    if op == "NotIn":
        return value is None or value not in requirement.values
    try:
        number = int(value) if value is not None else None
    except ValueError:
        return False
    if number is None:
        return False
    bound = int(requirement.values[0])
    return number > bound if op == "Gt" else number < bound


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
