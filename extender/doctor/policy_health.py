"""Policy health: headroom targets today's fleet cannot meet, dedications no workload
class may use, and pods our bind placed under a policy no longer in force."""

from __future__ import annotations

from collections.abc import Iterator

from extender.doctor.findings import Finding
from extender.doctor.inputs import DoctorInputs
from extender.policy.compiled import ClassName, Policy, WorkloadName
from extender.policy.intent import WHOLE_GPU
from extender.policy.loader import allowed_classes

_OUTCOME = {"hard": "refused", "soft": "scored down"}


def workload_classes(policy: Policy, workload: WorkloadName) -> frozenset[ClassName]:
    """The GPU classes a workload class's pods may use when they override nothing."""
    w = policy.workloads[workload]
    names = allowed_classes(
        list(policy.class_names), w.required_classes, w.min_class, w.excluded_classes
    )
    return frozenset(ClassName(c) for c in names)


def check(inputs: DoctorInputs) -> Iterator[Finding]:
    yield from _headroom(inputs)
    yield from _dedication(inputs)
    yield from _placed_under_another_policy(inputs)


def _placed_under_another_policy(inputs: DoctorInputs) -> Iterator[Finding]:
    """Bound pods whose decision record names another policy digest: they stay where that
    policy put them (nothing moves a running pod), which may not be where this one would."""
    current = inputs.policy.digest
    for digest, pods in sorted(inputs.placed_under.items()):
        if digest == current:
            continue
        shown = ", ".join(sorted(pods)[:5]) + (", ..." if len(pods) > 5 else "")
        yield Finding(
            "info",
            "policy",
            "placed-under-another-policy",
            f"policy/{digest}",
            f"{len(pods)} running pod(s) were placed by our bind under policy {digest}, not "
            f"the one in force ({current}): {shown}",
            "nothing, if the change should apply to new pods only; otherwise recreate these "
            "pods (e.g. kubectl rollout restart of their owners) so the current policy "
            "places them",
        )


def _headroom(inputs: DoctorInputs) -> Iterator[Finding]:
    policy, cache = inputs.policy, inputs.cache
    largest = _largest_pods(inputs)
    for name, rule in policy.headroom.items():
        subject = f"headroom/{name}"
        users = sorted(w for w in rule.for_workloads if name in workload_classes(policy, w))
        reserved_for = "/".join(sorted(rule.for_workloads))
        if not users:
            yield Finding(
                "error",
                "policy",
                "headroom-for-nobody",
                subject,
                f"{rule.reserve:.0%} of {name} is kept free for {reserved_for}, which may not "
                f"use {name}: the reserve only idles GPUs",
                f"reserve {name} for workloads that may use it, or remove the headroom entry",
            )
            continue
        usage = cache.class_usage(name)
        capacity, reserve = usage.capacity / WHOLE_GPU, rule.reserve * usage.capacity / WHOLE_GPU
        if not usage.capacity:
            yield Finding(
                "warning",
                "policy",
                "headroom-without-capacity",
                subject,
                f"{name} has no GPUs, so its {rule.reserve:.0%} reserve keeps nothing free",
                f"add {name} nodes, or remove the headroom entry",
            )
            continue
        biggest = max((largest.get(w, 0) for w in users), default=0)
        if reserve < 1:
            yield Finding(
                "warning",
                "policy",
                "headroom-below-one-gpu",
                subject,
                f"{rule.reserve:.0%} of {capacity:g} {name} GPUs is {reserve:.2g} GPU: not one "
                f"whole GPU is ever kept free for {reserved_for}",
                f"raise reserve to at least {1 / capacity:.2f}, or add {name} nodes",
            )
        elif biggest > reserve:
            yield Finding(
                "warning",
                "policy",
                "headroom-smaller-than-pods",
                subject,
                f"the reserve is {reserve:g} of {capacity:g} {name} GPUs, but {reserved_for} "
                f"pods here ask up to {biggest} GPUs: the reserve never fits one of them",
                f"raise reserve to at least {biggest / capacity:.2f}, or add {name} nodes"
                if biggest < capacity
                else f"add {name} nodes: the reserve cannot grow past the class itself",
            )
        held_by_others = sum(
            milli for workload, milli in _held(inputs, name).items() if workload not in users
        )
        if usage.free < rule.reserve * usage.capacity:
            yield Finding(
                "info",
                "policy",
                "headroom-unmet-now",
                subject,
                f"{usage.free / WHOLE_GPU:g} of {capacity:g} {name} GPUs are free, below the "
                f"{reserve:g} reserve; other workloads hold {held_by_others / WHOLE_GPU:g}: "
                f"new pods of other workloads are {_OUTCOME[rule.mode]} on {name} until "
                "it recovers",
                "nothing, if this is a burst; otherwise add capacity or lower the reserve",
            )


def _held(inputs: DoctorInputs, name: ClassName) -> dict[WorkloadName, int]:
    held: dict[WorkloadName, int] = {}
    for node in inputs.cache.nodes():
        if node.gpu_class.name == name:
            for workload, milli in node.held.items():
                held[workload] = held.get(workload, 0) + milli
    return held


def _largest_pods(inputs: DoctorInputs) -> dict[WorkloadName, int]:
    """The most GPUs one pod of each workload class asks, among known pods."""
    largest: dict[WorkloadName, int] = {}
    for record in inputs.cache.pods():
        largest[record.workload] = max(largest.get(record.workload, 0), record.demand.gpus)
    for pending in inputs.pending:
        intent = pending.intent
        largest[intent.workload] = max(largest.get(intent.workload, 0), intent.demand.gpus)
    return largest


def _dedication(inputs: DoctorInputs) -> Iterator[Finding]:
    policy = inputs.policy
    for gpu_class, (workload, mode) in policy.dedicated_classes.items():
        if gpu_class not in workload_classes(policy, workload):
            yield Finding(
                "error",
                "policy",
                "dedicated-class-unusable",
                f"class/{gpu_class}",
                f"{gpu_class} is dedicated ({mode}) to {workload}, which may not use "
                f"{gpu_class}: no workload class is eligible for these nodes",
                f"dedicate {gpu_class} to a workload class that may use it, or allow "
                f"{gpu_class} for {workload}",
            )
    for node in sorted(inputs.cache.nodes(), key=lambda n: n.name):
        dedicated_to, node_class = node.dedicated_to, node.gpu_class.name
        if (
            dedicated_to is not None
            and node_class is not None
            and policy.keys.node_dedicated in node.labels  # the label, not its class's rule
            and node_class not in workload_classes(policy, dedicated_to)
        ):
            yield Finding(
                "warning",
                "policy",
                "dedicated-node-unusable",
                f"node/{node.name}",
                f"dedicated to {dedicated_to} by label, but {dedicated_to} may not use its "
                f"class {node_class}: only pods that override their classes can use it",
                f"dedicate it to a workload class that may use {node_class}, or remove "
                f"{policy.keys.node_dedicated}",
            )
