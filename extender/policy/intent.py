"""What a pod wants: its workload class, GPU demand and GPU-class wishes, from pod + policy."""

from __future__ import annotations

from dataclasses import dataclass

from extender.policy.compiled import ClassName, Policy, WorkloadName
from extender.policy.loader import allowed_classes
from extender.policy.model import AttributeRequirement
from extender.wire.quantity import QuantityError, millicores, whole_units
from extender.wire.types import Container, Pod

WHOLE_GPU = 1000
MAX_GPUS_PER_NODE = 1024
"""Far above any real node (8-16 GPUs). A larger count is a broken device plugin or a
hostile request; counts are capped here so every figure stays a plain 64-bit number."""


@dataclass(frozen=True, slots=True, weakref_slot=True)
class GpuDemand:
    """GPUs a pod needs: `gpus` devices with `milli` thousandths of each (1000 = whole)."""

    gpus: int
    milli: int = WHOLE_GPU

    @property
    def total_milli(self) -> int:
        return self.gpus * self.milli


NO_GPU = GpuDemand(0)


@dataclass(frozen=True, slots=True)
class PodIntent:
    """Everything the rules need to know about a pod, resolved once per request."""

    namespace: str
    name: str
    uid: str
    workload: WorkloadName
    workload_source: str
    demand: GpuDemand
    allowed: frozenset[ClassName]
    allowed_text: str
    preferred: tuple[ClassName, ...]
    attributes: tuple[AttributeRequirement, ...]
    tolerates_dedicated: frozenset[WorkloadName] | None  # None: tolerates every dedication
    conflicts: tuple[str, ...] = ()
    # True when the pod asks for GPUs, even in a form we cannot read (then in `conflicts`).
    wants_gpus: bool = True
    # Its CPU request in millicores, as the scheduler counts it (fragmentation reads it).
    cpu_milli: int = 0
    # Its controller (`owner_of`): whose replicas `packing: spread` keeps apart; "" if none.
    owner: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _container_gpus(container: Container, resource: str) -> tuple[int, str | None]:
    resources = container.resources
    if resources is None:
        return 0, None
    request = (resources.requests or {}).get(resource)
    limit = (resources.limits or {}).get(resource)
    try:
        requested = whole_units(request) if request is not None else None
        limited = whole_units(limit) if limit is not None else None
    except QuantityError as exc:
        return 0, f"container {container.name}: {resource} {exc}"
    if requested is not None and limited is not None and requested != limited:
        return 0, (
            f"container {container.name}: {resource} request {requested} differs from limit "
            f"{limited} (extended resources need equal request and limit)"
        )
    # Kubernetes defaults an extended resource's request to its limit.
    return (requested if requested is not None else limited or 0), None


def gpu_demand(pod: Pod, policy: Policy) -> tuple[GpuDemand, list[str]]:
    """The pod's effective GPU request, as the scheduler computes it, and any problems."""
    problems: list[str] = []
    resource = policy.gpu_resource
    total = 0
    for container in pod.spec.containers or ():
        count, problem = _container_gpus(container, resource)
        total += count
        if problem:
            problems.append(problem)
    init_max = 0
    for container in pod.spec.initContainers or ():
        count, problem = _container_gpus(container, resource)
        init_max = max(init_max, count)
        if problem:
            problems.append(problem)
    gpus = max(total, init_max)
    if gpus > MAX_GPUS_PER_NODE:
        problems.append(f"asks for {gpus} {resource}; no node holds more than {MAX_GPUS_PER_NODE}")
        gpus = MAX_GPUS_PER_NODE + 1  # fits nowhere, and stays serialisable
    milli = WHOLE_GPU
    raw_milli = (pod.metadata.annotations or {}).get(policy.keys.pod_gpu_milli)
    if raw_milli is not None and gpus:
        if not raw_milli.strip().isdigit() or not 1 <= int(raw_milli) <= WHOLE_GPU:
            problems.append(
                f"annotation {policy.keys.pod_gpu_milli}={raw_milli!r} is not an integer 1..1000"
            )
        elif int(raw_milli) < WHOLE_GPU and gpus != 1:
            problems.append(
                f"annotation {policy.keys.pod_gpu_milli}={raw_milli} shares a GPU, which needs "
                f"exactly 1 {resource}, not {gpus}"
            )
        else:
            milli = int(raw_milli)
    return GpuDemand(gpus, milli), problems


def _container_cpu(container: Container) -> int:
    resources = container.resources
    if resources is None:
        return 0
    # The API server defaults a missing request to the limit.
    return millicores((resources.requests or {}).get("cpu") or (resources.limits or {}).get("cpu"))


def cpu_request(pod: Pod) -> int:
    """The pod's CPU request in millicores as the scheduler computes it: its containers'
    sum, or its largest init container's when that is more."""
    total = sum(_container_cpu(c) for c in pod.spec.containers or ())
    init = max((_container_cpu(c) for c in pod.spec.initContainers or ()), default=0)
    return max(total, init)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class WorkloadInputs:
    """The parts of a pod its workload class is resolved from (hashable, so shareable)."""

    label: str | None
    priority_class: str
    owner_kinds: tuple[str, ...]
    # Not an input of the class: its controller (`owner_of`), kept with them because
    # replicas of one controller share all of these (the cache keeps one per controller).
    controller: str = ""


