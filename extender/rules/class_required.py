"""Filter: the node's GPU class must be one the pod may use (unresolvable otherwise)."""

from __future__ import annotations

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules.base import ClusterView, Reject
from extender.state.features import NodeFeatures

NAME = "class_required"


def check(
    pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy
) -> Reject | None:
    if node.gpu_count == 0:
        return Reject(NAME, f"node has no {policy.gpu_resource} allocatable", False)
    gpu_class = node.gpu_class
    if len(pod.allowed) == len(policy.class_names):
        return None  # any class will do, even none
    if gpu_class.name is None:
        detail = (
            f"product {gpu_class.product} matches no class"
            if gpu_class.product
            else "no GPU product label"
        )
        return Reject(
            NAME, f"node has no GPU class ({detail}); pod needs {pod.allowed_text}", False
        )
    if gpu_class.name in pod.allowed:
        return None
    what = f"GPU class {gpu_class.name} ({gpu_class.product or 'labelled'})"
    if pod.allowed_text.endswith(" or better"):
        floor = pod.allowed_text.removesuffix(" or better")
        return Reject(NAME, f"{what} is below the required tier {floor}", False)
    return Reject(NAME, f"{what} is not allowed; pod needs {pod.allowed_text}", False)
