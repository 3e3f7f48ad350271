"""Autoscaling: can the autoscaler create the nodes our classes need, and will it create
the right ones for a pending pod?

cluster-autoscaler and Karpenter never call the extender (docs/autoscaling.md): they
match a pod's own nodeSelector and node affinity against each template. A class rule that
lives only in the extender is invisible to them, unless the class is mirrored into the
pod's required affinity (the admission webhook) and the templates carry the class label.
"""

from __future__ import annotations

from collections.abc import Iterator

from extender.doctor.findings import Finding
from extender.doctor.inputs import DoctorInputs, PendingPod
from extender.doctor.templates import (
    WELL_KNOWN,
    Derived,
    NodeTemplate,
    creatable_classes,
    gpu_templates,
)
from extender.policy.compiled import ClassName, Policy
from extender.policy.gpu_facts import label_origin
from extender.policy.loader import allowed_classes


def check(inputs: DoctorInputs) -> Iterator[Finding]:
    policy = inputs.policy
    templates = gpu_templates(inputs.templates, policy)
    if not templates:
        yield Finding(
            "info",
            "autoscaling",
            "no-node-templates",
            "cluster",
            "no GPU node templates found (Karpenter NodePools, Cluster API node groups with "
            "scale-from-zero labels, or --templates files): autoscaling not checked",
            "pass the autoscaler's node groups with --templates FILE if it runs outside "
            "this cluster's API",
        )
        return
    yield from _templates(templates, policy)
    yield from _nodepool_order(templates, policy)
    creatable = creatable_classes(templates)
    for name in policy.class_names:
        if name not in creatable:
            yield Finding(
                "warning",
                "autoscaling",
                "class-not-creatable",
                f"class/{name}",
                f"no node template creates {name} nodes: a pod that needs {name} gets no scale-up",
                f"add a node group or NodePool whose GPU labels derive to {name}, or accept "
                "that it is not autoscaled",
            )
    for pending in inputs.pending:
        intent = pending.intent
        if not intent.wants_gpus or intent.conflicts:
            continue
        if not inputs.filter(pending)[1].passed:  # only pods our rules leave Pending
            yield from _pod(pending, templates, policy)


def _templates(templates: list[tuple[NodeTemplate, Derived]], policy: Policy) -> Iterator[Finding]:
    label = policy.keys.node_class
    for template, derived in templates:
        for _, node_class in derived:
            if node_class.finding and "disagrees" in node_class.finding:
                yield Finding(
                    "warning",
                    "autoscaling",
                    "template-class-disagrees",
                    template.subject,
                    f"its nodes would get: {node_class.finding}",
                    f"make its {label} label match its GPU labels",
                )
                break
            if node_class.finding:
                yield Finding(
                    "warning",
                    "autoscaling",
                    "template-unclassified",
                    template.subject,
                    f"its nodes would get no class: {node_class.finding}",
                    "map the product in the policy (gpuClasses products or aliases)",
                )
                break
        classes = {c.name for _, c in derived if c.name is not None}
        if classes and label not in template.labels:
            yield Finding(
                "info",
                "autoscaling",
                "template-without-class-label",
                template.subject,
                f"creates {', '.join(sorted(classes))} nodes without the label {label}: pods "
                "whose classes the admission webhook mirrors into node affinity never "
                "scale it up",
                f"add {label}: <class> to its node labels (one class per template)",
            )


