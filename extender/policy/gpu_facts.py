"""GPU memory and count of a node, from the best source it carries, and where each came from.

GPU Feature Discovery labels nodes with `nvidia.com/gpu.memory` (MiB) and
`nvidia.com/gpu.count`; GKE labels only the accelerator (`cloud.google.com/gke-accelerator:
nvidia-h100-80gb`); Karpenter's AWS provider labels the instance's GPUs
(`karpenter.k8s.aws/instance-gpu-memory`, MiB per GPU, and `-gpu-count`) on the node
template, before the node exists, while GFD runs only once the node has booted. A policy
asking `nvidia.com/gpu.memory Gt 20000` would otherwise refuse every GKE H100 node.

So the GPU memory is read, in order, from the policy's memory label, its fallback labels,
a memory token in the product's name (`H100-80GB`), and the product catalogue below (or
the policy's `productMemory`); the count from the count label, its fallbacks and the
node's allocatable GPUs. `gpuAttributes` on the memory or count label read these facts
(`attribute_labels`), and `explain` shows their source.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from extender.policy.compiled import Policy
from extender.policy.products import normalise_product, pattern_matches, specificity

MIB_PER_GB = 1024

# GB per GPU as sold, for products that come in one size. A product sold in several
# (A100 40/80, V100 16/32, P100 12/16, GH200 96/144) has no entry: its name or a label must
# say which, or the memory stays unknown rather than guessed.
CATALOGUE_GB: dict[str, int] = {
    "B200": 180,
    "H200": 141,
    "H100-NVL": 94,
    "H100": 80,
    "H20": 96,
    "L40S": 48,
    "L40": 48,
    "A40": 48,
    "A30": 24,
    "A10G": 24,
    "A10": 24,
    "L4": 24,
    "A16": 16,
    "T4G": 16,
    "T4": 16,
    "P4": 8,
    "K80": 12,
    "M60": 8,
}
# GKE accelerator names whose size the normalised product loses (GKE's A100 40 GB type).
GKE_ACCELERATOR_GB: dict[str, int] = {"nvidia-tesla-a100": 40, "nvidia-tesla-v100": 16}
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"

# Where labels a requirement may read normally come from, by key prefix (doctor, explain).
LABEL_ORIGINS: tuple[tuple[str, str], ...] = (
    ("nvidia.com/", "NVIDIA GPU Feature Discovery, once the node has booted"),
    ("karpenter.k8s.aws/", "Karpenter's AWS provider, on the nodes it creates"),
    ("cloud.google.com/", "GKE, on its node pools"),
    ("node.kubernetes.io/", "the kubelet and cloud provider"),
    ("topology.kubernetes.io/", "the kubelet and cloud provider"),
)


def label_origin(key: str) -> str | None:
    """Who normally sets a node label, or None for a key we know nothing of."""
    return next((origin for prefix, origin in LABEL_ORIGINS if key.startswith(prefix)), None)


@dataclass(frozen=True, slots=True)
class GpuFact:
    """A number about a node's GPUs and where it was read."""

    value: int
    source: str


@dataclass(frozen=True, slots=True)
class GpuFacts:
    memory_mib: GpuFact | None  # per GPU
    count: GpuFact | None
    findings: tuple[str, ...] = ()


def _label_number(
    labels: Mapping[str, str], keys: tuple[str, ...], findings: list[str]
) -> GpuFact | None:
    for key in keys:
        value = labels.get(key)
        if value is None:
            continue
        if value.isascii() and value.isdigit() and int(value) > 0:
            return GpuFact(int(value), f"label {key}")
        findings.append(f"label {key}={value!r} is not a positive whole number; not read")
    return None


def labelled_memory(labels: Mapping[str, str], policy: Policy) -> GpuFact | None:
    """GPU memory (MiB) from the labels that state it; none from the product name."""
    nc = policy.document.node_classification
    return _label_number(labels, (nc.memory_label, *nc.memory_fallback_labels), [])


def catalogue_memory(product: str, labels: Mapping[str, str], policy: Policy) -> GpuFact | None:
    """GPU memory (MiB) a product's name or the catalogue gives."""
    memory_tokens = [t for t in product.split("-") if t.endswith("GB") and t[:-2].isdigit()]
    if memory_tokens:
        return GpuFact(int(memory_tokens[0][:-2]) * MIB_PER_GB, f"product name {product}")
    gke = labels.get(GKE_ACCELERATOR_LABEL)
    if gke in GKE_ACCELERATOR_GB and normalise_product(gke) == product.split("-")[0]:
        return GpuFact(GKE_ACCELERATOR_GB[gke] * MIB_PER_GB, f"GKE accelerator {gke}")
    for table, where in (
        (policy.document.node_classification.product_memory, "policy productMemory"),
        (CATALOGUE_GB, "catalogue"),
    ):
        matching = [p for p in table if pattern_matches(normalise_product(p), product)]
        if matching:
            best = max(matching, key=specificity)
            return GpuFact(table[best] * MIB_PER_GB, f"{where}: {best} has {table[best]} GB")
    return None


_MEMO: dict[Hashable, GpuFacts] = {}
_MEMO_LIMIT = 4096


def gpu_facts(
    labels: Mapping[str, str], product: str | None, allocatable: int, policy: Policy
) -> GpuFacts:
    """The node's GPU memory per GPU and GPU count, each from its best source.

    A fleet's nodes repeat a few label sets: equal inputs share one result, so that a large
    cluster keeps one GpuFacts per kind of node, not one per node."""
    nc = policy.document.node_classification
    keys = (nc.memory_label, *nc.memory_fallback_labels, nc.count_label, *nc.count_fallback_labels)
    memo_key = (
        keys,
        tuple(labels.get(key) for key in (*keys, GKE_ACCELERATOR_LABEL)),
        product,
        allocatable,
        tuple(sorted(nc.product_memory.items())),
        policy.gpu_resource,
    )
    found = _MEMO.get(memo_key)
    if found is None:
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        found = _MEMO[memo_key] = _derive(labels, product, allocatable, policy)
    return found


def _derive(
    labels: Mapping[str, str], product: str | None, allocatable: int, policy: Policy
) -> GpuFacts:
    nc = policy.document.node_classification
    findings: list[str] = []
    memory = _label_number(labels, (nc.memory_label, *nc.memory_fallback_labels), findings)
    if memory is None and product:
        memory = catalogue_memory(product, labels, policy)
    count = _label_number(labels, (nc.count_label, *nc.count_fallback_labels), findings)
    if count is None and allocatable > 0:
        count = GpuFact(allocatable, f"allocatable {policy.gpu_resource}")
    return GpuFacts(memory, count, tuple(findings))


def attribute_labels(labels: dict[str, str], facts: GpuFacts, policy: Policy) -> dict[str, str]:
    """The labels gpuAttributes read: the node's, with the memory and count labels set to
    the facts (the same dict when they add nothing)."""
    nc = policy.document.node_classification
    extra = {
        key: str(fact.value)
        for key, fact in ((nc.memory_label, facts.memory_mib), (nc.count_label, facts.count))
        if fact is not None and labels.get(key) != str(fact.value)
    }
    return labels | extra if extra else labels
