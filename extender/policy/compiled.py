"""The validated policy, compiled into look-up tables the rules read on the hot path."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Literal, NewType

from extender.policy.model import AttributeRequirement, PolicyDocument
from extender.policy.products import normalise_product, specificity

ClassName = NewType("ClassName", str)
WorkloadName = NewType("WorkloadName", str)
Mode = Literal["hard", "soft"]


@dataclass(frozen=True, slots=True)
class Keys:
    """Label and annotation keys, all under the policy's prefix unless set explicitly."""

    node_class: str
    node_dedicated: str
    node_dedicated_mode: str
    pod_workload: str
    pod_required_classes: str
    pod_min_class: str
    pod_excluded_classes: str
    pod_preferred_classes: str
    pod_tolerate_dedicated: str
    pod_gpu_milli: str
    pod_gpu_devices: str
    # The decision record our bind writes (rules.notes.decision_record).
    pod_decision_class: str
    pod_decision_score: str
    pod_decision_reason: str
    pod_decision_policy: str

    @classmethod
    def for_document(cls, doc: PolicyDocument) -> Keys:
        p = doc.label_prefix
        return cls(
            node_class=doc.node_classification.class_label or f"{p}class",
            node_dedicated=doc.dedicated.node_label or f"{p}dedicated",
            node_dedicated_mode=doc.dedicated.mode_label or f"{p}dedicated-mode",
            pod_workload=doc.workload_classification.label or f"{p}workload",
            pod_required_classes=f"{p}required-classes",
            pod_min_class=f"{p}min-class",
            pod_excluded_classes=f"{p}excluded-classes",
            pod_preferred_classes=f"{p}preferred-classes",
            pod_tolerate_dedicated=f"{p}tolerate-dedicated",
            pod_gpu_milli=f"{p}gpu-milli",
            pod_gpu_devices=f"{p}gpu-devices",
            pod_decision_class=f"{p}decision-class",
            pod_decision_score=f"{p}decision-score",
            pod_decision_reason=f"{p}decision-reason",
            pod_decision_policy=f"{p}decision-policy",
        )


@dataclass(frozen=True, slots=True)
class SeparationRule:
    avoid: frozenset[WorkloadName]
    mode: Literal["hard", "soft", "off"]
    topology_key: str


@dataclass(frozen=True, slots=True)
class WorkloadDefaults:
    """A workload class's GPU-class wishes, with class names resolved to ranks."""

    name: WorkloadName
    required_classes: frozenset[ClassName] | None
    min_class: ClassName | None
    excluded_classes: frozenset[ClassName]
    preferred_classes: tuple[ClassName, ...]
    attributes: tuple[AttributeRequirement, ...]
    separation: SeparationRule
    packing: Literal["pack", "spread", "fragmentation"]


@dataclass(frozen=True, slots=True)
class HeadroomRule:
    gpu_class: ClassName
    reserve: float
    for_workloads: frozenset[WorkloadName]
    mode: Mode


