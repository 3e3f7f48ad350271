"""Score: the first preferred class scores best, falling off with tier distance."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from extender.policy import load_policy_text, pod_intent
from extender.rules import class_fit
from tests.builders import PREFIX, example_policy, make_cache, make_node, make_pod

PREFERRED = f"{PREFIX}preferred-classes"


def score(product: str | None, **pod: Any) -> float:
    policy = example_policy()
    cache = make_cache(policy, [make_node("n1", product)])
    node = cache.node("n1")
    assert node is not None
    return class_fit.score(pod_intent(make_pod(**pod), policy), node, cache, policy)


@pytest.mark.parametrize(
    ("workload", "product", "expected"),
    [
        ("interactive", "H100", 1.0),
        ("interactive", "L40S", 0.75),
        ("interactive", "T4", 0.25 * (1 - 1 / 3)),
        ("batch", "T4", 1.0),
        ("batch", "A100-40GB", 0.75),
        ("batch", "H100", 0.25 * (1 - 1 / 3)),
    ],
    ids=[
        "interactive-first-choice",
        "interactive-second-choice",
        "interactive-non-preferred",
        "batch-first-choice",
        "batch-second-choice",
        "batch-non-preferred",
    ],
)
def test_preferred_classes_score_in_order(workload: str, product: str, expected: float) -> None:
    assert score(product, workload=workload) == pytest.approx(expected)


def test_non_preferred_classes_stay_at_a_quarter_or_below_and_fall_with_tier_distance() -> None:
    premium_only = {PREFERRED: "premium"}

    first = score("H100", annotations=premium_only)
    one_tier_off = score("L40S", annotations=premium_only)
    two_tiers_off = score("T4", annotations=premium_only)

    assert first == 1.0
    assert 0.25 >= one_tier_off > two_tiers_off > 0.0


def test_a_later_preference_never_beats_an_earlier_one() -> None:
    three = {PREFERRED: "economy,standard,premium"}

    scores = [score(p, annotations=three) for p in ("T4", "L40S", "H100")]

    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= 0.5


def test_an_unclassified_node_scores_zero() -> None:
    assert score("RTX-6000", workload="interactive") == 0.0
    assert score(None, workload="interactive") == 0.0


def test_class_fit_applies_only_to_pods_with_preferences(example_doc: dict[str, Any]) -> None:
    example_doc["workloadClasses"]["batch"]["preferredClasses"] = []
    policy = load_policy_text(yaml.safe_dump(example_doc))

    assert not class_fit.applies(pod_intent(make_pod(workload="batch"), policy), [], policy)
    assert class_fit.applies(pod_intent(make_pod(workload="interactive"), policy), [], policy)


def test_preferences_the_pod_may_not_use_do_not_count() -> None:
    # Interactive prefers premium, then standard; this pod requires standard or economy.
    required = {f"{PREFIX}required-classes": "standard,economy"}

    assert score("L40S", workload="interactive", annotations=required) == 1.0
    assert score("T4", workload="interactive", annotations=required) < 0.5
