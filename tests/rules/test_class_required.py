"""Filter: a node whose GPU class the pod may not use is rejected, and preemption won't help."""

from __future__ import annotations

from typing import Any

import pytest

from extender.policy import pod_intent
from extender.rules import class_required
from extender.rules.base import Reject
from extender.state import NodeFeatures
from extender.wire import Node
from tests.builders import PREFIX, example_policy, make_cache, make_node, make_pod

REQUIRED = f"{PREFIX}required-classes"


def check(node: Node, **pod: Any) -> Reject | None:
    policy = example_policy()
    cache = make_cache(policy, [node])
    features = cache.node(node.metadata.name)
    assert isinstance(features, NodeFeatures)
    return class_required.check(pod_intent(make_pod(**pod), policy), features, cache, policy)


@pytest.mark.parametrize(
    ("product", "passes"),
    [("H100", True), ("A100-80GB", True), ("A100-40GB", True), ("L40S", True), ("T4", False)],
    ids=["h100", "a100-80gb", "a100-40gb", "l40s", "t4"],
)
def test_an_interactive_pod_takes_standard_or_better(product: str, passes: bool) -> None:
    reject = check(make_node("n1", product), workload="interactive")

    assert (reject is None) is passes


def test_a_node_below_the_minimum_tier_is_unresolvable_with_the_tier_named() -> None:
    reject = check(make_node("n1", "T4"), workload="interactive")

    assert reject == Reject(
        "class_required", "GPU class economy (T4-15GB) is below the required tier standard", False
    )


def test_a_node_outside_the_required_set_names_the_allowed_classes() -> None:
    reject = check(make_node("n1", "L40S"), annotations={REQUIRED: "premium,economy"})

    assert reject == Reject(
        "class_required",
        "GPU class standard (L40S-45GB) is not allowed; pod needs premium or economy",
        False,
    )


def test_a_node_labelled_with_a_class_but_no_product_says_labelled() -> None:
    node = make_node("n1", None, labels={f"{PREFIX}class": "economy"})

    reject = check(node, workload="interactive")

    assert reject is not None
    assert reject.reason.startswith("GPU class economy (labelled) is below")


def test_a_node_without_gpus_is_rejected_for_any_gpu_pod() -> None:
    reject = check(make_node("cpu-1", None, gpus=0), workload="batch")

    assert reject == Reject("class_required", "node has no nvidia.com/gpu allocatable", False)


@pytest.mark.parametrize(
    ("product", "detail"),
    [("RTX-6000", "product RTX-6000 matches no class"), (None, "no GPU product label")],
    ids=["unmapped-product", "no-product-label"],
)
def test_an_unclassified_node_is_rejected_when_the_pod_needs_particular_classes(
    product: str | None, detail: str
) -> None:
    reject = check(make_node("n1", product), workload="interactive")

    assert reject == Reject(
        "class_required",
        f"node has no GPU class ({detail}); pod needs standard or better",
        False,
    )


def test_an_unclassified_node_passes_when_any_class_will_do() -> None:
    assert check(make_node("n1", "RTX-6000"), workload="batch") is None