@dataclass(frozen=True, slots=True)
class Weights:
    class_fit: float
    separation: float
    headroom: float
    dedication: float
    packing: float

    def of(self, component: str) -> float:
        return float(getattr(self, component))


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything the rules need, resolved once per policy load."""

    document: PolicyDocument
    digest: str
    keys: Keys
    gpu_resource: str
    class_names: tuple[ClassName, ...]  # index is the rank; 0 is the highest tier
    rank_of: dict[ClassName, int]
    # (normalised pattern, class), most specific first: the first match wins.
    product_patterns: tuple[tuple[str, ClassName], ...]
    product_aliases: dict[str, str]
    instance_types: dict[str, str]
    workloads: dict[WorkloadName, WorkloadDefaults]
    default_workload: WorkloadName
    priority_class_workloads: dict[str, WorkloadName]
    owner_kind_workloads: dict[str, WorkloadName]
    dedicated_classes: dict[ClassName, tuple[WorkloadName, Mode]]
    default_dedication_mode: Mode
    headroom: dict[ClassName, HeadroomRule]
    weights: Weights
    topology_keys: frozenset[str] = field(default=frozenset())
    # Node labels any workload's GPU attribute requirements read, in a fixed order.
    attribute_keys: tuple[str, ...] = ()
    # Every node label classification or a rule reads; the cache keeps only these.
    node_label_keys: frozenset[str] = field(default=frozenset())
    # Workload class -> the classes it is kept apart from, either way (A avoids B or B
    # avoids A, mode not off): pods of these never share one GPU (rules/gpu_fit.py).
    apart: dict[WorkloadName, frozenset[WorkloadName]] = field(default_factory=dict)
    # Whether a rule reads nodes' free CPU (fragmentation packing): node shapes carry it.
    reads_cpu: bool = False
    # Wire score: relative to the request's best node, one point per `score_step` of the
    # weighted mean (0..1); None: absolute (the mean x 10, rounded).
    score_step: float | None = None

    @classmethod
    def compile(cls, doc: PolicyDocument, digest: str) -> Policy:
        """Build look-up tables; `doc` must already have passed semantic validation."""
        class_names = tuple(ClassName(c.name) for c in doc.gpu_classes)
        patterns = [
            (normalise_product(product), ClassName(c.name))
            for c in doc.gpu_classes
            for product in c.products
        ]
        patterns.sort(key=lambda item: -specificity(item[0]))  # stable: ties keep tier order
        workloads = {
            WorkloadName(name): WorkloadDefaults(
                name=WorkloadName(name),
                required_classes=(
                    None
                    if spec.required_classes is None
                    else frozenset(ClassName(c) for c in spec.required_classes)
                ),
                min_class=ClassName(spec.min_class) if spec.min_class else None,
                excluded_classes=frozenset(ClassName(c) for c in spec.excluded_classes),
                preferred_classes=tuple(ClassName(c) for c in spec.preferred_classes),
                attributes=spec.gpu_attributes,
                separation=SeparationRule(
                    avoid=frozenset(WorkloadName(w) for w in spec.separation.avoid),
                    mode=spec.separation.mode,
                    topology_key=spec.separation.topology_key,
                ),
                packing=spec.packing,
            )
            for name, spec in doc.workload_classes.items()
        }
        wc = doc.workload_classification
        return cls(
            document=doc,
            digest=digest,
            keys=Keys.for_document(doc),
            gpu_resource=doc.gpu_resource,
            class_names=class_names,
            rank_of={name: rank for rank, name in enumerate(class_names)},
            product_patterns=tuple(patterns),
            product_aliases={
                normalise_product(k): normalise_product(v)
                for k, v in doc.node_classification.aliases.items()
            },
            instance_types=dict(doc.node_classification.instance_types),
            workloads=workloads,
            default_workload=WorkloadName(wc.default),
            priority_class_workloads={
                k: WorkloadName(v) for k, v in wc.priority_class_names.items()
            },
            owner_kind_workloads={k: WorkloadName(v) for k, v in wc.owner_kinds.items()},
            dedicated_classes={
                ClassName(d.gpu_class): (WorkloadName(d.workload), d.mode)
                for d in doc.dedicated.classes
            },
            default_dedication_mode=doc.dedicated.default_mode,
            headroom={
                ClassName(h.gpu_class): HeadroomRule(
                    gpu_class=ClassName(h.gpu_class),
                    reserve=h.reserve,
                    for_workloads=frozenset(WorkloadName(w) for w in h.for_workloads),
                    mode=h.mode,
                )
                for h in doc.headroom
            },
            weights=Weights(
                class_fit=doc.weights.class_fit,
                separation=doc.weights.separation,
                headroom=doc.weights.headroom,
                dedication=doc.weights.dedication,
                packing=doc.weights.packing,
            ),
            topology_keys=frozenset(
                w.separation.topology_key
                for w in workloads.values()
                if w.separation.mode != "off" and w.separation.avoid
            ),
            attribute_keys=tuple(sorted({a.key for w in workloads.values() for a in w.attributes})),
            node_label_keys=_node_label_keys(doc, workloads),
            apart=_apart(workloads),
            reads_cpu=any(w.packing == "fragmentation" for w in workloads.values()),
            score_step=doc.scoring.step if doc.scoring.mode == "relative" else None,
        )

    @property
    def node_inputs(self) -> Hashable:
        """What the node facts a cache keeps depend on: equal across two policies, the
        facts kept under one serve the other; otherwise nodes must be read again."""
        return (self.gpu_resource, self.node_label_keys)

    @property
    def pod_inputs(self) -> Hashable:
        """As `node_inputs`, for the pod facts a cache keeps (GPU demand, workload label)."""
        return (
            self.gpu_resource,
            self.keys.pod_gpu_milli,
            self.keys.pod_gpu_devices,
            self.keys.pod_workload,
        )

    def rank(self, name: ClassName | None) -> int | None:
        return None if name is None else self.rank_of.get(name)


def _apart(
    workloads: dict[WorkloadName, WorkloadDefaults],
) -> dict[WorkloadName, frozenset[WorkloadName]]:
    avoids = {
        name: w.separation.avoid if w.separation.mode != "off" else frozenset()
        for name, w in workloads.items()
    }
    return {
        name: frozenset(avoids[name] | {other for other in workloads if name in avoids[other]})
        - {name}
        for name in workloads
    }


def _node_label_keys(
    doc: PolicyDocument, workloads: dict[WorkloadName, WorkloadDefaults]
) -> frozenset[str]:
    nc = doc.node_classification
    keys = Keys.for_document(doc)
    return frozenset(
        {
            *nc.product_labels,
            nc.instance_type_label,
            nc.memory_label,
            *nc.memory_fallback_labels,
            nc.count_label,
            *nc.count_fallback_labels,
            keys.node_class,
            keys.node_dedicated,
            keys.node_dedicated_mode,
            *(a.key for w in workloads.values() for a in w.attributes),
            *(w.separation.topology_key for w in workloads.values()),
        }
    )
