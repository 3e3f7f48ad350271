"""Over-constraint: pending GPU pods our rules leave nowhere to go, and what would admit
them; pods whose own wishes contradict each other."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from extender.doctor.findings import Finding
from extender.doctor.inputs import DoctorInputs, PendingPod
from extender.policy.compiled import ClassName, Policy
from extender.policy.intent import WHOLE_GPU, PodIntent
from extender.rules import dedicated_node, gpu_attributes, gpu_fit, premium_headroom, separation
from extender.rules.base import Reject
from extender.rules.notes import unschedulable_note
from extender.state.features import NodeFeatures


def check(inputs: DoctorInputs) -> Iterator[Finding]:
    for pending in inputs.pending:
        intent = pending.intent
        if not intent.wants_gpus:
            continue
        if intent.conflicts:
            yield Finding(
                "error",
                "over-constraint",
                "contradictory-wishes",
                pending.subject,
                "; ".join(intent.conflicts),
                "fix the pod's gpuclass annotations or labels so one GPU class remains "
                "allowed (every node rejects it until then)",
            )
            continue
        yield from _blocked(inputs, pending, intent)


def _blocked(inputs: DoctorInputs, pending: PendingPod, intent: PodIntent) -> Iterator[Finding]:
    cache, policy = inputs.cache, inputs.policy
    names, result = inputs.filter(pending)
    if not names or result.passed:
        return  # placeable, or its own selector admits no node (the scheduler says so)
    rejects = result.rejects
    counts = Counter(r.rule for r in rejects.values())
    tally = unschedulable_note(intent, len(names), result.reject_counts)
    # Unresolvable rejects need a change of labels, policy or pod wishes; the other nodes
    # are of an allowed class and lack room (or a rule keeps the pod off them now).
    eligible = [cache.node(n) for n, r in rejects.items() if r.resolvable]
    needs = _needs(intent)
    if not any(eligible):
        unlabelled = _unlabelled(intent, [cache.node(n) for n in names], policy)
        if unlabelled:
            yield Finding(
                "error",
                "over-constraint",
                "attribute-label-missing",
                pending.subject,
                f"needs {needs} of class {intent.allowed_text}; {tally}; {unlabelled[0]}",
                unlabelled[1],
            )
            return
        nearest = _nearest_class(intent, [cache.node(n) for n in names], policy)
        fix = f"add a node of class {_first_allowed(intent, policy)}"
        if nearest is not None:
            widened = ",".join(c for c in policy.class_names if c in intent.allowed | {nearest})
            fix += (
                f", or let it use the nearest class present, {nearest} (annotation "
                f"{policy.keys.pod_required_classes}={widened})"
            )
        if counts.get(gpu_attributes.NAME):
            fix += "; or relax the workload's gpuAttributes"
        if counts.get(dedicated_node.NAME):
            fix += f"; or let it use dedicated nodes ({policy.keys.pod_tolerate_dedicated})"
        yield Finding(
            "error",
            "over-constraint",
            "no-eligible-node",
            pending.subject,
            f"needs {needs} of class {intent.allowed_text}; {tally}; "
            f"{_unresolvable_example(rejects)}",
            fix,
        )
        return
    have = [n for n in eligible if n is not None]
    best = max(have, key=lambda n: _fitting_devices(n, intent))
    fit = _fitting_devices(best, intent)
    short = intent.demand.gpus - fit
    capacity = f"the most on one eligible node is {fit} ({best.name})"
    blocking = {r.rule for r in rejects.values() if r.resolvable} - {gpu_fit.NAME}
    largest = max(n.gpu_count for n in have)
    if largest < intent.demand.gpus:
        fix = (
            f"no node of an allowed class has {intent.demand.gpus} GPUs (the largest has "
            f"{largest}): add a larger node, or split the pod"
        )
    elif short > 0:
        fix = f"free or add {short} GPU(s) on a node of class {intent.allowed_text}"
    else:
        fix = "the GPUs are there; the rules below keep the pod off them"
    if premium_headroom.NAME in blocking:
        fix += "; headroom keeps part of a class free for other workloads (policy headroom)"
    if separation.NAME in blocking:
        fix += "; hard separation keeps it off nodes running the workloads it avoids"
    yield Finding(
        "warning",
        "over-constraint",
        "no-eligible-node-with-room",
        pending.subject,
        f"needs {needs}; {len(have)} node(s) of an allowed class, none with room now "
        f"({tally}); {capacity}" + (f", {short} short" if short > 0 else ""),
        fix,
    )


def _unlabelled(
    intent: PodIntent, nodes: list[NodeFeatures | None], policy: Policy
) -> tuple[str, str] | None:
    """(what, fix) when nodes of an allowed class fail a gpuAttributes requirement only
    because no source gives them the label it reads: the nodes are there, a label is not."""
    missing: dict[str, list[str]] = {}
    for node in nodes:
        if node is None or node.gpu_class.name not in intent.allowed:
            continue
        failed = [
            r for r in intent.attributes if not gpu_attributes.satisfied(r, node.attribute_labels)
        ]
        if failed and all(gpu_attributes.missing_label(r, node) for r in failed):
            for requirement in failed:
                missing.setdefault(requirement.key, []).append(node.name)
    if not missing:
        return None
    key, holders = max(missing.items(), key=lambda item: len(item[1]))
    examples = ", ".join(sorted(holders)[:3]) + (", ..." if len(holders) > 3 else "")
    what = (
        f"{len(holders)} node(s) of an allowed class ({examples}) have no {key} for the "
        f"workload's gpuAttributes to read"
    )
    fix = (
        f"give those nodes {key} ({gpu_attributes.where_from(key, policy)}), on their node "
        "templates too so that new nodes carry it; the nodes themselves are of the class"
    )
    return what, fix


def _needs(intent: PodIntent) -> str:
    if intent.demand.milli < WHOLE_GPU:
        return f"{intent.demand.milli}/1000 of a GPU"
    return f"{intent.demand.gpus} GPU(s) on one node"


def _fitting_devices(node: NodeFeatures, intent: PodIntent) -> int:
    """How many of the pod's GPUs this node could hold now."""
    return min(intent.demand.gpus, sum(f >= intent.demand.milli for f in node.free))


def _first_allowed(intent: PodIntent, policy: Policy) -> str:
    return next((c for c in policy.class_names if c in intent.allowed), intent.allowed_text)


def _nearest_class(
    intent: PodIntent, nodes: list[NodeFeatures | None], policy: Policy
) -> ClassName | None:
    """The class present among the nodes closest in tier to one the pod allows."""
    allowed = [policy.rank_of[c] for c in intent.allowed]
    present = {n.gpu_class.name for n in nodes if n is not None and n.gpu_class.name}
    if not allowed or not present:
        return None
    return min(
        present - intent.allowed,
        key=lambda c: (min(abs(policy.rank_of[c] - a) for a in allowed), policy.rank_of[c]),
        default=None,
    )


def _unresolvable_example(rejects: dict[str, Reject]) -> str:
    for name, reject in sorted(rejects.items()):
        if not reject.resolvable:
            return f"e.g. {name}: {reject.reason}"
    return ""
