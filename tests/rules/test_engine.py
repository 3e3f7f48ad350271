"""The engine: which reject reason wins, how unknown nodes and conflicts are answered, and
how components combine into the extender's 0..10 score."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from extender.policy import PodIntent, Policy, load_policy_text, pod_intent
from extender.rules import engine
from extender.rules.engine import (
    NOT_CACHED,
    REJECTED,
    explain_nodes,
    filter_nodes,
    score_nodes,
    weighted_mean,
    wire_scores,
)
from extender.state import ClusterCache
from tests.builders import EXAMPLE_POLICY, PREFIX, example_policy, make_cache, make_node, make_pod


@pytest.fixture
def cluster() -> ClusterCache:
    nodes = [
        make_node("h100", "H100", 8),
        make_node("l40s", "L40S", 8),
        make_node("t4-full", "T4", 2),
        make_node("t4", "T4", 4),
    ]
    pods = [make_pod("busy", 2, workload="batch", node="t4-full", phase="Running")]
    return make_cache(example_policy(), nodes, pods)


def intent(cluster: ClusterCache, **kw: Any) -> PodIntent:
    return pod_intent(make_pod(**kw), cluster.policy)


def run_filter(cluster: ClusterCache, pod: PodIntent, names: list[str]) -> engine.FilterResult:
    return filter_nodes(pod, names, cluster.node, cluster, cluster.policy)


def test_the_filter_splits_nodes_into_passed_failed_and_unresolvable(
    cluster: ClusterCache,
) -> None:
    pod = intent(cluster, workload="interactive")

    result = run_filter(cluster, pod, ["h100", "l40s", "t4", "ghost"])

    assert result.passed == ["h100", "l40s"]
    assert set(result.unresolvable) == {"t4"}
    assert result.failed == {"ghost": NOT_CACHED.reason}


def test_an_unresolvable_class_reason_wins_over_a_capacity_reason(cluster: ClusterCache) -> None:
    pod = intent(cluster, workload="interactive")

    result = run_filter(cluster, pod, ["t4-full"])

    assert result.unresolvable == {
        "t4-full": "GPU class economy (T4-15GB) is below the required tier standard"
    }
    assert result.failed == {}
    assert result.rejects["t4-full"].rule == "class_required"


def test_a_full_node_of_an_allowed_class_is_resolvable(cluster: ClusterCache) -> None:
    result = run_filter(cluster, intent(cluster, workload="batch"), ["t4-full"])

    assert result.failed == {"t4-full": "not enough free GPUs: needs 1 whole"}


def test_an_unknown_node_is_resolvable_and_says_it_is_not_yet_cached(
    cluster: ClusterCache,
) -> None:
    result = run_filter(cluster, intent(cluster, workload="batch"), ["ghost"])

    assert result.failed == {"ghost": "node not yet in the extender's cache; retrying"}
    assert result.rejects["ghost"].resolvable


def test_a_pod_with_conflicts_is_unresolvable_on_every_node(cluster: ClusterCache) -> None:
    pod = intent(cluster, annotations={f"{PREFIX}required-classes": "gold"})

    result = run_filter(cluster, pod, ["h100", "t4", "ghost"])

    assert result.passed == []
    assert result.failed == {}
    assert set(result.unresolvable) == {"h100", "t4", "ghost"}
    assert all(r.startswith("pod cannot be placed: ") for r in result.unresolvable.values())
    assert "names unknown GPU class(es) gold" in result.unresolvable["h100"]


def test_duplicate_node_names_appear_once(cluster: ClusterCache) -> None:
    pod = intent(cluster, workload="batch")
    names = ["t4", "h100", "t4", "t4-full", "h100", "t4-full"]

    result = run_filter(cluster, pod, names)
    scored = score_nodes(pod, names, cluster.node, cluster, cluster.policy)

    assert result.passed == ["t4", "h100"]
    assert list(result.failed) == ["t4-full"]
    assert scored[0] == ["t4", "h100", "t4-full"]


def test_a_pod_without_gpus_passes_every_node_and_is_not_ranked(cluster: ClusterCache) -> None:
    pod = intent(cluster, gpus=0, workload="interactive")
    names = ["h100", "t4", "t4-full", "ghost"]

    result = run_filter(cluster, pod, names)
    verdicts = explain_nodes(pod, names, cluster.node, cluster, cluster.policy)

    assert result.passed == names
    assert [(v.reject, v.components) for v in verdicts if v.node != "ghost"] == [(None, {})] * 3


def test_scores_rank_the_preferred_class_first(cluster: ClusterCache) -> None:
    pod = intent(cluster, workload="interactive")

    scores = dict(
        zip(
            *score_nodes(pod, ["h100", "l40s", "ghost"], cluster.node, cluster, cluster.policy),
            strict=True,
        )
    )

    assert scores["h100"] > scores["l40s"]
    assert scores["ghost"] == 0


def test_explain_shows_each_component_and_the_final_score(cluster: ClusterCache) -> None:
    pod = intent(cluster, workload="batch")

    [t4, h100] = explain_nodes(pod, ["t4", "h100"], cluster.node, cluster, cluster.policy)

    assert set(t4.components) == {"class_fit", "separation", "headroom", "packing"}
    assert t4.components["class_fit"] == 1.0
    assert t4.components["packing"] == pytest.approx(1 / 4)
    assert t4.score == 10  # the best node of the request (relative scoring)
    assert h100.score < t4.score


def test_explain_reports_the_reject_of_a_filtered_node(cluster: ClusterCache) -> None:
    pod = intent(cluster, workload="interactive")

    [verdict] = explain_nodes(pod, ["t4"], cluster.node, cluster, cluster.policy)

    assert verdict.reject is not None
    assert verdict.reject.rule == "class_required"
    assert (verdict.components, verdict.score) == ({}, 0)


def test_a_component_with_zero_weight_is_left_out(example_doc: dict[str, Any]) -> None:
    example_doc["weights"] = {"classFit": 0, "separation": 0, "headroom": 0, "dedication": 0}
    policy = load_policy_text(yaml.safe_dump(example_doc))
    cache = make_cache(policy, [make_node("n1")])
    pod = pod_intent(make_pod(workload="batch"), policy)

    chosen = engine.applicable_components(pod, list(cache.nodes()), policy)

    assert [(name, weight) for name, weight, _ in chosen] == [("packing", 1.0)]


@pytest.mark.parametrize(
    ("parts", "weights", "expected"),
    [
        ({"a": 1.0, "b": 1.0}, {"a": 3.0, "b": 1.0}, 10),
        ({"a": 0.0, "b": 0.0}, {"a": 3.0, "b": 1.0}, 0),
        ({"a": 1.0, "b": 0.0}, {"a": 3.0, "b": 1.0}, 8),
        ({"a": 0.0, "b": 1.0}, {"a": 3.0, "b": 1.0}, 3),
        ({"a": 0.5}, {"a": 2.0}, 5),
        ({"a": 0.04}, {"a": 1.0}, 0),
        ({"a": 0.05}, {"a": 1.0}, 1),
        ({"a": 0.96}, {"a": 1.0}, 10),
        ({}, {}, 0),
        ({"a": 1.0}, {"a": 0.0}, 0),
    ],
    ids=[
        "all-full",
        "all-zero",
        "weighted-mean-7.5-rounds-up",
        "weighted-mean-2.5-rounds-up",
        "half",
        "small-rounds-down",
        "half-step-rounds-up",
        "near-full",
        "no-components",
        "zero-weights",
    ],
)
def test_absolute_scores_are_the_weighted_mean_scaled_to_0_10_and_rounded_half_up(
    parts: dict[str, float], weights: dict[str, float], expected: int
) -> None:
    policy = _policy_with(scoring={"mode": "absolute"})

    assert wire_scores({"n": weighted_mean(parts, weights)}, policy) == {"n": expected}


def test_relative_scores_give_the_best_node_10_and_a_point_less_per_step_below_it() -> None:
    policy = _policy_with(scoring={"mode": "relative", "step": 0.01})
    # Means on the 0..10 scale: a step of 0.01 of the mean is 0.1 here.
    means = {"best": 7.3, "tie": 7.3, "close": 7.26, "step": 7.2, "far": 2.0, "no": REJECTED}

    assert wire_scores(means, policy) == {
        "best": 10,
        "tie": 10,
        "close": 10,  # less than half a step below
        "step": 9,
        "far": 0,  # ten steps or more below
        "no": 0,
    }
    # A rejected node is never the best, whatever the others score.
    assert wire_scores({"a": 1.0, "b": REJECTED}, policy) == {"a": 10, "b": 0}


def _policy_with(**fields: Any) -> Policy:
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    doc.update(fields)
    return load_policy_text(yaml.safe_dump(doc))


def test_filters_run_unresolvable_rules_before_resolvable_ones() -> None:
    names = [name for name, _ in engine.FILTERS]

    assert names == [
        "class_required",
        "gpu_attributes",
        "dedicated_node",
        "separation",
        "premium_headroom",
        "gpu_fit",
    ]
    assert set(engine.SCORES) == {"class_fit", "separation", "headroom", "dedication", "packing"}


def test_exact_means_become_the_integer_scores(cluster: ClusterCache) -> None:
    """The simulator measures what the wire's 0..10 integers cost with the unrounded means."""
    names = ["h100", "l40s", "t4", "t4-full", "ghost"]
    for workload in ("interactive", "batch"):
        pod = intent(cluster, workload=workload)
        policy = cluster.policy
        rounded = score_nodes(pod, names, cluster.node, cluster, policy)
        result, means = engine.filter_and_score(
            pod, names, cluster.node, cluster, policy, exact=True
        )
        by_node = dict(zip(result.passed, means, strict=True))

        assert wire_scores(by_node, policy) == {
            n: s for n, s in zip(*rounded, strict=True) if n in by_node
        }
        assert any(s != int(s) for s in means), "the means are not all whole numbers"


def test_the_answer_names_nodes_the_cache_lacks_without_remembering_their_json() -> None:
    # A caller may invent any number of names (the fuzz sends 20,000 per request): their
    # JSON is written into the answer but not kept for the next one.
    import json

    from extender.wire import codec

    policy = example_policy()
    cache = make_cache(policy, [make_node("h100", "H100", 8)])
    names = ["h100", *(f"invented-{i}" for i in range(100))]
    intent = pod_intent(make_pod("p", 1, workload="batch"), policy)

    result = engine.filter_nodes(
        intent, names, cache.node_lookup, cache, policy, cache.shape_lookup
    )
    sent = json.loads(result.encoded())

    assert sent["NodeNames"] == ["h100"]
    assert set(sent["FailedNodes"]) == set(names[1:])
    assert "h100" in codec._NAME_JSON
    assert not any(name in codec._NAME_JSON for name in names[1:])
