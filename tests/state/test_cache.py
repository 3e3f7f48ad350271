"""The cluster cache fed with watch events, relists and our own binds."""

from __future__ import annotations

import gc
from typing import Any

import msgspec
import pytest
import yaml

from extender.policy import ClassName, Policy, load_policy_text
from extender.state import ClassUsage, ClusterCache
from extender.state.cache import MAX_NOTED, Expired
from extender.state.provisional import StageTtl
from extender.wire import Node, Pod
from tests.builders import EXAMPLE_POLICY, PREFIX, example_policy, make_cache, make_node, make_pod

ZONE = "topology.kubernetes.io/zone"


def snapshot(cache: ClusterCache) -> dict[str, Any]:
    """Everything a rule can read, in a form two caches can be compared by."""
    return {
        "counts": cache.counts(),
        "nodes": {
            n.name: (n.gpu_class.name, n.gpu_count, sorted(n.free), dict(n.held))
            for n in cache.nodes()
        },
        "classes": {c: cache.class_usage(c) for c in cache.policy.class_names},
        "pods": {p.uid: (p.node, p.workload, p.demand) for p in cache.pods()},
        "domains": {
            (k, v): (cache.domain(k, v).capacity, dict(cache.domain(k, v).held))
            for n in cache.nodes()
            for k, v in n.domains.items()
        },
    }


def bound(name: str, node: str, gpus: int = 1, workload: str = "batch", **kw: Any) -> Pod:
    return make_pod(name, gpus, workload=workload, node=node, phase="Running", uid=name, **kw)


def pending(name: str, gpus: int = 1, workload: str = "batch") -> Pod:
    return make_pod(name, gpus, workload=workload, uid=name)


def free_of(cache: ClusterCache, node: str) -> list[int]:
    features = cache.node(node)
    assert features is not None
    return features.free


def held_on(cache: ClusterCache, node: str) -> dict[str, int]:
    features = cache.node(node)
    assert features is not None
    return {str(workload): milli for workload, milli in features.held.items()}


def usage(cache: ClusterCache, name: str) -> ClassUsage:
    return cache.class_usage(ClassName(name))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- nodes -------------------------------------------------------------------------


def test_an_added_node_is_classified_and_counted_in_its_class() -> None:
    cache = ClusterCache(example_policy())

    cache.upsert_node(make_node("h1", "H100", 8))

    assert free_of(cache, "h1") == [1000] * 8
    assert usage(cache, "premium") == ClassUsage(capacity=8000, free=8000, nodes=1)
    assert usage(cache, "economy") == ClassUsage()
    assert cache.counts()["nodes"] == 1


def test_relabelling_a_node_moves_it_and_its_pods_to_the_new_class() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "H100", 4)], [bound("a", "n1", 1)])

    cache.upsert_node(make_node("n1", "T4", 4, resource_version="2"))

    node = cache.node("n1")
    assert node is not None
    assert node.gpu_class.name == "economy"
    assert usage(cache, "premium") == ClassUsage()
    assert usage(cache, "economy") == ClassUsage(capacity=4000, free=3000, nodes=1)
    assert held_on(cache, "n1") == {"batch": 1000}


def test_a_gpu_count_change_reallocates_the_pods_on_the_new_devices() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 8)], [bound("a", "n1", 2)])

    cache.upsert_node(make_node("n1", "T4", 4, resource_version="2"))
    assert free_of(cache, "n1") == [0, 0, 1000, 1000]

    cache.upsert_node(make_node("n1", "T4", 1, resource_version="3"))
    node = cache.node("n1")
    assert node is not None
    assert node.free_milli == 0  # a bound pod is a fact: the node reads full, not free
    assert node.held == {"batch": 2000}
    assert usage(cache, "economy").free == 0


def test_a_deleted_node_leaves_the_cache_and_its_class() -> None:
    cache = make_cache(example_policy(), [make_node("h1", "H100", 8)], [bound("a", "h1", 2)])

    cache.delete_node("h1")
    cache.delete_node("h1")  # a repeated delete is harmless

    assert cache.node("h1") is None
    assert usage(cache, "premium") == ClassUsage()
    assert cache.domain("kubernetes.io/hostname", "h1").capacity == 0
    assert cache.pod("a") is not None  # the pod's own delete event will come


