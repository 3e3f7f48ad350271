"""Layer 2: the admin's policy: validated, compiled, and applied to nodes and pods."""

from extender.policy.compiled import (
    ClassName,
    HeadroomRule,
    Keys,
    Policy,
    SeparationRule,
    WorkloadDefaults,
    WorkloadName,
)
from extender.policy.intent import NO_GPU, WHOLE_GPU, GpuDemand, PodIntent, gpu_demand, pod_intent
from extender.policy.loader import dump_policy, load_policy_file, load_policy_text
from extender.policy.mirror import class_affinity_patch, mirrored_requirement
from extender.policy.node_class import UNCLASSIFIED, NodeClass, classify_node
from extender.policy.products import normalise_product
from extender.policy.store import PolicyStore

__all__ = [
    "NO_GPU",
    "UNCLASSIFIED",
    "WHOLE_GPU",
    "ClassName",
    "GpuDemand",
    "HeadroomRule",
    "Keys",
    "NodeClass",
    "PodIntent",
    "Policy",
    "PolicyStore",
    "SeparationRule",
    "WorkloadDefaults",
    "WorkloadName",
    "class_affinity_patch",
    "classify_node",
    "dump_policy",
    "gpu_demand",
    "load_policy_file",
    "load_policy_text",
    "mirrored_requirement",
    "normalise_product",
    "pod_intent",
]