def _pod(
    pending: PendingPod, templates: list[tuple[NodeTemplate, Derived]], policy: Policy
) -> Iterator[Finding]:
    """What the autoscaler would do for this pod, against what our filter allows."""
    intent = pending.intent
    good: list[str] = []
    wrong: dict[str, ClassName] = {}
    for template, derived in templates:
        for labels, node_class in derived:
            if not template.may_satisfy(pending.placement, labels):
                continue
            if node_class.name in intent.allowed:
                good.append(template.subject)
            elif node_class.name is not None:
                wrong.setdefault(template.subject, node_class.name)
    if wrong:
        said = ", ".join(f"{t} ({c})" for t, c in sorted(wrong.items()))
        yield Finding(
            "warning",
            "autoscaling",
            "scale-up-wrong-class",
            pending.subject,
            f"may use {intent.allowed_text} only, but its own node affinity admits {said}: "
            "the autoscaler may create nodes our filter then rejects",
            f"mirror its classes into node affinity on {policy.keys.node_class} (enable the "
            "admission webhook) and label each template with its class",
        )
    if not good:
        absent = _labels_no_template_sets(pending, [t for t, _ in templates])
        why = "; ".join(
            f"no template sets {key}" + (f" (set by {origin})" if origin else "")
            for key in absent
            for origin in [label_origin(key)]
        )
        yield Finding(
            "warning",
            "autoscaling",
            "no-template-for-pod",
            pending.subject,
            f"no node template creates a node that is of class {intent.allowed_text} and "
            "meets the pod's nodeSelector and node affinity: no scale-up will place it"
            + (f"; {why}" if why else ""),
            (
                f"select on labels a node carries from birth, such as {policy.keys.node_class} "
                "(the admission webhook mirrors the pod's classes there), not on "
                + ", ".join(absent)
            )
            if absent
            else "add a template of an allowed class carrying the labels the pod selects",
        )


def _nodepool_order(
    templates: list[tuple[NodeTemplate, Derived]], policy: Policy
) -> Iterator[Finding]:
    """Karpenter takes the first NodePool that fits a pod, heaviest `spec.weight` first and
    then by name in reverse order, not the cheapest: a pool of a costlier class tried
    before a cheaper one scales the costlier class for pods that may use either."""
    pools = [
        (template, sorted({c.name for _, c in derived if c.name}, key=policy.rank_of.__getitem__))
        for template, derived in templates
        if template.kind == "NodePool"
    ]
    pools = [(t, classes) for t, classes in pools if classes]
    pools.sort(key=lambda p: p[0].name, reverse=True)
    pools.sort(key=lambda p: -p[0].weight)  # stable: names stay reversed within a weight
    for i, (first, costly) in enumerate(pools):
        # Later pools wholly below this one's cheapest class, with the workloads that may
        # use both (those pods scale this pool first).
        later = [
            (t, cheap, workloads)
            for t, cheap in pools[i + 1 :]
            if policy.rank_of[costly[-1]] < policy.rank_of[cheap[0]]
            and (workloads := _workloads_allowing(policy, costly[-1], cheap[0]))
        ]
        if not later:
            continue
        cheaper = ", ".join(f"{t.subject} ({'/'.join(c)}, weight {t.weight})" for t, c, _ in later)
        _, nearest, workloads = later[0]
        yield Finding(
            "warning",
            "autoscaling",
            "costly-nodepool-first",
            first.subject,
            f"Karpenter tries it ({'/'.join(costly)}, weight {first.weight}) before {cheaper}: "
            f"it takes the first pool that fits a pod, by weight and then name in reverse, so "
            f"{'/'.join(workloads)} pods, which may use either, scale {costly[-1]} while "
            f"{nearest[0]} could hold them",
            f"give the NodePools of cheaper classes a higher spec.weight than "
            f"{first.weight} (e.g. one step per tier, cheapest highest)",
        )


def _workloads_allowing(policy: Policy, *classes: ClassName) -> list[str]:
    """Workload classes whose defaults allow every one of these GPU classes."""
    return sorted(
        name
        for name, d in policy.workloads.items()
        if set(classes)
        <= set(
            allowed_classes(
                list(policy.class_names), d.required_classes, d.min_class, d.excluded_classes
            )
        )
    )


def _labels_no_template_sets(pending: PendingPod, templates: list[NodeTemplate]) -> list[str]:
    """Labels the pod requires (selector, or every term of its affinity) that no template
    sets or constrains: labels such as GFD's, which a node gets only after it boots."""
    placement = pending.placement
    terms = [
        {r.key for r in t.matchExpressions if r.operator in ("In", "Exists", "Gt", "Lt")}
        for t in placement.terms
    ]
    required = set(placement.node_selector) | (set.intersection(*terms) if terms else set())
    known = {k for t in templates for k in (*t.labels, *(r.key for r in t.requirements))}
    return sorted(required - known - WELL_KNOWN)
