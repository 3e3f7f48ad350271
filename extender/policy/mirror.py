"""A pod's GPU-class rule as a required node affinity, which autoscalers understand.

cluster-autoscaler and Karpenter decide scale-ups by simulating the in-tree scheduling
rules; they never call a scheduler extender (docs/autoscaling.md). A class rule that only
the extender enforces leaves them blind: no scale-up, or one of the wrong class. Mirrored
into `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution` on the
explicit node class label (`Policy.keys.node_class`), which node templates carry, the same
rule reaches their simulation. The admission webhook (extender/server/admission.py) applies
the patch; `doctor` compares `mirrored_requirement` with node templates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from extender.errors import WireError
from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.wire.types import NodeSelectorRequirement

AFFINITY_PATH = "/spec/affinity"
NODE_AFFINITY = "nodeAffinity"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
TERMS = "nodeSelectorTerms"

JsonPatch = list[dict[str, Any]]


def mirrored_requirement(intent: PodIntent, policy: Policy) -> NodeSelectorRequirement | None:
    """The node-affinity expression equal to the pod's GPU-class rule, or None.

    `{key: <node class label>, operator: In, values: allowed classes, highest tier first}`.
    None when the pod asks for no GPUs, may use every class, or has contradictory wishes
    (`intent.conflicts`: the extender's filter explains those; a mirrored guess could only
    hide them).
    """
    if intent.demand.gpus <= 0 or intent.conflicts or not intent.allowed:
        return None
    if len(intent.allowed) >= len(policy.class_names):
        return None
    values = tuple(name for name in policy.class_names if name in intent.allowed)
    return NodeSelectorRequirement(key=policy.keys.node_class, operator="In", values=values)


def implies(expression: Mapping[str, Any], requirement: NodeSelectorRequirement) -> bool:
    """True when `expression` (a matchExpressions entry) already demands `requirement`:
    `In` on the same key with no value outside the requirement's."""
    if expression.get("key") != requirement.key or expression.get("operator") != "In":
        return False
    values = expression.get("values")
    if not isinstance(values, list) or not values:
        return False
    return set(values) <= set(requirement.values)


def _expression(requirement: NodeSelectorRequirement) -> dict[str, Any]:
    return {
        "key": requirement.key,
        "operator": requirement.operator,
        "values": list(requirement.values),
    }


def _object(value: Any, path: str) -> Mapping[str, Any] | None:
    """`value` as a JSON object, None if absent or null; WireError if something else."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise WireError(f"pod {path}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, path: str) -> Sequence[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise WireError(f"pod {path}: expected a list, got {type(value).__name__}")
    return value


def class_affinity_patch(
    pod_json: Mapping[str, Any], requirement: NodeSelectorRequirement
) -> JsonPatch:
    """RFC 6902 operations that add `requirement` to the pod's required node affinity.

    Terms are ORed and a term's expressions ANDed, so the expression joins every term (a
    new term if there is none). Terms that already imply it are left alone, so a second
    call on the patched pod returns []. Empty terms match no node; they stay empty rather
    than start matching the class's nodes. Nothing else in the pod changes.
    """
    spec = _object(pod_json.get("spec"), "spec")
    if spec is None:
        raise WireError("pod spec: missing")
    expression = _expression(requirement)
    term = {"matchExpressions": [expression]}
    affinity = _object(spec.get("affinity"), "spec.affinity")
    if affinity is None:
        value = {NODE_AFFINITY: {REQUIRED: {TERMS: [term]}}}
        return [{"op": "add", "path": AFFINITY_PATH, "value": value}]
    node_affinity = _object(affinity.get(NODE_AFFINITY), "spec.affinity.nodeAffinity")
    path = f"{AFFINITY_PATH}/{NODE_AFFINITY}"
    if node_affinity is None:
        return [{"op": "add", "path": path, "value": {REQUIRED: {TERMS: [term]}}}]
    required = _object(node_affinity.get(REQUIRED), f"spec.affinity.nodeAffinity.{REQUIRED}")
    path = f"{path}/{REQUIRED}"
    if required is None:
        return [{"op": "add", "path": path, "value": {TERMS: [term]}}]
    where = f"spec.affinity.nodeAffinity.{REQUIRED}.{TERMS}"
    terms = _list(required.get(TERMS), where)
    path = f"{path}/{TERMS}"
    if not terms:
        return [{"op": "add", "path": path, "value": [term]}]
    patch: JsonPatch = []
    for index, raw in enumerate(terms):
        existing = _object(raw, f"{where}[{index}]") or {}
        expressions = _list(existing.get("matchExpressions"), f"{where}[{index}].matchExpressions")
        fields = _list(existing.get("matchFields"), f"{where}[{index}].matchFields")
        if not expressions and not fields:
            continue  # an empty term matches nothing; adding to it would widen the pod
        if expressions and any(
            isinstance(e, Mapping) and implies(e, requirement) for e in expressions
        ):
            continue
        op: dict[str, Any]
        if expressions:
            op = {"op": "add", "path": f"{path}/{index}/matchExpressions/-", "value": expression}
        else:
            op = {"op": "add", "path": f"{path}/{index}/matchExpressions", "value": [expression]}
        patch.append(op)
    return patch
