"""Score: pack (most-allocated GPUs first, fewer fragments) or spread, per workload class."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules.base import ClusterView, clamp01
from extender.state.features import NodeFeatures

NAME = "packing"


def most_allocated(used_after: int, capacity: int) -> float:
    return clamp01(used_after / capacity)


def least_allocated(used_after: int, capacity: int) -> float:
    return clamp01(1.0 - used_after / capacity)


STRATEGIES: dict[str, Callable[[int, int], float]] = {
    "pack": most_allocated,
    "spread": least_allocated,
}


def applies(pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy) -> bool:
    return True


def score(pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy) -> float:
    capacity = node.capacity_milli
    if capacity <= 0:
        return 0.0
    used_after = capacity - node.free_milli + pod.demand.total_milli
    return STRATEGIES[policy.workloads[pod.workload].packing](used_after, capacity)