def test_a_node_deleted_and_added_again_charges_its_pods_again() -> None:
    node = make_node("h1", "H100", 8)
    pod = bound("a", "h1", 2)
    cache = make_cache(example_policy(), [node], [pod])

    cache.delete_node("h1")
    cache.upsert_node(node)

    assert snapshot(cache) == snapshot(make_cache(example_policy(), [node], [pod]))
    assert held_on(cache, "h1") == {"batch": 2000}


# ---- pods --------------------------------------------------------------------------


def test_a_pod_is_pending_then_charged_when_bound_then_freed_when_deleted() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4)])

    cache.upsert_pod(pending("a", 2))
    assert cache.counts()["pods_pending"] == 1
    assert free_of(cache, "n1") == [1000] * 4

    cache.upsert_pod(bound("a", "n1", 2))
    assert cache.counts()["pods_bound"] == 1
    assert free_of(cache, "n1") == [0, 0, 1000, 1000]
    assert usage(cache, "economy").free == 2000
    assert [p.uid for p in cache.pods_on("n1")] == ["a"]

    cache.delete_pod("a")
    assert free_of(cache, "n1") == [1000] * 4
    assert cache.counts()["pods"] == 0
    assert held_on(cache, "n1") == {}


def test_an_unchanged_pod_update_charges_nothing_twice() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4)], [bound("a", "n1", 2)])

    cache.upsert_pod(bound("a", "n1", 2))

    assert free_of(cache, "n1") == [0, 0, 1000, 1000]


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_finished_pod_is_forgotten_and_its_gpus_freed(phase: str) -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 2)], [bound("a", "n1", 2)])

    cache.upsert_pod(make_pod("a", 2, workload="batch", node="n1", phase=phase, uid="a"))

    assert cache.pod("a") is None
    assert free_of(cache, "n1") == [1000, 1000]


def test_a_pod_without_gpus_is_not_tracked() -> None:
    cache = make_cache(example_policy(), [make_node("n1")])

    cache.upsert_pod(bound("cpu", "n1", 0))

    assert cache.counts()["pods"] == 0


def test_a_pod_arriving_before_its_node_is_charged_when_the_node_arrives() -> None:
    cache = ClusterCache(example_policy())
    cache.upsert_pod(bound("a", "n1", 3, workload="interactive"))

    cache.upsert_node(make_node("n1", "L40S", 4))

    assert free_of(cache, "n1") == [0, 0, 0, 1000]
    assert held_on(cache, "n1") == {"interactive": 3000}
    assert usage(cache, "standard").free == 1000


def test_a_pod_whose_workload_label_changes_moves_its_gpus_to_the_new_workload() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4)], [bound("a", "n1", 2)])

    cache.upsert_pod(bound("a", "n1", 2, workload="interactive"))

    assert held_on(cache, "n1") == {"interactive": 2000}
    assert free_of(cache, "n1").count(0) == 2


def test_shared_gpu_pods_are_charged_per_device() -> None:
    milli = {f"{PREFIX}gpu-milli": "300"}
    pods = [bound("a", "n1", annotations=milli), bound("b", "n1", annotations=milli)]

    cache = make_cache(example_policy(), [make_node("n1", "T4", 2)], pods)

    assert sorted(free_of(cache, "n1")) == [400, 1000]
    assert held_on(cache, "n1") == {"batch": 600}


def test_pods_of_one_template_share_their_kept_facts() -> None:
    """150,000 cached pods fit in memory only if per-pod records stay small."""
    big = {"kubectl.kubernetes.io/last-applied-configuration": "{...}" * 1000}
    pods = [bound(f"p{i}", "n1", annotations=big) for i in range(3)]
    cache = make_cache(example_policy(), [make_node("n1")], pods)

    records = [cache.pod(f"p{i}") for i in range(3)]

    assert all(r is not None for r in records)
    first = records[0]
    assert first is not None
    for record in records[1:]:
        assert record is not None
        assert record.inputs is first.inputs
        assert record.demand is first.demand
    assert not hasattr(first, "pod"), "the Pod object (annotations and all) is not kept"


