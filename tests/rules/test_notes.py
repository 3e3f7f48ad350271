"""The notes of the Events: one phrase per rule, counts most frequent first, the best node."""

from __future__ import annotations

import pytest

from extender.policy.intent import PodIntent, pod_intent
from extender.rules.base import Reject
from extender.rules.engine import NOT_CACHED
from extender.rules.notes import (
    NOT_SCORED,
    NOT_SEEN,
    Ranking,
    best_node,
    decision_record,
    reject_phrase,
    scored_note,
    unschedulable_note,
)
from tests.builders import PREFIX, example_policy, make_cache, make_node, make_pod

POLICY = example_policy()


def intent(**kw: object) -> PodIntent:
    return pod_intent(make_pod("chat", 1, workload="interactive", **kw), POLICY)


@pytest.mark.parametrize(
    ("reject", "phrase"),
    [
        (Reject("class_required", "GPU class economy (T4) is below ...", False),
         "wrong GPU class (need standard or better)"),
        (Reject("class_required", "node has no nvidia.com/gpu allocatable", False), "without GPUs"),
        (
            Reject("class_required", "node has no GPU class (product X); pod needs any", False),
            "without a GPU class",
        ),
        (Reject("gpu_attributes", "GPU attribute ...", False), "GPU attributes not as required"),
        (Reject("dedicated_node", "node is dedicated to batch ...", False),
         "dedicated to other workloads"),
        (Reject("separation", "batch pods run here; interactive pods keep ...", True),
         "running batch pods (hard separation)"),
        (Reject("premium_headroom", "premium headroom reserved: 2 of 8 premium GPUs ...", True),
         "premium headroom reserved"),
        (Reject("gpu_fit", "not enough free GPUs: needs 1 whole", True), "not enough free GPUs"),
        (NOT_CACHED, "not yet in the extender's cache"),
    ],
    ids=[
        "class", "no-gpus", "no-class", "attributes", "dedicated", "separation", "headroom",
        "fit", "cache",
    ],
)  # fmt: skip
def test_each_rule_has_a_short_phrase(reject: Reject, phrase: str) -> None:
    assert reject_phrase(reject, intent()) == phrase


def test_the_summary_lists_counts_most_frequent_first_then_in_rule_order() -> None:
    pod = intent(annotations={f"{PREFIX}required-classes": "premium"})
    counts = {
        Reject("gpu_fit", "not enough free GPUs: needs 1 whole", True): 16,
        Reject("class_required", "GPU class economy (T4) is below the tier", False): 20,
        Reject("class_required", "GPU class standard (L4) is below the tier", False): 4,
        Reject("premium_headroom", "premium headroom reserved: 2 of 8 ...", True): 16,
    }
    assert unschedulable_note(pod, 56, counts) == (
        "0/56 nodes: 24 wrong GPU class (need premium or better), "
        "16 premium headroom reserved, 16 not enough free GPUs"
    )


def test_no_summary_when_only_uncached_nodes_were_rejected() -> None:
    assert unschedulable_note(intent(), 3, {NOT_CACHED: 3}) is None


def test_the_best_node_is_the_highest_score_and_the_first_name_among_equals() -> None:
    assert best_node(["c", "b", "a"], [7, 9, 9]) == ("a", 9)
    assert best_node([], []) is None


def test_the_scored_note_names_the_winner_class_and_why() -> None:
    nodes = [make_node("h100-a", "H100"), make_node("l4-a", "L4", 4)]
    batch = make_pod("train", 1, workload="batch", node="h100-a", phase="Running")
    cache = make_cache(POLICY, nodes, [batch])
    scored = scored_note(intent(), ["l4-a", "h100-a"], [8, 8], cache.node_lookup, POLICY, 10)
    assert scored == (
        "premium",
        "best: h100-a (premium, score 8/10) of 2 nodes, 1 tied; "
        "interactive prefers premium > standard; batch pods on it",
    )


@pytest.mark.parametrize(
    ("ranking", "head"),
    [
        (Ranking(9, 9, 1, 40), "score 9/10 (the best of 40 nodes)"),
        (Ranking(9, 9, 3, 40), "score 9/10 (the best, 2 tied of 40 nodes)"),
        (Ranking(6, 9, 2, 40), "score 6/10 (best was 9/10 on 2 of 40 nodes)"),
        (NOT_SCORED, NOT_SCORED),
        (NOT_SEEN, NOT_SEEN),
    ],
    ids=["best", "tied", "not-best", "not-scored", "not-seen"],
)
def test_the_decision_record_names_class_score_standing_wishes_and_policy(
    ranking: Ranking | str, head: str
) -> None:
    nodes = [make_node("l4-a", "L4", 4)]
    batch = make_pod("train", 1, workload="batch", node="l4-a", phase="Running")
    cache = make_cache(POLICY, nodes, [batch])
    record = decision_record(intent(), cache.node("l4-a"), ranking, POLICY, 10)
    expected = {
        f"{PREFIX}decision-class": "standard",
        f"{PREFIX}decision-reason": f"{head}; interactive prefers premium > standard; "
        "batch pods on it",
        f"{PREFIX}decision-policy": POLICY.digest,
    }
    if not isinstance(ranking, str):
        expected[f"{PREFIX}decision-score"] = str(ranking.score)
    assert record == expected
    # The digest of the policy that scored the pod, when a reload came before the bind.
    scored_under = decision_record(intent(), cache.node("l4-a"), ranking, POLICY, 10, "0ld")
    assert scored_under[f"{PREFIX}decision-policy"] == "0ld"
