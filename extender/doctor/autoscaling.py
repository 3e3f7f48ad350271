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
from extender.doctor.templates import Derived, NodeTemplate, creatable_classes, gpu_templates
from extender.policy.compiled import ClassName, Policy


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
        yield Finding(
            "warning",
            "autoscaling",
            "no-template-for-pod",
            pending.subject,
            f"no node template creates a node that is of class {intent.allowed_text} and "
            "meets the pod's nodeSelector and node affinity: no scale-up will place it",
            "add a template of an allowed class carrying the labels the pod selects",
        )
