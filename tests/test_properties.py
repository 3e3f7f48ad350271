"""Properties that must hold for any cluster, pod and policy (Hypothesis)."""

from __future__ import annotations

from typing import Any

import msgspec
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.policy import Policy, dump_policy, load_policy_text, pod_intent
from extender.rules import separation
from extender.rules.engine import explain_nodes, filter_nodes, score_nodes
from extender.state import ClusterCache
from extender.wire import Node, Pod
from tests.builders import EXAMPLE_POLICY, PREFIX, example_policy, make_cache, make_node, make_pod

ZONE = "topology.kubernetes.io/zone"
NODE_NAMES = [f"n{i}" for i in range(6)]
PRODUCTS = ["H100", "A100-80GB", "A100-40GB", "L40S", "T4", "RTX-6000", None]
WORKLOADS = ["interactive", "batch", None, "training"]  # training: an unknown label


def _variant(zone: bool, hard: bool, fragmentation: bool = False) -> Policy:
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    if fragmentation:
        doc["workloadClasses"]["batch"]["packing"] = "fragmentation"
        del doc["headroom"]
    sep = doc["workloadClasses"]["interactive"]["separation"]
    if zone:
        sep["topologyKey"] = ZONE
    if hard:
        sep["mode"] = "hard"
    doc["dedicated"]["classes"] = [{"class": "standard", "workload": "interactive", "mode": "soft"}]
    return load_policy_text(yaml.safe_dump(doc))


POLICIES = [
    example_policy(),
    _variant(True, False),
    _variant(False, True),
    _variant(True, True),
    _variant(False, False, fragmentation=True),
]
policies = st.sampled_from(POLICIES)


@st.composite
def nodes(draw: st.DrawFn) -> list[Node]:
    names = draw(st.lists(st.sampled_from(NODE_NAMES), unique=True, max_size=len(NODE_NAMES)))
    out = []
    for name in names:
        labels = {ZONE: draw(st.sampled_from(["a", "b"]))}
        if draw(st.booleans()):
            labels[f"{PREFIX}dedicated"] = draw(st.sampled_from(["interactive", "batch"]))
        product = draw(st.sampled_from(PRODUCTS))
        gpus = draw(st.integers(0, 8))
        out.append(make_node(name, product, gpus, labels=labels))
    return out


@st.composite
def pods(draw: st.DrawFn, on: list[str], whole_only: bool = False, max_size: int = 8) -> list[Pod]:
    count = draw(st.integers(0, max_size))
    out = []
    for i in range(count):
        annotations = {}
        gpus = draw(st.integers(0, 3))
        if not whole_only and gpus == 1 and draw(st.booleans()):
            annotations[f"{PREFIX}gpu-milli"] = str(draw(st.integers(1, 1000)))
        node = draw(st.sampled_from([*on, "", "elsewhere"]))
        out.append(
            make_pod(
                f"p{i}",
                gpus,
                workload=draw(st.sampled_from(WORKLOADS)),
                node=node,
                phase="Running" if node else "Pending",
                uid=f"uid-{i}",
                annotations=annotations,
                # Replicas of one controller, which `packing: spread` keeps apart.
                owner_kind=draw(st.sampled_from([None, "ReplicaSet"])),
                owner_name="web",
            )
        )
    return out


@st.composite
def incoming_pods(draw: st.DrawFn) -> Pod:
    """A pod to place, with any mix of the wishes a pod can carry."""
    annotations: dict[str, str] = {}
    gpus = draw(st.integers(0, 3))
    if gpus == 1 and draw(st.booleans()):
        annotations[f"{PREFIX}gpu-milli"] = str(draw(st.integers(1, 1000)))
    for key in ("required-classes", "min-class", "excluded-classes", "preferred-classes"):
        if draw(st.integers(0, 3)) == 0:
            chosen = draw(st.lists(st.sampled_from(["premium", "standard", "economy", "gold"])))
            annotations[f"{PREFIX}{key}"] = ",".join(chosen)
    if draw(st.booleans()):
        annotations[f"{PREFIX}tolerate-dedicated"] = draw(st.sampled_from(["*", "interactive"]))
    workload = draw(st.sampled_from(WORKLOADS))
    return make_pod("incoming", gpus, workload=workload, annotations=annotations)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[ClusterCache, Pod, list[str]]:
    """A cache, a pod to place, and the node names a request would carry."""
    node_list = draw(nodes())
    names = [n.metadata.name for n in node_list]
    cache = make_cache(draw(policies), node_list, draw(pods(names)))
    requested = draw(st.lists(st.sampled_from([*NODE_NAMES, "ghost"]), max_size=10))
    return cache, draw(incoming_pods()), requested


