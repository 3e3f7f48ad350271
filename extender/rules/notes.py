"""One-line notes about a decision: why a pod scored where it did, why no node was left for
it, and the record our bind writes on the pod. Pure: the server writes them, anything may
print them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules import (
    class_required,
    dedicated_node,
    gpu_attributes,
    gpu_fit,
    premium_headroom,
    separation,
)
from extender.rules.base import Reject
from extender.rules.engine import NOT_CACHED, NodeLookup
from extender.state.features import NodeFeatures
from extender.wire import Pod

CONFLICTS = "pod"  # the rule name of a reject for a pod we cannot read (engine.check_node)
# Rules in the order they run: equal counts are listed in that order.
_ORDER = (
    CONFLICTS,
    class_required.NAME,
    gpu_attributes.NAME,
    dedicated_node.NAME,
    separation.NAME,
    premium_headroom.NAME,
    gpu_fit.NAME,
    NOT_CACHED.rule,
)


def reject_phrase(reject: Reject, pod: PodIntent) -> str:
    """A few words for a node count: "24 wrong GPU class (need premium)"."""
    rule = reject.rule
    if rule == class_required.NAME:
        if reject.reason.startswith("node has no GPU class"):
            return "without a GPU class"
        if reject.reason.startswith("node has no "):
            return "without GPUs"
        return f"wrong GPU class (need {pod.allowed_text})"
    if rule == gpu_attributes.NAME:
        return "GPU attributes not as required"
    if rule == dedicated_node.NAME:
        return "dedicated to other workloads"
    if rule == separation.NAME:
        # "<workloads> pods run here; ..." or "<workload> pods run here and keep ..."
        return f"running {reject.reason.partition(' pods run here')[0]} pods (hard separation)"
    if rule == premium_headroom.NAME:
        # "<class> headroom reserved: 2 of 8 <class> GPUs kept free for interactive"
        return reject.reason.partition(":")[0]
    if rule == gpu_fit.NAME:
        return "not enough free GPUs"
    if rule == CONFLICTS:
        return f"pod spec unreadable ({'; '.join(pod.conflicts)})"
    if rule == NOT_CACHED.rule:
        return "not yet in the extender's cache"
    return rule


def unschedulable_note(
    pod: PodIntent, total: int, reject_counts: Mapping[Reject, int]
) -> str | None:
    """ "0/40 nodes: 24 wrong GPU class (need premium), 16 premium headroom reserved", or
    None when none of the rejects is one of our rules' (only uncached nodes)."""
    if not any(r.rule != NOT_CACHED.rule for r in reject_counts):
        return None
    per_phrase: dict[str, int] = {}
    rank: dict[str, int] = {}
    for reject, count in reject_counts.items():
        phrase = reject_phrase(reject, pod)
        per_phrase[phrase] = per_phrase.get(phrase, 0) + count
        order = _ORDER.index(reject.rule) if reject.rule in _ORDER else len(_ORDER)
        rank[phrase] = min(rank.get(phrase, order), order)
    parts = sorted(per_phrase.items(), key=lambda item: (-item[1], rank[item[0]], item[0]))
    return f"0/{total} nodes: " + ", ".join(f"{count} {phrase}" for phrase, count in parts)


def best_node(names: Sequence[str], scores: Sequence[int]) -> tuple[str, int] | None:
    """The highest-scored node, the first by name among equals (None when none)."""
    if not names:
        return None
    top = max(scores)
    return min(n for n, s in zip(names, scores, strict=True) if s == top), top