def test_nodes_keep_only_the_labels_the_policy_reads() -> None:
    policy = example_policy()
    node = make_node("n1", "H100", 8, labels={ZONE: "a", "team": "x", "cloud.io/unused": "y"})
    cache = make_cache(policy, [node], [])

    features = cache.node("n1")

    assert features is not None
    assert set(features.labels) <= policy.node_label_keys
    assert "nvidia.com/gpu.product" in features.labels
    assert "team" not in features.labels


# ---- relist ------------------------------------------------------------------------


def test_a_relist_removes_what_is_gone_and_equals_a_fresh_cache() -> None:
    policy = example_policy()
    cache = make_cache(
        policy,
        [make_node("n1", "T4", 4), make_node("n2", "H100", 8), make_node("gone", "L40S", 2)],
        [bound("a", "n1", 2), bound("b", "n2", 1), bound("c", "gone", 2), pending("d")],
    )
    nodes = [make_node("n1", "T4", 4), make_node("n2", "H100", 8, resource_version="9")]
    pods = [bound("a", "n1", 1), bound("d", "n2", 1), bound("e", "n2", 3, "interactive")]

    cache.replace_nodes(nodes)
    cache.replace_pods(pods)

    assert cache.node("gone") is None
    assert cache.pod("b") is None
    assert cache.pod("c") is None
    assert snapshot(cache) == snapshot(make_cache(policy, nodes, pods))
    assert cache.ready


def test_the_cache_is_ready_only_after_both_lists() -> None:
    cache = ClusterCache(example_policy())
    assert not cache.ready

    cache.replace_nodes([])
    assert not cache.ready

    cache.replace_pods([])
    assert cache.ready


# ---- assumed pods (bind) -----------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def binding(clock: Clock) -> ClusterCache:
    """One T4 node with 4 GPUs and a pending 2-GPU pod 'a' the watch reported."""
    ttl = StageTtl(noted=30, assumed=30)
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4)], ttl=ttl, clock=clock)
    cache.upsert_pod(pending("a", 2))
    return cache


def test_assume_charges_the_node_at_once(binding: ClusterCache, clock: Clock) -> None:
    record = binding.assume("a", "n1")

    assert record is not None
    assert binding.is_assumed("a")
    assert free_of(binding, "n1") == [0, 0, 1000, 1000]
    assert binding.counts()["pods_assumed"] == 1


def test_the_watch_confirming_the_binding_clears_the_assumption(binding: ClusterCache) -> None:
    binding.assume("a", "n1")

    binding.upsert_pod(bound("a", "n1", 2))

    record = binding.pod("a")
    assert record is not None
    assert not binding.is_assumed("a")
    assert binding.counts()["pods_assumed"] == 0
    assert free_of(binding, "n1") == [0, 0, 1000, 1000]
    assert binding.expire().assumed == []


def test_a_late_pending_watch_event_does_not_undo_the_assumption(binding: ClusterCache) -> None:
    binding.assume("a", "n1")

    binding.upsert_pod(pending("a", 2))

    record = binding.pod("a")
    assert record is not None
    assert (record.node, binding.is_assumed("a")) == ("n1", True)
    assert free_of(binding, "n1") == [0, 0, 1000, 1000]


def test_a_relist_that_still_shows_the_pod_pending_keeps_the_assumption(
    binding: ClusterCache,
) -> None:
    binding.assume("a", "n1")

    binding.replace_pods([pending("a", 2)])

    assert binding.counts()["pods_assumed"] == 1
    assert free_of(binding, "n1") == [0, 0, 1000, 1000]


def test_the_watch_binding_elsewhere_wins_over_the_assumption(binding: ClusterCache) -> None:
    binding.upsert_node(make_node("n2", "T4", 4))
    binding.assume("a", "n1")

    binding.upsert_pod(bound("a", "n2", 2))

    assert free_of(binding, "n1") == [1000] * 4
    assert free_of(binding, "n2") == [0, 0, 1000, 1000]
    assert binding.counts()["pods_assumed"] == 0


