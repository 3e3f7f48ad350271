"""Per-node features the rules read, derived from the Node object and the policy."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from extender.policy.compiled import Mode, Policy, WorkloadName
from extender.policy.gpu_facts import GpuFacts, attribute_labels, gpu_facts
from extender.policy.intent import MAX_GPUS_PER_NODE, WHOLE_GPU
from extender.policy.node_class import NodeClass, classify_node
from extender.state.devices import DeviceHolders, apart_devices, no_holders
from extender.wire.quantity import QuantityError, millicores, whole_units
from extender.wire.types import Node, Quantity

if TYPE_CHECKING:
    from extender.state.shapes import NodeShape

HOSTNAME_KEY = "kubernetes.io/hostname"
CPU_STEP = 1000
"""Granularity of free CPU in node shapes (millicores)."""


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the cache keeps of a Node object: only what the policy reads.

    Features are derived from these, so a new policy that reads the same inputs
    (`Policy.node_inputs`) is applied without reading the nodes again.
    """

    name: str
    resource_version: str
    labels: dict[str, str]  # only the keys in Policy.node_label_keys
    gpu_allocatable: Quantity | None
    unschedulable: bool
    cpu_allocatable: int = 0  # millicores; 0 when the node reports none we can read


def node_facts(node: Node, policy: Policy) -> NodeFacts:
    # Label values repeat across a fleet (products, zones, classes): intern them.
    labels = node.metadata.labels or {}
    kept = {
        sys.intern(key): sys.intern(labels[key]) for key in policy.node_label_keys if key in labels
    }
    return NodeFacts(
        name=sys.intern(node.metadata.name),
        resource_version=node.metadata.resourceVersion,
        labels=kept,
        gpu_allocatable=(node.status.allocatable or {}).get(policy.gpu_resource),
        unschedulable=node.spec.unschedulable,
        cpu_allocatable=millicores((node.status.allocatable or {}).get("cpu")),
    )


@dataclass(slots=True)
class NodeFeatures:
    """What the rules know about one node. Only ClusterCache changes the usage fields."""

    facts: NodeFacts
    name: str
    resource_version: str
    labels: dict[str, str]
    gpu_class: NodeClass
    gpu_count: int
    dedicated_to: WorkloadName | None
    dedication_mode: Mode
    domains: dict[str, str]  # topology key -> domain value, for the keys the policy uses
    unschedulable: bool
    findings: tuple[str, ...]
    gpu_facts: GpuFacts
    # The labels gpuAttributes read: `labels` with GPU memory and count from their best source.
    attribute_labels: dict[str, str]
    # Usage, updated on pod events:
    free: list[int] = field(default_factory=list)  # per device, milli-GPU
    holders: DeviceHolders = field(default_factory=list)  # per device, milli per workload
    cpu_free: int = 0  # millicores: allocatable less the requests of the pods bound here
    held: dict[WorkloadName, int] = field(default_factory=dict)  # milli-GPU per workload
    # Interned summary of all the above that rules read; set by the cache on every change.
    shape: NodeShape | None = None

    @property
    def capacity_milli(self) -> int:
        return self.gpu_count * WHOLE_GPU

    @property
    def free_milli(self) -> int:
        return sum(f for f in self.free if f > 0)

    @property
    def cpu_room(self) -> int:
        """Free CPU as the rules read it: whole cores (floored), so that nodes a core apart
        share one shape; unbounded (-1) when the node reports no CPU."""
        if self.facts.cpu_allocatable <= 0:
            return -1
        return max(0, self.cpu_free) // CPU_STEP * CPU_STEP

    def apart_devices(self, apart: frozenset[WorkloadName]) -> frozenset[int]:
        """Devices a sharing pod kept apart from these workload classes may not use."""
        return apart_devices(self.holders, apart)


def domain_of(node_name: str, labels: dict[str, str], key: str) -> str:
    """The node's domain for a topology key; a node without the label is its own domain."""
    value = labels.get(key)
    if value is None:
        return node_name if key == HOSTNAME_KEY else f"{key}=<unset>@{node_name}"
    return value


def node_features(node: Node, policy: Policy) -> NodeFeatures:
    """Static features of a node (usage starts empty; the cache charges its pods)."""
    return features_of(node_facts(node, policy), policy)


def features_of(facts: NodeFacts, policy: Policy) -> NodeFeatures:
    labels = facts.labels
    findings: list[str] = []
    gpu_class = classify_node(labels, policy)
    if gpu_class.finding:
        findings.append(gpu_class.finding)

    gpu_count = 0
    if facts.gpu_allocatable is not None:
        try:
            gpu_count = whole_units(facts.gpu_allocatable)
        except QuantityError as exc:
            findings.append(f"allocatable {policy.gpu_resource}: {exc}")
        if gpu_count > MAX_GPUS_PER_NODE:
            findings.append(
                f"allocatable {policy.gpu_resource}: {facts.gpu_allocatable!r} is more GPUs "
                f"than a node holds (at most {MAX_GPUS_PER_NODE}); counted as none"
            )
            gpu_count = 0

    gpus = gpu_facts(labels, gpu_class.product, gpu_count, policy)
    findings.extend(gpus.findings)
    dedicated_to, mode = _dedication(labels, gpu_class, policy, findings)
    name = facts.name
    return NodeFeatures(
        facts=facts,
        name=name,
        resource_version=facts.resource_version,
        labels=labels,
        gpu_class=gpu_class,
        gpu_count=gpu_count,
        dedicated_to=dedicated_to,
        dedication_mode=mode,
        domains={key: domain_of(name, labels, key) for key in policy.topology_keys},
        unschedulable=facts.unschedulable,
        findings=tuple(findings),
        gpu_facts=gpus,
        attribute_labels=attribute_labels(labels, gpus, policy),
        free=[WHOLE_GPU] * gpu_count,
        holders=no_holders(gpu_count),
        cpu_free=facts.cpu_allocatable,
    )


def _dedication(
    labels: dict[str, str], gpu_class: NodeClass, policy: Policy, findings: list[str]
) -> tuple[WorkloadName | None, Mode]:
    """A node label dedicates the node; otherwise its class's dedication applies."""
    keys = policy.keys
    value = labels.get(keys.node_dedicated)
    if value is not None:
        if value not in policy.workloads:
            findings.append(
                f"label {keys.node_dedicated}={value} names no workload class "
                f"(known: {', '.join(sorted(policy.workloads))}); ignored"
            )
        else:
            mode_value = labels.get(keys.node_dedicated_mode, policy.default_dedication_mode)
            if mode_value not in ("hard", "soft"):
                findings.append(
                    f"label {keys.node_dedicated_mode}={mode_value} is not hard or soft; "
                    f"using {policy.default_dedication_mode}"
                )
                mode_value = policy.default_dedication_mode
            mode: Mode = "hard" if mode_value == "hard" else "soft"
            return WorkloadName(value), mode
    if gpu_class.name is not None and gpu_class.name in policy.dedicated_classes:
        return policy.dedicated_classes[gpu_class.name]
    return None, policy.default_dedication_mode
