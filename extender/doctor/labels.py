"""Label findings: GPU nodes whose labels disagree, cannot be classified, or name products
the policy does not map, and classes no node belongs to."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from extender.doctor.findings import Finding
from extender.doctor.inputs import DoctorInputs
from extender.policy.node_class import class_for_product, node_product


def check(inputs: DoctorInputs) -> Iterator[Finding]:
    policy = inputs.policy
    keys = policy.keys
    nc = policy.document.node_classification
    unmapped: dict[str, list[str]] = defaultdict(list)
    members: dict[str, int] = defaultdict(int)
    for node in sorted(inputs.cache.nodes(), key=lambda n: n.name):
        labels = inputs.node_labels.get(node.name, node.labels)
        subject = f"node/{node.name}"
        gpu_class = node.gpu_class
        if gpu_class.name is not None:
            members[gpu_class.name] += 1
        yield from _products_disagree(inputs, node.name, labels)
        explicit = labels.get(keys.node_class)
        if gpu_class.finding and "disagrees with" in gpu_class.finding:
            derived = class_for_product(gpu_class.product or "", policy)
            yield Finding(
                "warning",
                "labels",
                "class-label-disagrees",
                subject,
                gpu_class.finding,
                f"set {keys.node_class}={derived} on the node (or remove the label) if the "
                f"hardware labels are right; otherwise fix the product labels",
            )
        elif (
            explicit is not None and gpu_class.finding and "names no GPU class" in gpu_class.finding
        ):
            yield Finding(
                "warning",
                "labels",
                "unknown-class-label",
                subject,
                gpu_class.finding,
                f"relabel with one of {', '.join(policy.class_names)}, or add the class "
                "to the policy's gpuClasses",
            )
        if inputs.class_affinity_pods and gpu_class.name is not None and explicit is None:
            yield Finding(
                "warning",
                "labels",
                "node-without-class-label",
                subject,
                f"{inputs.class_affinity_pods} pod(s) require {keys.node_class} in their node "
                "affinity (the admission webhook mirrors classes there), and this "
                f"{gpu_class.name} node lacks the label: the scheduler keeps them off it",
                f"label it {keys.node_class}={gpu_class.name} (and its node template, so new "
                "nodes carry it)",
            )
        if gpu_class.product and class_for_product(gpu_class.product, policy) is None:
            unmapped[gpu_class.product].append(node.name)
        elif node.gpu_count and gpu_class.name is None and not gpu_class.product:
            yield Finding(
                "error",
                "labels",
                "gpu-node-unclassified",
                subject,
                f"node has {node.gpu_count} GPU(s) but no label a class can be derived from "
                f"({', '.join(nc.product_labels)}, a mapped {nc.instance_type_label}, or "
                f"{keys.node_class}); every class-restricted pod rejects it",
                "run NVIDIA GPU Feature Discovery on it, or label it "
                f"{keys.node_class}=<class>, or map its instance type under "
                "nodeClassification.instanceTypes",
            )
        for other in node.findings:
            if other != gpu_class.finding:
                yield Finding(
                    "warning", "labels", "node-label-invalid", subject, other, "fix the label"
                )
    for product, nodes in sorted(unmapped.items()):
        yield Finding(
            "error",
            "labels",
            "unmapped-product",
            f"product/{product}",
            f"GPU product {product} on {len(nodes)} node(s) ({_few(nodes)}) matches no "
            "class's products; those nodes have no class",
            f"add {product} to the products of a class in the policy's gpuClasses (or an "
            "alias under nodeClassification.aliases)",
        )
    for name in policy.class_names:
        if not members.get(name):
            yield Finding(
                "warning",
                "labels",
                "class-without-nodes",
                f"class/{name}",
                f"no node belongs to GPU class {name}; pods that require it stay Pending",
                f"add nodes of {name} (products: "
                f"{', '.join(_products_of(inputs, name)) or 'none listed'}), or remove the "
                "class if it is no longer offered",
            )


def _products_disagree(
    inputs: DoctorInputs, node: str, labels: dict[str, str]
) -> Iterator[Finding]:
    """Two product labels on one node naming GPUs of different classes."""
    policy = inputs.policy
    derived: dict[str, tuple[str, str | None]] = {}
    for key in policy.document.node_classification.product_labels:
        if labels.get(key):
            product, _ = node_product({key: labels[key], **_memory(inputs, labels)}, policy)
            if product:
                derived[key] = (product, class_for_product(product, policy))
    classes = {c for _, c in derived.values()}
    if len(classes) > 1:
        first = next(iter(derived))
        said = "; ".join(f"{k}={labels[k]} ({c or 'no class'})" for k, (_, c) in derived.items())
        yield Finding(
            "warning",
            "labels",
            "product-labels-disagree",
            f"node/{node}",
            f"product labels name GPUs of different classes: {said}; {first} wins",
            "fix the stale label (GPU Feature Discovery rewrites nvidia.com/gpu.product; a "
            "cloud or Karpenter label comes from the instance)",
        )


def _memory(inputs: DoctorInputs, labels: dict[str, str]) -> dict[str, str]:
    key = inputs.policy.document.node_classification.memory_label
    return {key: labels[key]} if key in labels else {}


def _products_of(inputs: DoctorInputs, name: str) -> list[str]:
    spec = next(c for c in inputs.policy.document.gpu_classes if c.name == name)
    return list(spec.products)


def _few(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
