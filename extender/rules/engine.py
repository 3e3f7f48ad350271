"""Run the filter and score rules over a request's nodes; the one code path for every verb.

The server, `explain` and (later) the simulator all call these functions, so a decision
shown to an admin is the decision the scheduler got.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules import (
    class_fit,
    class_required,
    dedicated_node,
    gpu_attributes,
    gpu_fit,
    packing,
    premium_headroom,
    separation,
)
from extender.rules.base import ClusterView, Reject
from extender.state.features import NodeFeatures

FilterCheck = Callable[[PodIntent, NodeFeatures, ClusterView, Policy], Reject | None]
ScoreFn = Callable[[PodIntent, NodeFeatures, ClusterView, Policy], float]
AppliesFn = Callable[[PodIntent, Sequence[NodeFeatures], Policy], bool]

# Unresolvable rules first: their reason is the one an admin needs (wrong GPU model beats
# "GPUs busy"), and preemption skips those nodes.
FILTERS: tuple[tuple[str, FilterCheck], ...] = (
    (class_required.NAME, class_required.check),
    (gpu_attributes.NAME, gpu_attributes.check),
    (dedicated_node.NAME, dedicated_node.check),
    (separation.NAME, separation.check),
    (premium_headroom.NAME, premium_headroom.check),
    (gpu_fit.NAME, gpu_fit.check),
)
# Component name (as in the policy's weights) -> (applies to this pod?, score in [0, 1]).
SCORES: dict[str, tuple[AppliesFn, ScoreFn]] = {
    "class_fit": (class_fit.applies, class_fit.score),
    "separation": (separation.applies, separation.score),
    "headroom": (premium_headroom.applies, premium_headroom.score),
    "dedication": (dedicated_node.applies, dedicated_node.score),
    "packing": (packing.applies, packing.score),
}
MAX_SCORE = 10
NOT_CACHED = Reject("cache", "node not yet in the extender's cache; retrying", True)

NodeLookup = Callable[[str], NodeFeatures | None]


@dataclass(slots=True)
class FilterResult:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)
    rejects: dict[str, Reject] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    """One node's decision: rejected (and why) or scored (and from what)."""

    node: str
    reject: Reject | None
    components: dict[str, float]
    score: int


def check_node(
    pod: PodIntent, node: NodeFeatures | None, cluster: ClusterView, policy: Policy
) -> Reject | None:
    """The first rule that rejects the node, or None when it may take the pod."""
    if not pod.wants_gpus:
        return None  # not a GPU pod: none of our business, whatever its labels say
    if pod.conflicts:
        return Reject("pod", f"pod cannot be placed: {'; '.join(pod.conflicts)}", False)
    if node is None:
        return NOT_CACHED
    for _, check in FILTERS:
        reject = check(pod, node, cluster, policy)
        if reject is not None:
            return reject
    return None


def filter_nodes(
    pod: PodIntent,
    names: Sequence[str],
    lookup: NodeLookup,
    cluster: ClusterView,
    policy: Policy,
) -> FilterResult:
    result = FilterResult()
    seen: set[str] = set()
    for name in names:
        if name in seen:
            continue  # the protocol forbids duplicates in the answer
        seen.add(name)
        reject = check_node(pod, lookup(name), cluster, policy)
        if reject is None:
            result.passed.append(name)
            continue
        result.rejects[name] = reject
        if reject.resolvable:
            result.failed[name] = reject.reason
        else:
            result.unresolvable[name] = reject.reason
    return result


def applicable_components(
    pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy
) -> list[tuple[str, float, ScoreFn]]:
    """The components that rank these nodes for this pod, with their weights."""
    if pod.demand.gpus == 0 or pod.conflicts:
        return []
    chosen = []
    for component, (applies, score) in SCORES.items():
        weight = policy.weights.of(component)
        if weight > 0 and applies(pod, nodes, policy):
            chosen.append((component, weight, score))
    return chosen


def combine(parts: dict[str, float], weights: dict[str, float]) -> int:
    """Weighted mean of components in [0, 1], as the extender's integer 0..10."""
    total = sum(weights.values())
    if total <= 0:
        return 0
    mean = sum(parts[c] * w for c, w in weights.items()) / total
    return min(MAX_SCORE, max(0, int(mean * MAX_SCORE + 0.5)))


def score_nodes(
    pod: PodIntent,
    names: Sequence[str],
    lookup: NodeLookup,
    cluster: ClusterView,
    policy: Policy,
) -> list[tuple[str, int]]:
    """Every requested node with its integer score; 0 for nodes our filter would reject.

    The scheduler normally sends only nodes that passed our filter; scoring the others 0
    keeps a prioritize-only configuration from ranking a wrong GPU class first.
    """
    return [(v.node, v.score) for v in explain_nodes(pod, names, lookup, cluster, policy)]


def explain_nodes(
    pod: PodIntent,
    names: Sequence[str],
    lookup: NodeLookup,
    cluster: ClusterView,
    policy: Policy,
) -> list[NodeVerdict]:
    """Per node: the reject, or the component scores and the final integer.

    Components are chosen over the nodes that pass, as the scheduler prioritizes only
    those, so an explanation shows the scores the scheduler gets.
    """
    unique = list(dict.fromkeys(names))
    checked = [
        (name, node, check_node(pod, node, cluster, policy))
        for name in unique
        for node in [lookup(name)]
    ]
    passing = [node for _, node, reject in checked if node is not None and reject is None]
    components = applicable_components(pod, passing, policy)
    weights = {name: weight for name, weight, _ in components}
    verdicts = []
    for name, node, reject in checked:
        if node is None or reject is not None:
            verdicts.append(NodeVerdict(name, reject, {}, 0))
            continue
        parts = {c: score(pod, node, cluster, policy) for c, _, score in components}
        verdicts.append(NodeVerdict(name, None, parts, combine(parts, weights)))
    return verdicts