def test_an_unconfirmed_assumption_expires_after_the_ttl(
    binding: ClusterCache, clock: Clock
) -> None:
    binding.assume("a", "n1")

    clock.now += 29
    assert binding.expire().assumed == []
    clock.now += 1
    expired = binding.expire().assumed

    assert [r.uid for r in expired] == ["a"]
    assert free_of(binding, "n1") == [1000] * 4
    record = binding.pod("a")
    assert record is not None
    assert (record.node, binding.is_assumed("a")) == ("", False)
    assert binding.counts() == {
        "nodes": 1,
        "pods": 1,
        "pods_bound": 0,
        "pods_pending": 1,
        "pods_assumed": 0,
    }


def test_a_pod_only_a_filter_told_of_goes_with_its_unconfirmed_assumption(
    binding: ClusterCache, clock: Clock
) -> None:
    binding.note_pending(pending("ghost", 1))  # the watch never reports it
    binding.assume("ghost", "n1")
    clock.now += 30

    assert [r.uid for r in binding.expire().assumed] == ["ghost"]

    assert binding.pod("ghost") is None
    assert free_of(binding, "n1") == [1000] * 4
    assert binding.expire() == Expired()


def test_a_pod_the_watch_reported_after_our_bind_stays_when_the_assumption_ends(
    binding: ClusterCache, clock: Clock
) -> None:
    binding.note_pending(pending("late", 1))
    binding.assume("late", "n1")
    binding.upsert_pod(pending("late", 1))  # the watch: real, its binding not seen yet
    clock.now += 30

    assert [r.uid for r in binding.expire().assumed] == ["late"]

    record = binding.pod("late")
    assert record is not None
    assert record.node == ""


def test_a_failed_bind_leaves_a_pod_only_a_filter_told_of_noted_for_its_ttl(
    binding: ClusterCache, clock: Clock
) -> None:
    binding.note_pending(pending("new", 1))
    clock.now += 20
    binding.assume("new", "n1")
    binding.forget_assumed("new")

    clock.now += 29  # noted again for a whole stage from the failed bind
    assert binding.expire().noted == 0
    assert binding.pod("new") is not None
    clock.now += 1
    assert binding.expire().noted == 1
    assert binding.pod("new") is None


def test_forget_assumed_undoes_a_failed_bind(binding: ClusterCache) -> None:
    binding.assume("a", "n1")

    binding.forget_assumed("a")

    assert free_of(binding, "n1") == [1000] * 4
    assert binding.counts()["pods_assumed"] == 0


def test_forget_assumed_leaves_a_confirmed_pod_alone(binding: ClusterCache) -> None:
    binding.upsert_pod(bound("a", "n1", 2))

    binding.forget_assumed("a")

    assert free_of(binding, "n1") == [0, 0, 1000, 1000]


def test_assuming_an_unknown_pod_does_nothing(binding: ClusterCache) -> None:
    assert binding.assume("nobody", "n1") is None


def test_assuming_an_already_confirmed_binding_changes_nothing(binding: ClusterCache) -> None:
    binding.upsert_pod(bound("a", "n1", 2))

    record = binding.assume("a", "n1")

    assert record is not None
    assert not binding.is_assumed("a")
    assert free_of(binding, "n1") == [0, 0, 1000, 1000]


def test_note_pending_records_only_new_unbound_pods(binding: ClusterCache) -> None:
    binding.note_pending(bound("b", "n1", 1))
    binding.note_pending(pending("a", 3))  # already known: the watch's version stands

    assert binding.pod("b") is None
    record = binding.pod("a")
    assert record is not None
    assert record.demand.gpus == 2


def test_a_noted_pod_the_watch_never_reports_is_forgotten_after_the_ttl(
    binding: ClusterCache, clock: Clock
) -> None:
    # Found by the soak: every filter call for a pod no API server held (or one deleted
    # before its watch event) used to stay in the cache for good.
    binding.note_pending(pending("ghost", 1))
    binding.note_pending(pending("real", 1))
    binding.upsert_pod(pending("real", 1))  # the watch reports it: it is real
    clock.now += 29
    assert binding.expire().noted == 0

    clock.now += 2
    assert binding.expire().noted == 1

    assert binding.pod("ghost") is None
    assert binding.pod("real") is not None
    assert binding.expire().noted == 0


