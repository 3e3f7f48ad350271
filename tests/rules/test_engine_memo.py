"""The engine evaluates rules once per node shape; that must equal evaluating every node.

A shape has to hold every node fact a rule reads. If it ever misses one, nodes that differ
in that fact share a verdict, and these properties fail.
"""

from __future__ import annotations

import json
from collections.abc import Hashable

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.policy import PodIntent, Policy, pod_intent
from extender.rules.engine import (
    FilterResult,
    applicable_components,
    check_node,
    explain_nodes,
    filter_and_score,
    filter_nodes,
    score_nodes,
    weighted_mean,
    wire_scores,
)
from extender.state import ClusterCache
from extender.wire import Node, Pod
from tests.builders import PREFIX, example_policy, make_cache, make_node, make_pod
from tests.test_properties import ZONE, pods, policies

# Few distinct configurations, many nodes: shapes repeat, and usage makes them diverge.
CONFIGS = [
    ("H100", 8, {ZONE: "a"}),
    ("H100", 8, {ZONE: "b"}),
    ("A100-40GB", 8, {ZONE: "a"}),
    ("T4", 4, {ZONE: "b", f"{PREFIX}dedicated": "interactive"}),
    ("T4", 4, {ZONE: "b", f"{PREFIX}dedicated": "interactive", f"{PREFIX}dedicated-mode": "soft"}),
    ("T4", 4, {ZONE: "a", f"{PREFIX}dedicated": "batch", f"{PREFIX}dedicated-mode": "soft"}),
    ("L40S", 4, {}),  # no zone label: a domain of its own
    (None, 0, {ZONE: "a"}),
]


@st.composite
def gpu_pods(draw: st.DrawFn) -> Pod:
    """An ordinary GPU pod of either workload: the pods whose verdicts depend on the node."""
    annotations: dict[str, str] = {}
    gpus = draw(st.integers(1, 3))
    if gpus == 1 and draw(st.booleans()):
        annotations[f"{PREFIX}gpu-milli"] = str(draw(st.sampled_from([250, 500, 1000])))
    if draw(st.integers(0, 3)) == 0:
        annotations[f"{PREFIX}tolerate-dedicated"] = "*"
    workload = draw(st.sampled_from(["interactive", "batch"]))
    owner = draw(st.sampled_from([None, "ReplicaSet"]))  # a replica of the scene's "web"?
    return make_pod(
        "incoming", gpus, workload=workload, annotations=annotations, owner_kind=owner,
        owner_name="web",
    )  # fmt: skip


@st.composite
def crowded_scenes(draw: st.DrawFn) -> tuple[ClusterCache, Pod, list[str]]:
    count = draw(st.integers(1, 14))
    node_list: list[Node] = []
    for i in range(count):
        product, gpus, labels = draw(st.sampled_from(CONFIGS))
        node_list.append(make_node(f"n{i}", product, gpus, labels=labels))
    names = [n.metadata.name for n in node_list]
    cache = make_cache(draw(policies), node_list, draw(pods(names, max_size=20)))
    requested = draw(st.permutations([*names, "ghost"]))
    return cache, draw(gpu_pods()), list(requested)


def per_node(cache: ClusterCache, pod: Pod, names: list[str]) -> dict[str, tuple[str | None, int]]:
    """Each node's reject reason and score, every rule run on every node (no shapes)."""
    policy = cache.policy
    intent = pod_intent(pod, policy)
    rejects = {n: check_node(intent, cache.node(n), cache, policy) for n in names}
    passing = [cache.node(n) for n in names if rejects[n] is None and cache.node(n) is not None]
    components = applicable_components(intent, [n for n in passing if n is not None], policy)
    weights = {c: w for c, w, _ in components}
    means: dict[str, float] = {}
    for name in names:
        node = cache.node(name)
        if rejects[name] is None and node is not None:
            parts = {c: fn(intent, node, cache, policy) for c, _, fn in components}
            means[name] = weighted_mean(parts, weights)
    scores = wire_scores(means, policy)
    out: dict[str, tuple[str | None, int]] = {}
    for name in names:
        reject = rejects[name]
        out[name] = (reject.reason if reject else None, scores.get(name, 0))
    return out


