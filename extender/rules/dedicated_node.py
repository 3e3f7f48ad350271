"""Dedicated nodes: hard dedication filters other workloads out, soft lowers their score."""

from __future__ import annotations

from collections.abc import Sequence

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules.base import ClusterView, Reject
from extender.state.features import NodeFeatures

NAME = "dedicated_node"


def _foreign(pod: PodIntent, node: NodeFeatures) -> bool:
    """The node is dedicated to a workload the pod neither is nor tolerates."""
    if node.dedicated_to is None or pod.tolerates_dedicated is None:
        return False
    return node.dedicated_to not in pod.tolerates_dedicated


def check(
    pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy
) -> Reject | None:
    if node.dedication_mode == "hard" and _foreign(pod, node):
        return Reject(
            NAME,
            f"node is dedicated to {node.dedicated_to} workloads (hard); pod is {pod.workload}",
            False,
        )
    return None


def applies(pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy) -> bool:
    """Scores only when some candidate is soft-dedicated to another workload."""
    return any(n.dedication_mode == "soft" and _foreign(pod, n) for n in nodes)


def score(pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy) -> float:
    return 0.0 if _foreign(pod, node) else 1.0