def snapshot(cache: ClusterCache) -> dict[str, Any]:
    return {
        "counts": cache.counts(),
        "nodes": {n.name: (sorted(n.free), dict(n.held)) for n in cache.nodes()},
        "classes": {c: cache.class_usage(c) for c in cache.policy.class_names},
        "domains": {
            (k, v): (cache.domain(k, v).capacity, dict(cache.domain(k, v).held))
            for n in cache.nodes()
            for k, v in n.domains.items()
        },
    }


@settings(max_examples=60, deadline=None)
@given(scenes())
def test_scores_are_integers_from_0_to_10(scene: tuple[ClusterCache, Pod, list[str]]) -> None:
    cache, pod, names = scene
    intent = pod_intent(pod, cache.policy)

    scored, scores = score_nodes(intent, names, cache.node, cache, cache.policy, cache.shape_lookup)

    assert all(type(score) is int and 0 <= score <= 10 for score in scores)
    assert scored == list(dict.fromkeys(names))


@settings(max_examples=60, deadline=None)
@given(scenes())
def test_filter_output_partitions_the_unique_input_names(
    scene: tuple[ClusterCache, Pod, list[str]],
) -> None:
    cache, pod, names = scene

    result = filter_nodes(pod_intent(pod, cache.policy), names, cache.node, cache, cache.policy)

    passed, failed, unresolvable = set(result.passed), set(result.failed), set(result.unresolvable)
    assert len(result.passed) == len(passed)
    assert not (passed & failed)
    assert not (passed & unresolvable)
    assert not (failed & unresolvable)
    assert passed | failed | unresolvable == set(names)


@settings(max_examples=40, deadline=None)
@given(scenes(), st.randoms(use_true_random=False))
def test_decisions_do_not_depend_on_node_order(
    scene: tuple[ClusterCache, Pod, list[str]], random: Any
) -> None:
    cache, pod, names = scene
    intent = pod_intent(pod, cache.policy)
    shuffled = list(names)
    random.shuffle(shuffled)

    def verdicts(order: list[str]) -> dict[str, Any]:
        return {
            v.node: (v.reject, v.score)
            for v in explain_nodes(intent, order, cache.node, cache, cache.policy)
        }

    assert verdicts(shuffled) == verdicts(names)


@settings(max_examples=50, deadline=None)
@given(policies, nodes(), st.data())
def test_adding_a_batch_pod_never_raises_an_interactive_pods_separation_score(
    policy: Policy, node_list: list[Node], data: st.DataObject
) -> None:
    names = [n.metadata.name for n in node_list]
    cache = make_cache(policy, node_list, data.draw(pods(names)))
    interactive = pod_intent(make_pod("web", 1, workload="interactive"), policy)
    before = {n.name: separation.score(interactive, n, cache, policy) for n in cache.nodes()}

    target = data.draw(st.sampled_from([*names, "elsewhere"]))
    gpus = data.draw(st.integers(1, 4))
    cache.upsert_pod(
        make_pod("new-batch", gpus, workload="batch", node=target, phase="Running", uid="new")
    )

    for node in cache.nodes():
        assert separation.score(interactive, node, cache, policy) <= before[node.name]