@settings(max_examples=300, deadline=None)
@given(crowded_scenes())
def test_filter_and_scores_per_shape_equal_those_per_node(
    scene: tuple[ClusterCache, Pod, list[str]],
) -> None:
    cache, pod, names = scene
    policy = cache.policy
    intent = pod_intent(pod, policy)
    expected = per_node(cache, pod, names)

    # Grouped by the cache's name -> shape table (as the server does) and by look-up.
    for shape_of in (cache.shape_lookup, None):
        result = filter_nodes(intent, names, cache.node, cache, policy, shape_of)
        reasons = {**result.failed, **result.unresolvable}
        assert {n: reasons.get(n) for n in names} == {n: r for n, (r, _) in expected.items()}
        assert {n: r.reason for n, r in result.rejects.items()} == {
            n: r for n, (r, _) in expected.items() if r is not None
        }
        # Class-wide holds (premium headroom) are taken from one node per passing group.
        passed_classes = {node.gpu_class.name for node in map(cache.node, result.passed) if node}
        assert {n.gpu_class.name for n in result.passed_groups} == passed_classes

        scores = dict(
            zip(*score_nodes(intent, names, cache.node, cache, policy, shape_of), strict=True)
        )
        assert scores == {n: s for n, (_, s) in expected.items()}

    explained = explain_nodes(intent, names, cache.node, cache, policy)
    assert {v.node: v.score for v in explained} == scores


def _assert_memoised_equals_per_node(cache: ClusterCache, pod: Pod, names: list[str]) -> None:
    policy = cache.policy
    intent = pod_intent(pod, policy)
    expected = per_node(cache, pod, names)
    shape_of = cache.shape_lookup

    result = filter_nodes(intent, names, cache.node, cache, policy, shape_of)
    reasons = {**result.failed, **result.unresolvable}
    assert {n: reasons.get(n) for n in names} == {n: r for n, (r, _) in expected.items()}
    scored = dict(
        zip(*score_nodes(intent, names, cache.node, cache, policy, shape_of), strict=True)
    )
    assert scored == {n: s for n, (_, s) in expected.items()}

    both, passed_scores = filter_and_score(intent, names, cache.node, cache, policy, shape_of)
    assert both.passed == result.passed
    assert passed_scores == [scored[n] for n in result.passed]


@settings(max_examples=200, deadline=None)
@given(
    crowded_scenes(),
    st.lists(
        st.tuples(
            st.sampled_from(["bind", "delete", "hold", "hold-own", "release", "renode"]),
            st.integers(0, 100),
            gpu_pods(),
        ),
        min_size=1,
        max_size=10,
    ),
)
def test_verdicts_memoised_across_calls_follow_the_cluster_as_it_changes(
    scene: tuple[ClusterCache, Pod, list[str]],
    steps: list[tuple[str, int, Pod]],
) -> None:
    """The memo (per pod and shape, across requests) never serves a stale verdict: every
    change to what a rule reads beyond a shape empties it."""
    cache, pod, names = scene
    # The same pod spec under another uid: its own in-flight hold is not the first pod's.
    twin = msgspec.structs.replace(
        pod, metadata=msgspec.structs.replace(pod.metadata, uid="twin", name="twin")
    )
    nodes = [n for n in names if n != "ghost"]
    own_uid = pod.metadata.uid
    for step, (op, i, other) in enumerate(steps):
        _assert_memoised_equals_per_node(cache, pod, names)
        _assert_memoised_equals_per_node(cache, twin, names)
        node = nodes[i % len(nodes)]
        uid = f"step-{step}"
        if op == "bind":
            spec = msgspec.structs.replace(other.spec, nodeName=node)
            meta = msgspec.structs.replace(other.metadata, uid=uid, name=uid)
            status = msgspec.structs.replace(other.status, phase="Running")
            cache.upsert_pod(Pod(metadata=meta, spec=spec, status=status))
        elif op == "delete":
            uids = [p.uid for p in cache.pods()]
            if uids:
                cache.delete_pod(uids[i % len(uids)])
        elif op in ("hold", "hold-own"):
            classes = frozenset(cache.policy.class_names[: 1 + i % 2])
            cache.hold_in_flight(own_uid if op == "hold-own" else uid, classes, 1000 * (1 + i % 3))
        elif op == "release":
            cache.release_in_flight(own_uid)
        else:
            product, gpus, labels = CONFIGS[i % len(CONFIGS)]
            cache.upsert_node(
                make_node(node, product, gpus, labels=labels, resource_version=f"v{step}")
            )
    _assert_memoised_equals_per_node(cache, pod, names)


