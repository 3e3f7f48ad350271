"""Premium headroom: keep a share of a class's GPUs free for the workloads it is meant for."""

from __future__ import annotations

from collections.abc import Sequence

from extender.policy.compiled import ClassName, HeadroomRule, Policy
from extender.policy.intent import PodIntent
from extender.rules.base import ClusterView, Reject
from extender.state.features import NodeFeatures

NAME = "premium_headroom"


def _rule_for(pod: PodIntent, node: NodeFeatures, policy: Policy) -> HeadroomRule | None:
    name = node.gpu_class.name
    rule = policy.headroom.get(name) if name is not None else None
    if rule is None or pod.workload in rule.for_workloads:
        return None
    return rule


def leaves_headroom(pod: PodIntent, rule: HeadroomRule, cluster: ClusterView) -> bool:
    """Whether the class still keeps its reserve free after this pod takes its GPUs.

    Pods that passed our filter onto the class but are not bound yet count as taken
    (all but this pod's own hold).
    """
    usage = cluster.class_usage(rule.gpu_class)
    others_in_flight = usage.in_flight - cluster.in_flight_of(pod.uid, rule.gpu_class)
    free = usage.free - others_in_flight - pod.demand.total_milli
    return free >= rule.reserve * usage.capacity


def reserved_classes(
    pod: PodIntent, nodes: list[NodeFeatures], policy: Policy
) -> frozenset[ClassName]:
    """Classes with a reserve this pod does not belong to, among the nodes it may land on."""
    return frozenset(
        node.gpu_class.name
        for node in nodes
        if node.gpu_class.name is not None and _rule_for(pod, node, policy) is not None
    )


def check(
    pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy
) -> Reject | None:
    rule = _rule_for(pod, node, policy)
    if rule is None or rule.mode != "hard" or leaves_headroom(pod, rule, cluster):
        return None
    capacity = cluster.class_usage(rule.gpu_class).capacity / 1000
    return Reject(
        NAME,
        f"{rule.gpu_class} headroom reserved: {rule.reserve * capacity:g} of {capacity:g} "
        f"{rule.gpu_class} GPUs kept free for {'/'.join(sorted(rule.for_workloads))}",
        True,
    )


def applies(pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy) -> bool:
    return any(pod.workload not in rule.for_workloads for rule in policy.headroom.values())


def score(pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy) -> float:
    rule = _rule_for(pod, node, policy)
    return 1.0 if rule is None or leaves_headroom(pod, rule, cluster) else 0.0