def scored_note(
    pod: PodIntent,
    names: Sequence[str],
    scores: Sequence[int],
    lookup: NodeLookup,
    policy: Policy,
    max_score: int,
) -> tuple[str, str] | None:
    """(winning GPU class, note) for a prioritize answer, e.g. ("premium", "best: node-a
    (premium, score 9/10) of 5 nodes, 2 tied; interactive prefers premium > standard;
    no batch pods on it"); None when there is nothing to rank."""
    best = best_node(names, scores)
    if best is None:
        return None
    name, score = best
    node = lookup(name)
    gpu_class = (node.gpu_class.name if node is not None else None) or "unclassified"
    tied = sum(1 for s in scores if s == score) - 1
    head = f"best: {name} ({gpu_class}, score {score}/{max_score}) of {len(names)} nodes"
    parts = [head + (f", {tied} tied" if tied else "")]
    return gpu_class, "; ".join([*parts, *_wish_phrases(pod, node, policy)])


def _wish_phrases(pod: PodIntent, node: NodeFeatures | None, policy: Policy) -> list[str]:
    """What of the pod's wishes a node meets: its preferred classes, its neighbours."""
    if pod.preferred:
        parts = [f"{pod.workload} prefers {' > '.join(pod.preferred)}"]
    else:
        parts = [f"{pod.workload} has no preferred class"]
    avoid = sorted(policy.workloads[pod.workload].separation.avoid)
    if avoid and node is not None:
        present = [w for w in avoid if node.held.get(w, 0) > 0]
        if present:
            parts.append(f"{'/'.join(present)} pods on it")
        else:
            parts.append(f"no {'/'.join(avoid)} pods on it")
    return parts


@dataclass(frozen=True, slots=True)
class Ranking:
    """Where the chosen node stood in our last prioritize answer for the pod."""

    score: int
    best: int
    at_best: int  # nodes with the best score, the chosen one included if it is one
    candidates: int


NOT_SEEN = "no filter call of this extender saw the pod (it restarted since)"
NOT_SCORED = "no prioritize call for the pod (the scheduler asks only when 2+ nodes remain)"


def decision_record(
    pod: PodIntent,
    node: NodeFeatures | None,
    ranking: Ranking | str,
    policy: Policy,
    max_score: int,
    digest: str | None = None,
) -> dict[str, str]:
    """The annotations our bind writes on a pod: the class it got, our score for its node
    (`ranking`, or why there is none), the wishes it meets, and the digest of the policy
    that scored it (`digest`, default the one in force). Read back by `explain` and
    `doctor`."""
    keys = policy.keys
    gpu_class = (node.gpu_class.name if node is not None else None) or "unclassified"
    if isinstance(ranking, str):
        head = ranking
    else:
        others = ranking.at_best - (ranking.score == ranking.best)
        if ranking.score == ranking.best:
            standing = "the best" + (f", {others} tied" if others else "")
        else:
            standing = f"best was {ranking.best}/{max_score} on {ranking.at_best}"
        head = f"score {ranking.score}/{max_score} ({standing} of {ranking.candidates} nodes)"
    record = {
        keys.pod_decision_class: gpu_class,
        keys.pod_decision_reason: "; ".join([head, *_wish_phrases(pod, node, policy)]),
        keys.pod_decision_policy: digest or policy.digest,
    }
    if not isinstance(ranking, str):
        record[keys.pod_decision_score] = str(ranking.score)
    return record


def recorded_decision(pod: Pod, policy: Policy) -> dict[str, str] | None:
    """The decision record our bind wrote on a bound pod: node, class, score (absent when
    none was recorded), reason, policy and whether that policy is the one in force; None
    when the pod has none."""
    keys = policy.keys
    annotations = pod.metadata.annotations or {}
    if keys.pod_decision_class not in annotations:
        return None
    digest = annotations.get(keys.pod_decision_policy, "")
    record = {
        "node": pod.spec.nodeName or "",
        "class": annotations[keys.pod_decision_class],
        "reason": annotations.get(keys.pod_decision_reason, ""),
        "policy": digest,
        "policyInForce": "yes" if digest == policy.digest else "no",
    }
    if keys.pod_decision_score in annotations:
        record["score"] = annotations[keys.pod_decision_score]
    return record