def test_shared_pod_inputs_are_not_kept_once_no_pod_holds_them() -> None:
    # Found by `make fuzz`: every one-off pod (its labels, its GPU count) stayed interned.
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4)])
    for i in range(50):
        cache.note_pending(pending(f"one-off-{i}", 1 + i, workload=f"w{i}"))
        cache.delete_pod(f"one-off-{i}")
    gc.collect()

    assert len(cache._interned._values) == 0


# ---- aggregates and policy -----------------------------------------------------------


def zoned_policy() -> Policy:
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    doc["workloadClasses"]["interactive"]["separation"]["topologyKey"] = ZONE
    return load_policy_text(yaml.safe_dump(doc))


def test_class_and_domain_usage_sum_over_nodes() -> None:
    nodes = [
        make_node("h1", "H100", 8, labels={ZONE: "a"}),
        make_node("h2", "H100", 8, labels={ZONE: "b"}),
        make_node("t1", "T4", 4, labels={ZONE: "a"}),
    ]
    pods = [bound("x", "h1", 2), bound("y", "h2", 1, "interactive"), bound("z", "t1", 4)]

    cache = make_cache(zoned_policy(), nodes, pods)

    assert usage(cache, "premium") == ClassUsage(capacity=16000, free=13000, nodes=2)
    assert usage(cache, "economy") == ClassUsage(capacity=4000, free=0, nodes=1)
    zone_a = cache.domain(ZONE, "a")
    assert (zone_a.capacity, zone_a.held) == (12000, {"batch": 6000})
    assert cache.domain(ZONE, "b").held == {"interactive": 1000}
    assert cache.domain("kubernetes.io/hostname", "h1").held == {"batch": 2000}
    assert cache.domain(ZONE, "nowhere").capacity == 0


def _edited_policy(edit: Any) -> Policy:
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    edit(doc)
    return load_policy_text(yaml.safe_dump(doc))


def test_set_policy_recomputes_classes_workloads_and_domains_from_kept_facts() -> None:
    nodes = [make_node("h1", "H100", 8, labels={ZONE: "a"}), make_node("l1", "L40S", 8)]
    pods = [bound("x", "h1", 2), bound("y", "l1", 1, "interactive")]
    cache = make_cache(example_policy(), nodes, pods)

    def edit(doc: dict[str, Any]) -> None:
        doc["gpuClasses"][0]["products"].append("L40S")
        doc["gpuClasses"][1]["products"].remove("L40S")
        doc["workloadClasses"]["batch"]["separation"]["mode"] = "off"
        doc["workloadClassification"]["default"] = "interactive"

    policy = _edited_policy(edit)

    assert cache.set_policy(policy) == frozenset()

    assert cache.policy is policy
    assert cache.ready, "nothing to read again: the kept facts serve the new policy"
    assert snapshot(cache) == snapshot(make_cache(policy, nodes, pods))
    assert usage(cache, "premium").nodes == 2


def test_a_policy_reading_other_pod_and_node_inputs_needs_both_listed_again() -> None:
    nodes = [make_node("h1", "H100", 8, labels={ZONE: "a"}), make_node("l1", "L40S", 8)]
    pods = [bound("x", "h1", 2), bound("y", "l1", 1, "interactive")]
    cache = make_cache(example_policy(), nodes, pods)

    def edit(doc: dict[str, Any]) -> None:
        doc["workloadClasses"]["interactive"]["separation"]["topologyKey"] = ZONE
        doc["workloadClassification"]["label"] = "acme.org/workload"  # pods lose their label

    policy = _edited_policy(edit)

    assert cache.set_policy(policy) == frozenset({"nodes", "pods"})  # label key, zone label
    assert not cache.ready

    cache.replace_nodes(nodes)
    cache.replace_pods(pods)

    assert cache.ready
    assert snapshot(cache) == snapshot(make_cache(policy, nodes, pods))
    assert cache.domain(ZONE, "a").held == {"batch": 2000}
    assert held_on(cache, "l1") == {"batch": 1000}  # default workload now


