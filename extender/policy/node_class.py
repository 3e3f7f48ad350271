"""Which GPU class a node belongs to, derived from the labels it carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from extender.policy.compiled import ClassName, Policy
from extender.policy.gpu_facts import labelled_memory
from extender.policy.products import normalise_product, pattern_matches, with_memory


@dataclass(frozen=True, slots=True)
class NodeClass:
    """A node's class and how it was found; `finding` is set when an admin should look."""

    name: ClassName | None
    rank: int | None
    product: str | None
    source: str
    finding: str | None = None


UNCLASSIFIED = NodeClass(name=None, rank=None, product=None, source="none")


def node_product(labels: Mapping[str, str], policy: Policy) -> tuple[str | None, str]:
    """The node's normalised GPU product and the label it came from."""
    nc = policy.document.node_classification
    for key in nc.product_labels:
        value = labels.get(key)
        if value:
            return _canonical(value, labels, policy), key
    instance_type = labels.get(nc.instance_type_label)
    if instance_type and instance_type in policy.instance_types:
        return _canonical(
            policy.instance_types[instance_type], labels, policy
        ), nc.instance_type_label
    return None, "none"


def _canonical(value: str, labels: Mapping[str, str], policy: Policy) -> str:
    product = normalise_product(value)
    product = policy.product_aliases.get(product, product)
    memory = labelled_memory(labels, policy)
    return with_memory(product, memory.value if memory is not None else None)


def class_for_product(product: str, policy: Policy) -> ClassName | None:
    for pattern, name in policy.product_patterns:
        if pattern_matches(pattern, product):
            return name
    return None


def classify_node(labels: Mapping[str, str], policy: Policy) -> NodeClass:
    """The node's class: explicit label and derived product, reconciled by the policy.

    When both exist and disagree, `nodeClassification.onConflict` decides which wins and
    the disagreement is kept as a finding (metric, log, doctor).
    """
    product, source = node_product(labels, policy)
    derived = class_for_product(product, policy) if product else None
    explicit_value = labels.get(policy.keys.node_class)
    explicit = ClassName(explicit_value) if explicit_value in policy.rank_of else None

    finding = None
    if explicit_value is not None and explicit is None:
        finding = (
            f"label {policy.keys.node_class}={explicit_value} names no GPU class "
            f"(known: {', '.join(policy.class_names)})"
        )
    elif product and derived is None:
        finding = f"GPU product {product} (from {source}) matches no class's products"

    chosen: ClassName | None
    if explicit is not None and derived is not None and explicit != derived:
        winner = (
            explicit if policy.document.node_classification.on_conflict == "explicit" else derived
        )
        finding = (
            f"label {policy.keys.node_class}={explicit} disagrees with {derived} derived from "
            f"{source}={product}; {winner} wins (onConflict: "
            f"{policy.document.node_classification.on_conflict})"
        )
        chosen, chosen_source = winner, ("explicit" if winner == explicit else source)
    elif explicit is not None:
        chosen, chosen_source = explicit, "explicit"
    else:
        chosen, chosen_source = derived, source if derived is not None else "none"
    return NodeClass(
        name=chosen,
        rank=policy.rank(chosen),
        product=product,
        source=chosen_source,
        finding=finding,
    )
