"""Dedicated nodes: hard dedication keeps other workloads off, soft only lowers their score."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from extender.policy import Policy, load_policy_text, pod_intent
from extender.rules import dedicated_node
from extender.rules.base import Reject
from extender.state import NodeFeatures
from extender.wire import Node
from tests.builders import PREFIX, example_policy, make_cache, make_node, make_pod

DEDICATED = f"{PREFIX}dedicated"
MODE = f"{PREFIX}dedicated-mode"
TOLERATE = f"{PREFIX}tolerate-dedicated"


def load(doc: dict[str, Any]) -> Policy:
    return load_policy_text(yaml.safe_dump(doc))


def features(policy: Policy, node: Node) -> NodeFeatures:
    found = make_cache(policy, [node]).node(node.metadata.name)
    assert found is not None
    return found


def check(policy: Policy, node: Node, **pod: Any) -> Reject | None:
    cache = make_cache(policy, [node])
    found = cache.node(node.metadata.name)
    assert found is not None
    return dedicated_node.check(pod_intent(make_pod(**pod), policy), found, cache, policy)


def score(policy: Policy, node: Node, **pod: Any) -> float:
    cache = make_cache(policy, [node])
    found = cache.node(node.metadata.name)
    assert found is not None
    return dedicated_node.score(pod_intent(make_pod(**pod), policy), found, cache, policy)


def interactive_node(mode: str | None = None) -> Node:
    labels = {DEDICATED: "interactive"}
    if mode is not None:
        labels[MODE] = mode
    return make_node("n1", "H100", labels=labels)


def test_a_hard_dedicated_node_rejects_other_workloads_as_unresolvable() -> None:
    reject = check(example_policy(), interactive_node(), workload="batch")

    assert reject == Reject(
        "dedicated_node",
        "node is dedicated to interactive workloads (hard); pod is batch",
        False,
    )


def test_a_dedicated_node_takes_its_own_workload() -> None:
    assert check(example_policy(), interactive_node(), workload="interactive") is None


@pytest.mark.parametrize(
    ("tolerate", "passes"),
    [("interactive", True), ("*", True), ("batch", False), ("serving, interactive", True)],
    ids=["names-the-workload", "star", "names-another", "list"],
)
def test_a_pod_may_opt_in_to_a_dedicated_node_with_the_tolerate_annotation(
    tolerate: str, passes: bool
) -> None:
    reject = check(
        example_policy(), interactive_node(), workload="batch", annotations={TOLERATE: tolerate}
    )

    assert (reject is None) is passes


def test_a_soft_dedicated_node_passes_the_filter_but_scores_zero_for_others() -> None:
    policy, node = example_policy(), interactive_node("soft")

    assert check(policy, node, workload="batch") is None
    assert score(policy, node, workload="batch") == 0.0
    assert score(policy, node, workload="interactive") == 1.0
    assert score(policy, node, workload="batch", annotations={TOLERATE: "*"}) == 1.0


def test_an_undedicated_node_scores_full() -> None:
    assert score(example_policy(), make_node("n1"), workload="batch") == 1.0


def test_the_score_applies_only_when_some_candidate_is_soft_dedicated_to_another_workload() -> None:
    policy = example_policy()
    soft = features(policy, interactive_node("soft"))
    hard = features(policy, interactive_node("hard"))
    plain = features(policy, make_node("n2"))
    batch = pod_intent(make_pod(workload="batch"), policy)
    interactive = pod_intent(make_pod(workload="interactive"), policy)

    assert dedicated_node.applies(batch, [plain, soft], policy)
    assert not dedicated_node.applies(batch, [plain, hard], policy)
    assert not dedicated_node.applies(interactive, [plain, soft], policy)


def test_a_dedication_label_naming_no_workload_is_ignored_with_a_finding() -> None:
    policy = example_policy()
    node = features(policy, make_node("n1", labels={DEDICATED: "training"}))

    assert node.dedicated_to is None
    assert check(policy, make_node("n1", labels={DEDICATED: "training"}), workload="batch") is None
    assert any("training names no workload class" in f for f in node.findings)


def test_a_class_can_be_dedicated_in_the_policy(example_doc: dict[str, Any]) -> None:
    example_doc["dedicated"]["classes"] = [{"class": "premium", "workload": "interactive"}]
    policy = load(example_doc)

    assert check(policy, make_node("h", "H100"), workload="batch") is not None
    assert check(policy, make_node("h", "H100"), workload="interactive") is None
    assert check(policy, make_node("l", "L40S"), workload="batch") is None


def test_a_soft_class_dedication_lowers_the_score_only(example_doc: dict[str, Any]) -> None:
    example_doc["dedicated"]["classes"] = [
        {"class": "premium", "workload": "interactive", "mode": "soft"}
    ]
    policy = load(example_doc)

    assert check(policy, make_node("h", "H100"), workload="batch") is None
    assert score(policy, make_node("h", "H100"), workload="batch") == 0.0


def test_a_node_label_overrides_its_class_dedication(example_doc: dict[str, Any]) -> None:
    example_doc["dedicated"]["classes"] = [{"class": "premium", "workload": "interactive"}]
    policy = load(example_doc)
    node = make_node("h", "H100", labels={DEDICATED: "batch"})

    assert check(policy, node, workload="batch") is None
    assert check(policy, node, workload="interactive") is not None


@pytest.mark.parametrize(
    ("default_mode", "mode_label", "mode"),
    [
        ("hard", None, "hard"),
        ("soft", None, "soft"),
        ("hard", "soft", "soft"),
        ("soft", "hard", "hard"),
        ("soft", "strict", "soft"),
    ],
    ids=["default-hard", "default-soft", "label-soft", "label-hard", "bad-label-uses-default"],
)
def test_the_mode_label_sets_a_node_dedication_mode(
    example_doc: dict[str, Any], default_mode: str, mode_label: str | None, mode: str
) -> None:
    example_doc["dedicated"]["defaultMode"] = default_mode
    labels = {DEDICATED: "interactive"}
    if mode_label is not None:
        labels[MODE] = mode_label

    node = features(load(example_doc), make_node("n1", labels=labels))

    assert (node.dedicated_to, node.dedication_mode) == ("interactive", mode)
    assert any("is not hard or soft" in f for f in node.findings) is (mode_label == "strict")


def test_custom_dedication_label_keys_are_read(example_doc: dict[str, Any]) -> None:
    example_doc["dedicated"]["nodeLabel"] = "acme.org/reserved-for"
    example_doc["dedicated"]["modeLabel"] = "acme.org/reserved-mode"
    policy = load(example_doc)
    node = make_node(
        "n1", labels={"acme.org/reserved-for": "batch", "acme.org/reserved-mode": "soft"}
    )

    assert (features(policy, node).dedicated_to, features(policy, node).dedication_mode) == (
        "batch",
        "soft",
    )
    assert check(policy, interactive_node(), workload="batch") is None  # old key ignored
