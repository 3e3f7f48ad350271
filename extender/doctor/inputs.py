"""Everything the doctor's checks read, gathered once from a cluster (or a server's cache)."""

from __future__ import annotations

from dataclasses import dataclass, field

from extender.doctor.findings import Finding
from extender.doctor.templates import NodeTemplate
from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent, pod_intent
from extender.rules.engine import FilterResult, filter_nodes
from extender.state.cache import ClusterCache
from extender.wire.codec import decode_node, decode_pod
from extender.wire.placement import Placement, decode_placement
from extender.wire.types import Node, Pod


@dataclass(frozen=True, slots=True)
class PendingPod:
    pod: Pod
    placement: Placement
    intent: PodIntent

    @property
    def subject(self) -> str:
        return f"pod/{self.pod.metadata.namespace}/{self.pod.metadata.name}"


@dataclass
class DoctorInputs:
    policy: Policy
    cache: ClusterCache  # nodes and the pods on them, as the extender sees them
    node_labels: dict[str, dict[str, str]]  # every label of every node (the cache keeps few)
    pending: list[PendingPod]
    templates: list[NodeTemplate]
    # Problems reading the sources (a CRD we may not list, say): reported as findings.
    notes: list[Finding] = field(default_factory=list)
    # Pods whose required node affinity names the node class label (the admission
    # webhook mirrors classes there): then a GPU node without that label is off-limits.
    class_affinity_pods: int = 0
    # Bound pods by the digest of the policy our bind recorded on them (its decision
    # record): those of another digest were placed under a policy no longer in force.
    placed_under: dict[str, list[str]] = field(default_factory=dict)
    _verdicts: dict[str, tuple[list[str], FilterResult]] = field(default_factory=dict, repr=False)

    def filter(self, pending: PendingPod) -> tuple[list[str], FilterResult]:
        """The nodes the pod's own constraints admit, and our filter's verdict on them
        (worked out once per pod: several checks ask)."""
        found = self._verdicts.get(pending.subject)
        if found is None:
            cache = self.cache
            names = [
                n.name
                for n in cache.nodes()
                if pending.placement.admits(self.node_labels.get(n.name, n.labels))
            ]
            verdict = filter_nodes(pending.intent, names, cache.node_lookup, cache, self.policy)
            found = self._verdicts[pending.subject] = (names, verdict)
        return found


def is_pending(pod: Pod) -> bool:
    return (
        not pod.spec.nodeName
        and pod.status.phase in ("", "Pending")
        and pod.metadata.deletionTimestamp is None
    )


def inputs_from_objects(
    policy: Policy,
    raw_nodes: list[bytes],
    raw_pods: list[bytes],
    templates: list[NodeTemplate],
    notes: list[Finding] | None = None,
) -> DoctorInputs:
    """A one-shot cache of the listed nodes and pods, and the pending pods among them."""
    nodes: list[Node] = [decode_node(raw, i) for i, raw in enumerate(raw_nodes)]
    pods = [decode_pod(raw, f"pod {i}") for i, raw in enumerate(raw_pods)]
    placements = [decode_placement(raw, f"pod {i}") for i, raw in enumerate(raw_pods)]
    label = policy.keys.node_class
    return DoctorInputs(
        policy=policy,
        cache=ClusterCache.of(policy, nodes, pods),
        node_labels={n.metadata.name: dict(n.metadata.labels or {}) for n in nodes},
        pending=[
            PendingPod(pod, placement, pod_intent(pod, policy))
            for pod, placement in zip(pods, placements, strict=True)
            if is_pending(pod)
        ],
        templates=templates,
        notes=list(notes or []),
        class_affinity_pods=sum(
            any(r.key == label for t in placement.terms for r in t.matchExpressions)
            for placement in placements
        ),
        placed_under=_placed_under(policy, pods),
    )


def _placed_under(policy: Policy, pods: list[Pod]) -> dict[str, list[str]]:
    key = policy.keys.pod_decision_policy
    placed: dict[str, list[str]] = {}
    for pod in pods:
        digest = (pod.metadata.annotations or {}).get(key)
        if digest and pod.spec.nodeName and pod.metadata.deletionTimestamp is None:
            placed.setdefault(digest, []).append(f"{pod.metadata.namespace}/{pod.metadata.name}")
    return placed