def workload_inputs(pod: Pod, policy: Policy) -> WorkloadInputs:
    return WorkloadInputs(
        label=(pod.metadata.labels or {}).get(policy.keys.pod_workload),
        priority_class=pod.spec.priorityClassName,
        owner_kinds=tuple(owner.kind for owner in pod.metadata.ownerReferences or ()),
        controller=owner_of(pod),
    )


def owner_of(pod: Pod) -> str:
    """The pod's controller as namespace/kind/name (a ReplicaSet, StatefulSet, Job...), or
    "" when no owner reference is marked controller: the replicas `packing: spread` keeps
    on different nodes."""
    for owner in pod.metadata.ownerReferences or ():
        if owner.controller:
            return f"{pod.metadata.namespace}/{owner.kind}/{owner.name}"
    return ""


def workload_from(inputs: WorkloadInputs, policy: Policy) -> tuple[WorkloadName | None, str]:
    """Label first, then priorityClassName, then owner kind, then the default."""
    if inputs.label is not None:
        known = WorkloadName(inputs.label) if inputs.label in policy.workloads else None
        return known, f"label {policy.keys.pod_workload}"
    by_priority = policy.priority_class_workloads.get(inputs.priority_class)
    if inputs.priority_class and by_priority is not None:
        return by_priority, f"priorityClassName {inputs.priority_class}"
    for kind in inputs.owner_kinds:
        by_owner = policy.owner_kind_workloads.get(kind)
        if by_owner is not None:
            return by_owner, f"owner {kind}"
    return policy.default_workload, "default"


def pod_intent(pod: Pod, policy: Policy) -> PodIntent:
    """Resolve a pod against the policy; contradictions are collected, never raised."""
    keys = policy.keys
    annotations = pod.metadata.annotations or {}
    conflicts: list[str] = []

    inputs = workload_inputs(pod, policy)
    workload, source = workload_from(inputs, policy)
    if workload is None:
        label = (pod.metadata.labels or {}).get(keys.pod_workload)
        conflicts.append(
            f"pod label {keys.pod_workload}={label} names no workload class "
            f"(known: {', '.join(sorted(policy.workloads))})"
        )
        workload = policy.default_workload
    defaults = policy.workloads[workload]

    demand, problems = gpu_demand(pod, policy)
    conflicts.extend(problems)

    def classes_from(key: str) -> list[ClassName] | None:
        if key not in annotations:
            return None
        names = _split(annotations[key])
        unknown = [n for n in names if n not in policy.rank_of]
        if unknown:
            conflicts.append(
                f"annotation {key} names unknown GPU class(es) {', '.join(unknown)} "
                f"(known: {', '.join(policy.class_names)})"
            )
        return [ClassName(n) for n in names if n in policy.rank_of]

    required = classes_from(keys.pod_required_classes)
    min_class_list = classes_from(keys.pod_min_class)
    excluded = classes_from(keys.pod_excluded_classes) or []
    preferred = classes_from(keys.pod_preferred_classes)
    if min_class_list is not None and len(min_class_list) > 1:
        conflicts.append(f"annotation {keys.pod_min_class} must name one class")

    if required is not None or min_class_list is not None:
        # A pod's own required/minimum wish replaces its workload class's default pair.
        req: list[ClassName] | frozenset[ClassName] | None = required
        min_class = min_class_list[0] if min_class_list else None
    else:
        req, min_class = defaults.required_classes, defaults.min_class
    all_excluded = set(excluded) | set(defaults.excluded_classes)
    allowed = allowed_classes(list(policy.class_names), req, min_class, all_excluded)
    unknown_named = any("names unknown GPU class" in c for c in conflicts)
    if not allowed and not unknown_named:
        wishes = []
        if req is not None:
            wishes.append(f"requires {' or '.join(sorted(req)) or 'no class'}")
        if min_class is not None:
            wishes.append(f"needs at least {min_class}")
        if all_excluded:
            wishes.append(f"excludes {', '.join(sorted(all_excluded))}")
        conflicts.append(f"GPU-class wishes contradict: pod {' but '.join(wishes)}")

    tolerate = annotations.get(keys.pod_tolerate_dedicated)
    tolerated: frozenset[WorkloadName] | None = frozenset({workload})
    if tolerate is not None:
        names = _split(tolerate)
        tolerated = None if "*" in names else frozenset(WorkloadName(n) for n in names) | {workload}

    return PodIntent(
        namespace=pod.metadata.namespace,
        name=pod.metadata.name,
        uid=pod.metadata.uid,
        workload=workload,
        workload_source=source,
        demand=demand,
        allowed=frozenset(ClassName(c) for c in allowed),
        allowed_text=_describe_allowed(allowed, policy),
        preferred=tuple(preferred) if preferred is not None else defaults.preferred_classes,
        attributes=defaults.attributes,
        tolerates_dedicated=tolerated,
        conflicts=tuple(conflicts),
        wants_gpus=demand.gpus > 0 or bool(problems),
        cpu_milli=cpu_request(pod),
        owner=inputs.controller,
    )


def _describe_allowed(allowed: list[str], policy: Policy) -> str:
    if not allowed:
        return "no class"
    if len(allowed) == len(policy.class_names):
        return "any class"
    ranks = [policy.rank_of[ClassName(c)] for c in allowed]
    if ranks == list(range(len(ranks))):
        return f"{allowed[-1]} or better"
    return " or ".join(allowed)