@settings(max_examples=80, deadline=None)
@given(policies, st.data())
def test_a_cache_built_by_events_in_any_order_equals_one_built_by_a_list(
    policy: Policy, data: st.DataObject
) -> None:
    node_list = data.draw(nodes())
    names = [n.metadata.name for n in node_list]
    # Whole GPUs only: which device a shared pod lands on depends on arrival order (best fit),
    # so only the totals, not the per-device shares, are order-free for shared GPUs.
    pod_list = data.draw(pods(names, whole_only=True))
    # Each object's events in watch order; objects interleave in any order.
    histories: list[list[tuple[str, Any]]] = []
    for node in node_list:
        history: list[tuple[str, Any]] = [("node", node)]
        if data.draw(st.booleans()):
            history += [("delete", node.metadata.name), ("node", node)]
        histories.append(history)
    for pod in pod_list:
        history = [("pod", pod)]
        if pod.spec.nodeName and data.draw(st.booleans()):
            seen_pending = msgspec.structs.replace(
                pod, spec=msgspec.structs.replace(pod.spec, nodeName="")
            )
            history.insert(0, ("pod", seen_pending))
        histories.append(history)
    turns = [i for i, history in enumerate(histories) for _ in history]
    turns = data.draw(st.permutations(turns))

    cache = ClusterCache(policy)
    for i in turns:
        kind, obj = histories[i].pop(0)
        if kind == "node":
            cache.upsert_node(obj)
        elif kind == "delete":
            cache.delete_node(obj)
        else:
            cache.upsert_pod(obj)

    assert snapshot(cache) == snapshot(make_cache(policy, node_list, pod_list))


@st.composite
def policy_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Valid policy documents with varied classes, workloads, weights and rules."""
    class_names = draw(
        st.lists(st.sampled_from(["gold", "silver", "bronze", "tin"]), min_size=1, unique=True)
    )
    products = draw(st.permutations(["H100", "H200", "A100", "L40S", "T4", "V100", "A10G"]))
    per_class = max(1, len(products) // len(class_names))
    classes = [
        {"name": name, "products": list(products[i * per_class : (i + 1) * per_class])}
        for i, name in enumerate(class_names)
    ]
    workload_names = draw(
        st.lists(st.sampled_from(["web", "train", "etl"]), min_size=1, max_size=3, unique=True)
    )
    workloads: dict[str, Any] = {}
    for name in workload_names:
        spec: dict[str, Any] = {
            "preferredClasses": draw(st.lists(st.sampled_from(class_names), unique=True)),
            "packing": draw(st.sampled_from(["pack", "spread"])),
        }
        others = [w for w in workload_names if w != name]
        if draw(st.booleans()) and others:
            spec["separation"] = {
                "avoid": draw(st.lists(st.sampled_from(others), min_size=1, unique=True)),
                "mode": draw(st.sampled_from(["hard", "soft", "off"])),
                "topologyKey": draw(st.sampled_from(["kubernetes.io/hostname", ZONE])),
            }
        if draw(st.booleans()):
            spec["gpuAttributes"] = [
                {
                    "key": "nvidia.com/gpu.memory",
                    "operator": "Gt",
                    "values": [str(draw(st.integers(0, 100_000)))],
                }
            ]
        workloads[name] = spec
    doc: dict[str, Any] = {
        "apiVersion": "gpuclass.example.io/v1alpha1",
        "kind": "GpuClassPolicy",
        "gpuClasses": classes,
        "workloadClassification": {
            "default": draw(st.sampled_from(workload_names)),
            "ownerKinds": {"Job": draw(st.sampled_from(workload_names))},
        },
        "workloadClasses": workloads,
        "weights": {
            "classFit": draw(st.floats(0.5, 10, allow_nan=False)),
            "packing": draw(st.integers(0, 5)),
        },
    }
    headroom_classes = draw(st.lists(st.sampled_from(class_names), unique=True, max_size=2))
    doc["headroom"] = [
        {
            "class": c,
            "reserve": draw(st.floats(0, 0.99, allow_nan=False)),
            "for": [draw(st.sampled_from(workload_names))],
            "mode": draw(st.sampled_from(["hard", "soft"])),
        }
        for c in headroom_classes
    ]
    return doc


@settings(max_examples=60, deadline=None)
@given(policy_documents())
def test_a_policy_dumped_and_reloaded_is_equal(doc: dict[str, Any]) -> None:
    policy = load_policy_text(yaml.safe_dump(doc))

    again = load_policy_text(dump_policy(policy))

    assert again.document == policy.document
    assert again.workloads == policy.workloads
    assert again.headroom == policy.headroom
    assert dump_policy(again) == dump_policy(policy)