def test_a_policy_reading_other_node_labels_needs_the_nodes_listed_again() -> None:
    disk = "example.com/nvme"
    nodes = [make_node("h1", "H100", 8, labels={disk: "yes"}), make_node("h2", "H100", 8)]
    cache = make_cache(example_policy(), nodes, [bound("x", "h1", 2)])

    def edit(doc: dict[str, Any]) -> None:
        attrs = doc["workloadClasses"]["interactive"].setdefault("gpuAttributes", [])
        attrs.append({"key": disk, "operator": "In", "values": ["yes"]})

    policy = _edited_policy(edit)

    assert cache.set_policy(policy) == frozenset({"nodes"})
    assert not cache.ready

    cache.replace_nodes(nodes)  # the same resourceVersions: read again all the same

    assert cache.ready
    h1 = cache.node("h1")
    assert h1 is not None
    assert h1.labels.get(disk) == "yes"
    assert snapshot(cache) == snapshot(make_cache(policy, nodes, [bound("x", "h1", 2)]))


def test_a_relisted_node_with_the_same_resource_version_is_not_rebuilt() -> None:
    node = make_node("n1", "T4", 4, resource_version="7")
    cache = make_cache(example_policy(), [node], [bound("a", "n1", 1)])
    before = cache.node("n1")

    cache.replace_nodes([make_node("n1", "T4", 4, resource_version="7")])

    assert cache.node("n1") is before


# ---- full Node objects in requests (nodeCacheCapable: false) ---------------------------


def test_features_from_the_same_resource_version_are_the_cached_ones() -> None:
    node = make_node("n1", "T4", 4, resource_version="7")
    cache = make_cache(example_policy(), [node], [bound("a", "n1", 1)])

    assert cache.features_from(node) is cache.node("n1")


def test_features_from_a_newer_node_object_charge_the_cached_pods() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4)], [bound("a", "n1", 3)])
    newer = make_node("n1", "T4", 8, resource_version="8")

    features = cache.features_from(newer)

    assert features is not cache.node("n1")
    assert features.gpu_count == 8
    assert features.free == [0, 0, 0] + [1000] * 5
    assert features.held == {"batch": 3000}
    assert free_of(cache, "n1") == [0, 0, 0, 1000]  # the cache itself is untouched


def test_features_from_an_unknown_node_start_empty() -> None:
    cache = ClusterCache(example_policy())
    data = msgspec.to_builtins(make_node("new", "H100", 2))

    features = cache.features_from(msgspec.convert(data, Node))

    assert (features.free, features.held) == ([1000, 1000], {})


def test_a_device_plugin_restart_that_briefly_zeroes_allocatable_does_not_double_count() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4)], [bound("a", "n1", 2)])

    cache.upsert_node(make_node("n1", "T4", 0, resource_version="2"))
    cache.upsert_node(make_node("n1", "T4", 4, resource_version="3"))

    assert held_on(cache, "n1") == {"batch": 2000}
    assert cache.domain("kubernetes.io/hostname", "n1").held == {"batch": 2000}
    assert free_of(cache, "n1") == [0, 0, 1000, 1000]


def test_deleting_a_pod_from_a_node_without_gpus_clears_what_it_held() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 0)], [bound("a", "n1", 1)])

    cache.delete_pod("a")

    assert held_on(cache, "n1") == {}
    assert cache.domain("kubernetes.io/hostname", "n1").held == {}


def test_cached_features_serve_a_request_only_for_the_same_node_version() -> None:
    cache = make_cache(example_policy(), [make_node("h100", "H100", 8, resource_version="7")])
    cached = cache.node("h100")
    assert cache.cached_version("h100", "7") is cached
    assert cache.cached_version("h100", "8") is None  # the request's object is newer
    assert cache.cached_version("h100", "") is None  # no version: cannot tell
    assert cache.cached_version("ghost", "7") is None


