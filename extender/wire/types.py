"""The kube-scheduler extender/v1 wire types and the parts of Pod and Node we read.

Keys of the extender types are Go field names, capitalised (no json tags upstream); the
embedded Pod and Node use ordinary Kubernetes camelCase JSON. Unknown keys are ignored, as
Go's decoder does. Full Node objects are kept as raw bytes so the filter can echo them back
exactly as received.
"""

from __future__ import annotations

import msgspec

Quantity = str | int | float


class OwnerReference(msgspec.Struct, frozen=True):
    kind: str = ""
    name: str = ""
    controller: bool | None = None


class ObjectMeta(msgspec.Struct, frozen=True):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    resourceVersion: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    ownerReferences: list[OwnerReference] | None = None
    deletionTimestamp: str | None = None


class ResourceRequirements(msgspec.Struct, frozen=True):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class Container(msgspec.Struct, frozen=True):
    name: str = ""
    resources: ResourceRequirements | None = None


class PodSpec(msgspec.Struct, frozen=True):
    nodeName: str = ""
    schedulerName: str = ""
    priorityClassName: str = ""
    priority: int | None = None
    containers: list[Container] | None = None
    initContainers: list[Container] | None = None


class NodeSelectorRequirement(msgspec.Struct, frozen=True):
    """One expression of a node selector term (node affinity), as the API spells it."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


class PodStatus(msgspec.Struct, frozen=True):
    phase: str = ""


class Pod(msgspec.Struct, frozen=True):
    metadata: ObjectMeta = ObjectMeta()
    spec: PodSpec = PodSpec()
    status: PodStatus = PodStatus()


class Taint(msgspec.Struct, frozen=True):
    key: str = ""
    value: str = ""
    effect: str = ""


class NodeSpec(msgspec.Struct, frozen=True):
    unschedulable: bool = False
    taints: list[Taint] | None = None


class NodeStatus(msgspec.Struct, frozen=True):
    capacity: dict[str, Quantity] | None = None
    allocatable: dict[str, Quantity] | None = None


class Node(msgspec.Struct, frozen=True):
    metadata: ObjectMeta = ObjectMeta()
    spec: NodeSpec = NodeSpec()
    status: NodeStatus = NodeStatus()


class NodeList(msgspec.Struct):
    """A v1.NodeList whose items stay raw JSON, so they can be echoed back byte for byte."""

    items: list[msgspec.Raw] | None = None
    metadata: dict[str, object] = msgspec.field(default_factory=dict)


class ExtenderArgs(msgspec.Struct):
    """Body of a filter or prioritize call."""

    Pod: Pod | None = None
    Nodes: NodeList | None = None
    NodeNames: list[str] | None = None


class ExtenderFilterResult(msgspec.Struct):
    NodeNames: list[str] | None
    Nodes: NodeList | None
    FailedNodes: dict[str, str]
    FailedAndUnresolvableNodes: dict[str, str]
    Error: str = ""


class HostPriority(msgspec.Struct):
    Host: str
    Score: int


class ExtenderBindingArgs(msgspec.Struct):
    PodName: str = ""
    PodNamespace: str = ""
    PodUID: str = ""
    Node: str = ""


class ExtenderBindingResult(msgspec.Struct):
    Error: str = ""
