"""Where a pod may go by its own spec: nodeSelector and required node affinity.

The verbs never read these (the scheduler applies them before calling us); the doctor
does, to tell which node templates an autoscaler would consider for a pending pod.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import msgspec

from extender.wire.codec import decode_as
from extender.wire.types import NodeSelectorRequirement


class NodeSelectorTerm(msgspec.Struct, frozen=True):
    matchExpressions: tuple[NodeSelectorRequirement, ...] = ()


class NodeSelector(msgspec.Struct, frozen=True):
    nodeSelectorTerms: tuple[NodeSelectorTerm, ...] = ()


class NodeAffinity(msgspec.Struct, frozen=True):
    requiredDuringSchedulingIgnoredDuringExecution: NodeSelector | None = None


class Affinity(msgspec.Struct, frozen=True):
    nodeAffinity: NodeAffinity | None = None


class _PlacementSpec(msgspec.Struct, frozen=True):
    nodeSelector: dict[str, str] | None = None
    affinity: Affinity | None = None


class _PlacementPod(msgspec.Struct, frozen=True):
    spec: _PlacementSpec = _PlacementSpec()


class Placement(msgspec.Struct, frozen=True):
    """A pod's hard node constraints: every selector pair, and any one of the terms."""

    node_selector: dict[str, str]
    terms: tuple[NodeSelectorTerm, ...]  # ORed; empty: no affinity

    def admits(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with exactly these labels satisfies the pod's own constraints."""
        if any(labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        return not self.terms or any(term_matches(t, labels) for t in self.terms)


_GO_DECIMAL = re.compile(r"[+-]?[0-9]+", re.ASCII)
_INT64 = range(-(2**63), 2**63)


def parse_go_int(text: str | None) -> int | None:
    """`text` as Go's strconv.ParseInt(text, 10, 64) reads it, None where that fails.

    The API server and the scheduler parse Gt/Lt values and labels this way (apimachinery
    pkg/labels/selector.go); Python's int() also takes "1_000", " 7" and non-ASCII digits.
    """
    if text is None or not _GO_DECIMAL.fullmatch(text):
        return None
    number = int(text)
    return number if number in _INT64 else None


def label_matches(
    key: str, operator: str, values: Sequence[str], labels: Mapping[str, str]
) -> bool:
    """One node-affinity expression against a node's labels, as the scheduler evaluates it
    (Gt/Lt: both sides integers, a missing or non-integer label fails)."""
    value = labels.get(key)
    match operator:
        case "In":
            return value is not None and value in values
        case "NotIn":
            return value is None or value not in values
        case "Exists":
            return value is not None
        case "DoesNotExist":
            return value is None
        case "Gt" | "Lt":
            have = parse_go_int(value)
            bound = parse_go_int(values[0]) if len(values) == 1 else None
            if have is None or bound is None:
                return False
            return have > bound if operator == "Gt" else have < bound
    return False


def requirement_matches(req: NodeSelectorRequirement, labels: Mapping[str, str]) -> bool:
    """As the scheduler's nodeaffinity helper evaluates one expression."""
    return label_matches(req.key, req.operator, req.values, labels)


def term_matches(term: NodeSelectorTerm, labels: Mapping[str, str]) -> bool:
    # An empty term matches no node (k8s.io/component-helpers nodeaffinity).
    return bool(term.matchExpressions) and all(
        requirement_matches(r, labels) for r in term.matchExpressions
    )


_decoder = msgspec.json.Decoder(_PlacementPod)


def decode_placement(body: bytes, what: str = "pod") -> Placement:
    spec = decode_as(_decoder, body, f"{what}: node selector or affinity").spec
    required = spec.affinity.nodeAffinity if spec.affinity else None
    selector = required.requiredDuringSchedulingIgnoredDuringExecution if required else None
    return Placement(
        node_selector=dict(spec.nodeSelector or {}),
        terms=selector.nodeSelectorTerms if selector else (),
    )
