"""Separation of workload classes per topology domain (node, rack, zone).

Hard: a pod refuses domains holding pods it avoids, and domains whose pods avoid it (the
rule is symmetric, like required pod anti-affinity). Soft: a domain holding avoided pods
scores at most half, falling further with the share of its GPUs they hold. The step at
presence is what keeps neighbours quiet: a 0..10 score of a linear share barely tells a
node with one batch GPU of eight from an empty one (measured with `simulate`:
interactive/batch co-location on the openb trace 66% linear, 45% with the step).
"""

from __future__ import annotations

from collections.abc import Sequence

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules.base import ClusterView, Reject, clamp01
from extender.state.cache import DomainUsage
from extender.state.features import NodeFeatures, domain_of

NAME = "separation"


def _domain(node: NodeFeatures, key: str, cluster: ClusterView) -> DomainUsage:
    value = node.domains.get(key) or domain_of(node.name, node.labels, key)
    return cluster.domain(key, value)


def check(
    pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy
) -> Reject | None:
    own = policy.workloads[pod.workload].separation
    if own.mode == "hard" and own.avoid:
        held = _domain(node, own.topology_key, cluster).held
        present = sorted(w for w in own.avoid if held.get(w, 0) > 0)
        if present:
            return Reject(
                NAME,
                f"{'/'.join(present)} pods run here; {pod.workload} pods keep hard separation "
                f"from them per {own.topology_key}",
                True,
            )
    for name, other in policy.workloads.items():
        sep = other.separation
        if name == pod.workload or sep.mode != "hard" or pod.workload not in sep.avoid:
            continue
        held = _domain(node, sep.topology_key, cluster).held
        if held.get(name, 0) > 0:
            return Reject(
                NAME,
                f"{name} pods run here and keep hard separation from {pod.workload} per "
                f"{sep.topology_key}",
                True,
            )
    return None


def applies(pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy) -> bool:
    own = policy.workloads[pod.workload].separation
    return own.mode != "off" and bool(own.avoid)


def score(pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy) -> float:
    """1 on a domain free of avoided pods; else at most 0.5, less the more GPUs they hold."""
    own = policy.workloads[pod.workload].separation
    usage = _domain(node, own.topology_key, cluster)
    avoided = sum(usage.held.get(w, 0) for w in own.avoid)
    if avoided <= 0:
        return 1.0
    if usage.capacity <= 0:
        return 0.0
    return 0.5 * clamp01(1.0 - avoided / usage.capacity)