def sharing(name: str, milli: int, node: str = "", workload: str = "batch", **kw: Any) -> Pod:
    annotations = {f"{PREFIX}gpu-milli": str(milli), **kw.pop("annotations", {})}
    return make_pod(
        name,
        1,
        workload=workload,
        node=node,
        phase="Running",
        uid=name,
        annotations=annotations,
        **kw,
    )


def test_a_sharing_pod_is_charged_to_the_gpu_our_bind_named_on_it() -> None:
    devices = f"{PREFIX}gpu-devices"
    pods = [sharing("a", 300, "n1", annotations={devices: "2"})]
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4)], pods)

    assert free_of(cache, "n1") == [1000, 1000, 700, 1000]
    # A name that does not fit (no such GPU, not one index, not a number) is a guess only.
    for bad in ("9", "1,2", "x"):
        cache.upsert_pod(sharing("a", 300, "n1", annotations={devices: bad}))
        assert sorted(free_of(cache, "n1")) == [700, 1000, 1000, 1000]


def test_sharing_pods_of_classes_kept_apart_are_charged_to_different_gpus() -> None:
    pods = [sharing("b", 300, "n1", "batch"), sharing("i", 300, "n1", "interactive")]
    cache = make_cache(example_policy(), [make_node("n1", "T4", 2)], pods)

    # Best fit alone would stack both on one GPU; the interactive one gets its own.
    assert free_of(cache, "n1") == [700, 700]
    cache.delete_pod("b")
    features = cache.node("n1")
    assert features is not None
    assert [dict(h) for h in features.holders] == [{}, {"interactive": 300}]


def test_the_bind_annotation_survives_a_relist() -> None:
    devices = f"{PREFIX}gpu-devices"
    pods = [sharing("a", 300, "n1", annotations={devices: "1"})]
    cache = make_cache(example_policy(), [make_node("n1", "T4", 2)], pods)
    cache.replace_pods(pods)

    assert free_of(cache, "n1") == [1000, 700]


def cpu_free(cache: ClusterCache, node: str) -> int:
    features = cache.node(node)
    assert features is not None
    return features.cpu_free


def test_free_cpu_counts_every_pod_bound_to_the_node_with_or_without_gpus() -> None:
    web = make_pod("web", 0, cpu="6", node="n1", phase="Running", uid="web")
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4, cpu="32")], [web])
    assert cpu_free(cache, "n1") == 26_000

    cache.upsert_pod(bound("train", "n1", cpu="10"))
    assert cpu_free(cache, "n1") == 16_000
    # The node's new version keeps what its pods take; a finished pod gives it back.
    cache.upsert_node(make_node("n1", "T4", 4, cpu="32", resource_version="2"))
    assert cpu_free(cache, "n1") == 16_000
    cache.upsert_pod(make_pod("web", 0, cpu="6", node="n1", phase="Succeeded", uid="web"))
    assert cpu_free(cache, "n1") == 22_000
    # A relist without the GPU pod forgets it.
    cache.replace_pods([])
    assert cpu_free(cache, "n1") == 32_000


def test_a_pod_without_gpus_seen_before_its_node_is_charged_when_the_node_comes() -> None:
    cache = make_cache(example_policy(), [])
    cache.upsert_pod(make_pod("web", 0, cpu="2500m", node="late", phase="Running", uid="web"))
    cache.upsert_node(make_node("late", "T4", 2, cpu="8"))

    assert cpu_free(cache, "late") == 5_500
    cache.delete_pod("web")
    assert cpu_free(cache, "late") == 8_000


def test_a_bound_pod_without_gpus_takes_its_cpu_at_once_and_gives_it_back_if_the_bind_fails() -> (
    None
):
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4, cpu="32")])
    etl = make_pod("etl", 0, cpu="12", uid="etl")

    assert cache.assume("etl", "n1", etl) is None  # no GPUs: no record
    assert cpu_free(cache, "n1") == 20_000
    # The watch's event charges the same pod once, not twice.
    cache.upsert_pod(make_pod("etl", 0, cpu="12", node="n1", phase="Running", uid="etl"))
    assert cpu_free(cache, "n1") == 20_000

    cache.assume("other", "n1", make_pod("other", 0, cpu="4", uid="other"))
    cache.forget_assumed("other")
    assert cpu_free(cache, "n1") == 20_000