def _eighty_one_gpu_nodes_and_a_chat_pod() -> tuple[Policy, ClusterCache, list[str], PodIntent]:
    """80 one-GPU H100 nodes (past the size where groupings are kept) and an interactive
    one-GPU pod."""
    policy = example_policy()
    nodes = [make_node(f"h{i:03d}", "H100", 1) for i in range(80)]
    names = [n.metadata.name for n in nodes]
    intent = pod_intent(make_pod("chat", 1, workload="interactive", uid="u-chat"), policy)
    return policy, make_cache(policy, nodes, []), names, intent


def test_a_grouping_is_reused_only_while_no_node_changed_shape() -> None:
    """Filter then prioritize of one pod share a grouping of the nodes by shape; a node
    whose shape changed in between (a bind) must be grouped again, not answered stale."""
    policy, cache, names, intent = _eighty_one_gpu_nodes_and_a_chat_pod()

    def passed(request: list[str]) -> list[str]:
        result = filter_nodes(intent, request, cache.node_lookup, cache, policy, cache.shape_lookup)
        return result.passed

    assert passed(names) == names
    assert passed(list(names)) == names  # the same nodes, no change: the grouping is reused
    cache.note_pending(make_pod("first", 1, workload="batch", uid="u-first"))
    cache.assume("u-first", "h005")  # h005's only GPU is taken: its shape changes
    # (This request's list is remembered.) A caller that reuses its list for other nodes
    # gets its answer for those.
    request = list(names)
    assert passed(request) == [n for n in names if n != "h005"]
    request[:] = names[:70]
    assert passed(request) == [n for n in names[:70] if n != "h005"]


def test_the_same_nodes_in_another_order_reuse_the_grouping() -> None:
    """kube-scheduler sends the nodes that passed its filters in the order its parallel
    checks finished: another order for every pod. The grouping of those nodes serves them
    in any order, and only them: a request that repeats a name and leaves one out is
    grouped afresh."""
    policy, cache, names, intent = _eighty_one_gpu_nodes_and_a_chat_pod()
    looked_up: list[str] = []

    def shape_of(name: str) -> Hashable | None:
        looked_up.append(name)
        return cache.shape_lookup(name)

    def passed(request: list[str]) -> list[str]:
        looked_up.clear()
        return filter_nodes(intent, request, cache.node_lookup, cache, policy, shape_of).passed

    assert passed(names) == names
    assert len(looked_up) == len(names)
    shuffled = names[40:] + names[:40][::-1]
    assert sorted(passed(shuffled)) == names
    assert looked_up == []  # reused
    repeats = [*names[:-1], names[0]]
    assert sorted(passed(repeats)) == names[:-1]
    assert len(looked_up) == len(repeats)


def test_a_request_naming_nodes_the_cache_does_not_know_is_grouped_but_not_kept() -> None:
    """A grouping is kept for the scheduler's next requests, which name the nodes our watch
    brought. One naming nodes the cache does not know (thousands of made-up names, or a
    node the watch has not brought yet) is answered and not kept: it would hold every
    made-up name until four other requests came."""
    policy, cache, names, intent = _eighty_one_gpu_nodes_and_a_chat_pod()
    made_up = [f"fuzz-node-{i}" for i in range(2000)]

    def passed(request: list[str]) -> list[str]:
        result = filter_nodes(intent, request, cache.node_lookup, cache, policy, cache.shape_lookup)
        return result.passed

    assert passed([*names[:10], *made_up]) == names[:10]
    assert cache.grouping_memo is None
    assert passed(names) == names
    kept = cache.grouping_memo
    assert isinstance(kept, list)
    assert len(kept) == 1
    assert passed([*names[:-1], "new-node"]) == names[:-1]
    assert cache.grouping_memo is kept
    assert len(kept) == 1


