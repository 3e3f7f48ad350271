"""A pod's GPU-class rule mirrored into required node affinity, and the JSON patch adding it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.errors import WireError
from extender.policy import class_affinity_patch, mirrored_requirement, pod_intent
from extender.wire import NodeSelectorRequirement
from tests.builders import (
    EXAMPLE_POLICY,
    PREFIX,
    apply_json_patch,
    example_policy,
    make_pod,
    pod_dict,
    policy_from,
)

CLASS_LABEL = f"{PREFIX}class"
REQ = NodeSelectorRequirement(key=CLASS_LABEL, operator="In", values=("premium", "standard"))
EXPRESSION = {"key": CLASS_LABEL, "operator": "In", "values": ["premium", "standard"]}
ZONE = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def annotated(**annotations: str) -> dict[str, str]:
    return {PREFIX + k.replace("_", "-"): v for k, v in annotations.items()}


# ---- mirrored_requirement ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "values"),
    [
        ({}, None),
        ({"gpus": 0, "annotations": annotated(required_classes="premium")}, None),
        ({"annotations": annotated(required_classes="premium")}, ("premium",)),
        ({"annotations": annotated(required_classes="economy,premium")}, ("premium", "economy")),
        ({"annotations": annotated(min_class="standard")}, ("premium", "standard")),
        ({"annotations": annotated(excluded_classes="premium")}, ("standard", "economy")),
        ({"workload": "interactive"}, ("premium", "standard")),
        (
            {"workload": "interactive", "annotations": annotated(excluded_classes="premium")},
            ("standard",),
        ),
        ({"annotations": annotated(min_class="economy")}, None),
        (
            {"annotations": annotated(required_classes="premium,economy", min_class="standard")},
            ("premium",),
        ),
    ],
    ids=[
        "batch-default-may-use-any-class",
        "no-gpus",
        "required-one",
        "required-two-in-tier-order",
        "min-class",
        "excluded",
        "workload-default-min-class",
        "workload-default-and-pod-exclusion",
        "min-class-lowest-tier-is-no-restriction",
        "required-and-min-class-intersect",
    ],
)
def test_the_requirement_lists_the_allowed_classes_highest_tier_first(
    kw: dict[str, Any], values: tuple[str, ...] | None
) -> None:
    policy = example_policy()
    requirement = mirrored_requirement(pod_intent(make_pod(**kw), policy), policy)
    if values is None:
        assert requirement is None
    else:
        assert requirement == NodeSelectorRequirement(CLASS_LABEL, "In", values)


@pytest.mark.parametrize(
    "annotations",
    [
        annotated(required_classes="economy", min_class="standard"),
        annotated(required_classes="gold"),
        annotated(min_class="premium,standard"),
    ],
    ids=["contradiction", "unknown-class", "two-min-classes"],
)
def test_a_pod_with_contradictory_wishes_gets_no_requirement(annotations: dict[str, str]) -> None:
    policy = example_policy()
    intent = pod_intent(make_pod(annotations=annotations), policy)
    assert intent.conflicts
    assert mirrored_requirement(intent, policy) is None


def test_the_key_is_the_policys_explicit_node_class_label() -> None:
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    doc["nodeClassification"]["classLabel"] = "example.com/gpu-tier"
    policy = policy_from(yaml.safe_dump(doc))
    pod = make_pod(annotations=annotated(required_classes="premium"))
    requirement = mirrored_requirement(pod_intent(pod, policy), policy)
    assert requirement is not None
    assert requirement.key == "example.com/gpu-tier"


# ---- class_affinity_patch ------------------------------------------------------------


def pod_with(affinity: Any = None) -> dict[str, Any]:
    pod = pod_dict("p", 1)
    if affinity is not None:
        pod["spec"]["affinity"] = affinity
    return pod


def node_affinity(*terms: Any) -> dict[str, Any]:
    return {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": list(terms)}}}


def applied(pod: dict[str, Any]) -> dict[str, Any]:
    patched: dict[str, Any] = apply_json_patch(pod, class_affinity_patch(pod, REQ))
    return patched


def terms_of(pod: dict[str, Any]) -> list[dict[str, Any]]:
    terms: list[dict[str, Any]] = pod["spec"]["affinity"]["nodeAffinity"][REQUIRED][
        "nodeSelectorTerms"
    ]
    return terms


@pytest.mark.parametrize(
    "affinity",
    [
        None,
        {},
        {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        {"nodeAffinity": {}},
        {"nodeAffinity": {REQUIRED: {}}},
        {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": []}}},
        {"nodeAffinity": {REQUIRED: None}},
    ],
    ids=[
        "no-affinity",
        "empty-affinity",
        "pod-anti-affinity-only",
        "empty-node-affinity",
        "empty-required",
        "no-terms",
        "null-required",
    ],
)
def test_a_pod_without_terms_gets_one_term_and_keeps_the_rest(affinity: Any) -> None:
    pod = pod_with(affinity)
    before = copy.deepcopy(pod)
    patched = applied(pod)
    assert terms_of(patched) == [{"matchExpressions": [EXPRESSION]}]
    assert pod == before  # the input is never modified
    if affinity and "podAntiAffinity" in affinity:
        assert patched["spec"]["affinity"]["podAntiAffinity"] == affinity["podAntiAffinity"]


def test_the_expression_joins_every_existing_term() -> None:
    pod = pod_with(
        node_affinity(
            {"matchExpressions": [ZONE]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
            {"matchExpressions": [ZONE], "matchFields": []},
        )
    )
    pod["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] = [
        {"weight": 1, "preference": {"matchExpressions": [ZONE]}}
    ]
    patched = applied(pod)
    first, second, third = terms_of(patched)
    assert first == {"matchExpressions": [ZONE, EXPRESSION]}
    assert second["matchExpressions"] == [EXPRESSION]
    assert (
        second["matchFields"]
        == pod["spec"]["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"][1]["matchFields"]
    )
    assert third["matchExpressions"] == [ZONE, EXPRESSION]
    preferred = patched["spec"]["affinity"]["nodeAffinity"]
    assert preferred["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 1


def test_a_patched_pod_gets_no_second_patch() -> None:
    for affinity in (None, node_affinity({"matchExpressions": [ZONE]}, {"matchExpressions": []})):
        patched = applied(pod_with(affinity))
        assert class_affinity_patch(patched, REQ) == []


@pytest.mark.parametrize(
    ("existing", "patched"),
    [
        ({"key": CLASS_LABEL, "operator": "In", "values": ["standard", "premium"]}, False),
        ({"key": CLASS_LABEL, "operator": "In", "values": ["premium"]}, False),
        ({"key": CLASS_LABEL, "operator": "In", "values": ["premium", "economy"]}, True),
        ({"key": CLASS_LABEL, "operator": "NotIn", "values": ["economy"]}, True),
        ({"key": "other", "operator": "In", "values": ["premium"]}, True),
    ],
    ids=["equal-any-order", "narrower", "wider", "other-operator", "other-key"],
)
def test_a_term_that_already_implies_the_rule_is_left_alone(
    existing: dict[str, Any], patched: bool
) -> None:
    pod = pod_with(node_affinity({"matchExpressions": [existing]}))
    assert bool(class_affinity_patch(pod, REQ)) is patched


def test_an_empty_term_stays_empty_so_it_still_matches_no_node() -> None:
    pod = pod_with(node_affinity({}, {"matchExpressions": [ZONE]}))
    patched = applied(pod)
    assert terms_of(patched)[0] == {}
    assert terms_of(patched)[1] == {"matchExpressions": [ZONE, EXPRESSION]}


@pytest.mark.parametrize(
    ("affinity", "where"),
    [
        ("zone-a", "spec.affinity"),
        ({"nodeAffinity": []}, "spec.affinity.nodeAffinity"),
        ({"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": {}}}}, "nodeSelectorTerms"),
        (node_affinity("term"), "nodeSelectorTerms[0]"),
        (node_affinity({"matchExpressions": {}}), "nodeSelectorTerms[0].matchExpressions"),
    ],
    ids=["affinity", "node-affinity", "terms", "term", "expressions"],
)
def test_a_malformed_affinity_is_a_wire_error_naming_the_field(affinity: Any, where: str) -> None:
    with pytest.raises(WireError, match=where.replace("[", r"\[").replace("]", r"\]")):
        class_affinity_patch(pod_with(affinity), REQ)


def test_a_pod_without_spec_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="spec"):
        class_affinity_patch({"metadata": {}}, REQ)


# ---- properties ----------------------------------------------------------------------

_expressions = st.sampled_from(
    [
        ZONE,
        EXPRESSION,
        {"key": CLASS_LABEL, "operator": "In", "values": ["economy"]},
        {"key": CLASS_LABEL, "operator": "NotIn", "values": ["premium"]},
        {"key": "nvidia.com/gpu.count", "operator": "Gt", "values": ["1"]},
    ]
)
_fields = [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]
_terms = st.lists(
    st.builds(
        lambda expressions, fields: {
            **({"matchExpressions": expressions} if expressions is not None else {}),
            **({"matchFields": _fields} if fields else {}),
        },
        st.none() | st.lists(_expressions, max_size=3),
        st.booleans(),
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(_terms)
def test_the_patch_adds_the_rule_to_every_term_that_can_match_keeps_the_rest_and_is_idempotent(
    terms: list[dict[str, Any]],
) -> None:
    pod = pod_with(node_affinity(*terms) if terms else None)
    patched = applied(pod)
    assert class_affinity_patch(patched, REQ) == []
    after = terms_of(patched)
    if not terms:
        assert after == [{"matchExpressions": [EXPRESSION]}]
        return
    assert len(after) == len(terms)
    for old, new in zip(terms, after, strict=True):
        old_expressions = old.get("matchExpressions") or []
        assert new.get("matchFields") == old.get("matchFields")
        assert new.get("matchExpressions", [])[: len(old_expressions)] == old_expressions
        if old_expressions or old.get("matchFields"):
            assert any(
                e["key"] == CLASS_LABEL
                and set(e["values"]) <= {"premium", "standard"}
                and e["operator"] == "In"
                for e in new["matchExpressions"]
            )
        else:
            assert new == old  # an empty term matches no node, before and after