def test_a_gpu_pod_no_filter_noted_is_not_charged_at_bind() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4, cpu="32")])

    assert cache.assume("stranger", "n1", pending("stranger", 1)) is None

    assert cpu_free(cache, "n1") == 32_000
    assert free_of(cache, "n1") == [1000] * 4


def test_the_typical_pods_do_not_depend_on_how_a_binding_was_learnt() -> None:
    """A filter notes a pod; then either our bind assumes it and the watch confirms, or the
    watch alone reports it bound (another binder). The demand mix the rules read must be
    the same snapshot either way, or the server and the simulator score apart."""

    def after_eleven_bindings(through_our_bind: bool) -> object:
        cache = make_cache(example_policy(), [make_node("n1", "T4", 64, cpu="640")])
        cache.upsert_pod(bound("first", "n1", 2))
        cache.demand_mix()  # the snapshot: one 2-GPU pod
        for i in range(11):
            cache.note_pending(pending(f"p{i}", 1))
            if through_our_bind:
                cache.assume(f"p{i}", "n1")
            cache.upsert_pod(bound(f"p{i}", "n1", 1))
        return cache.demand_mix()

    assert after_eleven_bindings(True) == after_eleven_bindings(False)


def test_at_most_max_noted_pods_only_a_filter_told_of_are_kept_oldest_forgotten_first() -> None:
    # A caller filtering pods no API server holds, faster than the TTL forgets them.
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4)])
    cache.upsert_pod(pending("real", 1))  # reported by the watch: never forgotten for this
    for i in range(MAX_NOTED + 10):
        cache.note_pending(pending(f"ghost-{i}", 1))

    assert cache.pod("ghost-0") is None
    assert cache.pod("ghost-9") is None
    assert cache.pod("ghost-10") is not None
    assert cache.pod(f"ghost-{MAX_NOTED + 9}") is not None
    assert cache.pod("real") is not None


# ---- replicas of a controller (packing: spread) -------------------------------------------


def test_replicas_of_a_controller_are_counted_per_node_as_they_come_move_and_go() -> None:
    def replica(name: str, node: str = "", workload: str = "interactive", **kw: Any) -> Pod:
        return make_pod(
            name, 1, uid=name, node=node, phase="Running" if node else "Pending",
            workload=workload, owner_kind="ReplicaSet", owner_name="web", **kw,
        )  # fmt: skip

    cache = make_cache(example_policy(), [make_node(n, "H100", 8) for n in ("n1", "n2")])
    cache.upsert_pod(replica("a", "n1"))
    cache.upsert_pod(replica("b", "n1"))
    cache.upsert_pod(replica("other-ns", "n1", namespace="other"))
    cache.upsert_pod(replica("c"))  # pending: on no node yet
    assert cache.replicas_of("ml/ReplicaSet/web") == {"n1": 2}

    cache.assume("c", "n2")  # our bind, before the watch
    assert cache.replicas_of("ml/ReplicaSet/web") == {"n1": 2, "n2": 1}
    cache.upsert_pod(replica("b", "n2"))  # moved (deleted and recreated under its uid)
    cache.delete_pod("a")
    assert cache.replicas_of("ml/ReplicaSet/web") == {"n2": 2}
    assert cache.replicas_of("other/ReplicaSet/web") == {"n1": 1}

    cache.set_policy(example_policy())  # a policy reload recounts them
    assert cache.replicas_of("ml/ReplicaSet/web") == {"n2": 2}
    # Only the replicas of workload classes that spread are counted (batch packs).
    cache.upsert_pod(replica("d", "n1", workload="batch"))
    assert cache.replicas_of("ml/ReplicaSet/web") == {"n2": 2}
    # Orphaned (its ReplicaSet deleted with --cascade=orphan): no longer a replica.
    cache.upsert_pod(make_pod("c", 1, uid="c", node="n2", phase="Running", workload="interactive"))
    assert cache.replicas_of("ml/ReplicaSet/web") == {"n2": 1}
    cache.delete_pod("b")
    assert cache.replicas_of("ml/ReplicaSet/web") == {}
