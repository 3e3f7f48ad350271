"""Node templates an autoscaler creates nodes from, read from its own objects.

cluster-autoscaler and Karpenter choose what to create by simulating the in-tree scheduler
on a template node (docs/autoscaling.md); the labels such a node would carry are what our
class derivation and a pod's node affinity will see. Sources:

- Karpenter `NodePool` (karpenter.sh/v1): `spec.template.metadata.labels` and
  `spec.template.spec.requirements` (a requirement `In` lists values one node may get);
- Cluster API `MachineDeployment`/`MachineSet`/`MachinePool`, as cluster-autoscaler's
  clusterapi provider reads them: the `capacity.cluster-autoscaler.kubernetes.io/labels`
  annotation (`key=value,...`) of a node group that scales from zero;
- AWS Auto Scaling groups (`aws autoscaling describe-auto-scaling-groups` output), as the
  aws provider reads them: tags `k8s.io/cluster-autoscaler/node-template/label/<key>`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson
import yaml

from extender.errors import WireError
from extender.policy.compiled import ClassName, Policy
from extender.policy.node_class import NodeClass, classify_node
from extender.wire.placement import Placement, requirement_matches
from extender.wire.types import NodeSelectorRequirement

CAPI_LABELS_ANNOTATION = "capacity.cluster-autoscaler.kubernetes.io/labels"
ASG_LABEL_TAG = "k8s.io/cluster-autoscaler/node-template/label/"
CAPI_KINDS = frozenset({"MachineDeployment", "MachineSet", "MachinePool"})
# Labels every node gets whatever its template says: a pod asking for one is not kept off
# a template that does not mention it.
WELL_KNOWN = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "node.kubernetes.io/instance-type",
    }
)
# Karpenter's GPU requirement keys (AWS provider): a NodePool naming one creates GPU nodes.
KARPENTER_GPU_KEYS = frozenset(
    {
        "karpenter.k8s.aws/instance-gpu-name",
        "karpenter.k8s.aws/instance-gpu-count",
        "karpenter.k8s.aws/instance-gpu-manufacturer",
    }
)
MAX_VARIANTS = 256


@dataclass(frozen=True, slots=True)
class NodeTemplate:
    """What nodes one node group or NodePool would get: fixed labels, and requirements
    whose `In` values are alternatives (one node gets one of them)."""

    kind: str
    name: str
    source: str  # "cluster" or the file it came from
    labels: dict[str, str]
    requirements: tuple[NodeSelectorRequirement, ...] = ()
    weight: int = 0  # a NodePool's spec.weight: Karpenter tries heavier pools first

    @property
    def subject(self) -> str:
        return f"{self.kind}/{self.name}"

    def variants(self, keys: frozenset[str]) -> Iterator[dict[str, str]]:
        """The label sets its nodes may carry, varying only `keys` (at most MAX_VARIANTS)."""
        choices = [
            [(r.key, v) for v in r.values]
            for r in self.requirements
            if r.operator == "In" and r.key in keys and r.key not in self.labels and r.values
        ]
        for picked in itertools.islice(itertools.product(*choices), MAX_VARIANTS):
            yield self.labels | dict(picked)

    def may_satisfy(self, placement: Placement, labels: Mapping[str, str]) -> bool:
        """Whether a node of this template with `labels` could meet a pod's constraints.

        A label the template neither sets nor constrains is unknown: well-known labels
        may take any value; others are absent (Karpenter and cluster-autoscaler do not
        invent custom labels).
        """

        def possible(req: NodeSelectorRequirement) -> bool:
            if req.key in labels:
                return requirement_matches(req, labels)
            own = [r for r in self.requirements if r.key == req.key]
            if own:
                return all(_overlaps(req, r) for r in own)
            if req.key in WELL_KNOWN:
                return req.operator != "DoesNotExist"
            return requirement_matches(req, labels)

        for key, value in placement.node_selector.items():
            if not possible(NodeSelectorRequirement(key, "In", (value,))):
                return False
        return not placement.terms or any(
            t.matchExpressions and all(possible(r) for r in t.matchExpressions)
            for t in placement.terms
        )

    def classes(self, policy: Policy) -> list[tuple[dict[str, str], NodeClass]]:
        """Each label variant that matters to classification, with the class it derives."""
        return [(v, classify_node(v, policy)) for v in self.variants(policy.node_label_keys)]


Derived = list[tuple[dict[str, str], NodeClass]]


def gpu_templates(
    templates: list[NodeTemplate], policy: Policy
) -> list[tuple[NodeTemplate, Derived]]:
    """The templates whose nodes have GPUs (as far as their labels and requirements tell),
    each with its classes derived once for every check that reads them."""
    found = []
    for template in templates:
        derived = template.classes(policy)
        mentioned = set(template.labels) | {r.key for r in template.requirements}
        if mentioned & (KARPENTER_GPU_KEYS | {policy.keys.node_class}) or any(
            c.product or c.finding for _, c in derived
        ):
            found.append((template, derived))
    return found


def _overlaps(pod: NodeSelectorRequirement, template: NodeSelectorRequirement) -> bool:
    """Whether some value allowed by the template's requirement meets the pod's."""
    if template.operator == "In":
        return any(requirement_matches(pod, {pod.key: v}) for v in template.values)
    if template.operator in ("Exists", "Gt", "Lt"):
        return pod.operator != "DoesNotExist"
    if template.operator == "DoesNotExist":
        return pod.operator in ("DoesNotExist", "NotIn")
    return True  # NotIn: almost any value remains


def templates_from_objects(objects: list[Any], source: str) -> list[NodeTemplate]:
    """Node templates from Kubernetes objects or an ASG description (others are skipped)."""
    found: list[NodeTemplate] = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        if isinstance(obj.get("AutoScalingGroups"), list):
            found.extend(_asg(g, source) for g in obj["AutoScalingGroups"] if isinstance(g, dict))
        elif isinstance(obj.get("items"), list):
            found.extend(templates_from_objects(obj["items"], source))
        elif obj.get("kind") == "NodePool" and str(obj.get("apiVersion", "")).startswith(
            "karpenter.sh/"
        ):
            found.append(_nodepool(obj, source))
        elif obj.get("kind") in CAPI_KINDS:
            template = _capi(obj, source)
            if template is not None:
                found.append(template)
    return found


def load_template_file(path: Path) -> list[NodeTemplate]:
    try:
        text = path.read_bytes()
        documents = (
            [orjson.loads(text)]
            if text.lstrip().startswith(b"{")
            else [d for d in yaml.safe_load_all(text) if d is not None]
        )
    except (OSError, yaml.YAMLError, orjson.JSONDecodeError) as exc:
        raise WireError(f"node templates {path}: {exc}") from None
    templates = templates_from_objects(documents, str(path))
    if not templates:
        raise WireError(
            f"node templates {path}: no Karpenter NodePool, Cluster API MachineDeployment/"
            "MachineSet/MachinePool or AWS AutoScalingGroups found"
        )
    return templates


def _nodepool(obj: dict[str, Any], source: str) -> NodeTemplate:
    template = (obj.get("spec") or {}).get("template") or {}
    labels = ((template.get("metadata") or {}).get("labels")) or {}
    raw = ((template.get("spec") or {}).get("requirements")) or []
    name = str((obj.get("metadata") or {}).get("name", "?"))
    try:
        requirements = msgspec.convert(raw, tuple[NodeSelectorRequirement, ...])
    except msgspec.ValidationError as exc:
        raise WireError(f"NodePool {name}: spec.template.spec.requirements: {exc}") from None
    weight = (obj.get("spec") or {}).get("weight") or 0
    if not isinstance(weight, int):
        raise WireError(f"NodePool {name}: spec.weight: {weight!r} is not an integer")
    return NodeTemplate(
        kind="NodePool",
        name=name,
        source=source,
        labels={str(k): str(v) for k, v in labels.items()},
        requirements=requirements,
        weight=weight,
    )


def _capi(obj: dict[str, Any], source: str) -> NodeTemplate | None:
    meta = obj.get("metadata") or {}
    annotation = (meta.get("annotations") or {}).get(CAPI_LABELS_ANNOTATION)
    if annotation is None:
        return None
    labels = dict(pair.split("=", 1) for pair in str(annotation).split(",") if "=" in pair)
    name = f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"
    return NodeTemplate(kind=str(obj["kind"]), name=name, source=source, labels=labels)


def _asg(group: dict[str, Any], source: str) -> NodeTemplate:
    labels = {
        str(t["Key"])[len(ASG_LABEL_TAG) :]: str(t.get("Value", ""))
        for t in group.get("Tags") or []
        if isinstance(t, dict) and str(t.get("Key", "")).startswith(ASG_LABEL_TAG)
    }
    name = str(group.get("AutoScalingGroupName", "?"))
    return NodeTemplate(kind="AutoScalingGroup", name=name, source=source, labels=labels)


def creatable_classes(templates: list[tuple[NodeTemplate, Derived]]) -> set[ClassName]:
    """The classes some template can create."""
    return {c.name for _, derived in templates for _, c in derived if c.name is not None}