MANY = 72  # past the size below which the engine groups every request afresh


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["all", "even", "first-half", "reversed", "shuffled", "repeats"]),
            st.sampled_from(["none", "bind", "unbind", "node", "delete-node", "policy"]),
            st.integers(0, MANY - 1),
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from(["interactive", "batch"]),
)
def test_groupings_brought_up_to_date_equal_groupings_made_afresh(
    steps: list[tuple[str, str, int]], workload: str
) -> None:
    """Requests of many nodes reuse a recent grouping, looking up again only the nodes
    whose shape changed since (binds, node updates, deletes); a policy change regroups
    everything. Each answer must equal the one from a grouping made for that request."""
    policy = example_policy()
    nodes = [
        make_node(f"n{i:03d}", *CONFIGS[i % 3][:2], labels=CONFIGS[i % 3][2]) for i in range(MANY)
    ]
    cache = make_cache(policy, nodes, [])
    names = [n.metadata.name for n in nodes]
    requests = {
        "all": names,
        "even": names[::2],
        "first-half": names[: MANY // 2 + 40],
        "reversed": names[::-1],
        "shuffled": names[MANY // 3 :] + names[: MANY // 3][::-1],
        "repeats": [*names[1:], names[2]],  # as many names as "all", one left out
    }
    pod = make_pod("incoming", 1, workload=workload, uid="u-incoming")
    intent = pod_intent(pod, policy)

    earlier: list[tuple[FilterResult, int, int]] = []

    def answer(request: list[str]) -> tuple[list[str], dict[str, str], dict[str, str]]:
        # A result is read after later requests have brought its grouping up to date (the
        # filter awaits between deciding and answering): it must not change.
        for result, passed, rejected in earlier:
            assert (result.passed_count, sum(result.reject_counts.values())) == (passed, rejected)
        result = filter_nodes(intent, request, cache.node_lookup, cache, policy, cache.shape_lookup)
        # The answer the server sends, encoded a group at a time (its names in group
        # order): the same nodes and reasons, each node once.
        sent = json.loads(result.encoded())
        assert len(sent["NodeNames"]) == len(set(sent["NodeNames"])) == result.passed_count
        assert sorted(sent["NodeNames"]) == sorted(result.passed)
        assert (sent["FailedNodes"], sent["FailedAndUnresolvableNodes"]) == (
            result.failed,
            result.unresolvable,
        )
        assert sum(result.reject_counts.values()) == len(set(request)) - len(result.passed)
        earlier[:] = [
            *earlier[-3:],
            (result, result.passed_count, len(set(request)) - len(result.passed)),
        ]
        # Order is irrelevant to the protocol, and a grouping reused for the same nodes
        # named in another order keeps its own.
        return sorted(result.passed), result.failed, result.unresolvable

    bound: list[str] = []
    for step, (which, change, i) in enumerate(steps):
        request = list(requests[which])
        reused = answer(request)
        memos, cache.grouping_memo = cache.grouping_memo, None
        assert reused == answer(request)
        cache.grouping_memo = memos
        node = names[i]
        if change == "bind":
            uid = f"b{step}"
            cache.upsert_pod(make_pod(uid, 1, workload="batch", uid=uid, node=node))
            bound.append(uid)
        elif change == "unbind" and bound:
            cache.delete_pod(bound.pop(i % len(bound)))
        elif change == "node":
            product, gpus, labels = CONFIGS[(i + step) % len(CONFIGS)]
            cache.upsert_node(
                make_node(node, product, gpus, labels=labels, resource_version=f"v{step}")
            )
        elif change == "delete-node":
            cache.delete_node(node)
        elif change == "policy":
            cache.set_policy(policy)
    assert answer(list(names)) == answer(list(names))


def test_a_kept_grouping_follows_the_replicas_of_the_pods_controller() -> None:
    """A replica that stops being one (its ReplicaSet deleted, orphaning it) changes no
    node's shape, so the grouping is reused; the replica counts it keeps must follow."""
    policy = example_policy()
    nodes = [make_node(f"h{i:03d}", "H100", 4) for i in range(80)]
    names = [n.metadata.name for n in nodes]

    def replica(name: str, node: str, owner: str | None = "ReplicaSet") -> Pod:
        return make_pod(
            name, 1, uid=f"u-{name}", node=node, phase="Running", workload="interactive",
            owner_kind=owner, owner_name="web",
        )  # fmt: skip

    solo = make_pod("solo", 1, uid="u-solo", node="h001", phase="Running", workload="interactive")
    cache = make_cache(policy, nodes, [replica("web-0", "h000"), solo, replica("web-2", "h002")])
    intent = pod_intent(
        make_pod("web-1", 1, workload="interactive", owner_kind="ReplicaSet", owner_name="web"),
        policy,
    )

    def scores() -> dict[str, int]:
        found = score_nodes(intent, names, cache.node, cache, policy, cache.shape_lookup)
        return dict(zip(*found, strict=True))

    assert scores()["h000"] == scores()["h002"] < scores()["h001"]  # (a reused grouping)
    cache.upsert_pod(replica("web-0", "h000", owner=None))
    found = scores()
    assert found["h000"] == found["h001"] > found["h002"]
