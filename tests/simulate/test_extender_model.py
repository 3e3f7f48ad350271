"""The simulated kube-scheduler + extender: the trace mapped onto our vocabulary, and the
server's own verbs giving the very scores the simulator uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from pytest_aiohttp import AiohttpClient

from extender.policy import Policy, load_policy_file, pod_intent
from extender.simulate import Cluster, PodRequest
from extender.simulate.extender_model import (
    ExtenderProfile,
    ExtenderScheduler,
    trace_node,
    trace_pod,
)
from extender.simulate.kube_scheduler import (
    GPU,
    DefaultScheduler,
    InTreeWeights,
    balanced_allocation,
    least_allocated,
)
from extender.state import ClusterCache
from tests.server.payloads import app_for
from tests.simulate.builders import REPO, make_cluster

OPENB_POLICY = REPO / "manifests" / "examples" / "openb-policy.yaml"


def openb_policy() -> Policy:
    return load_policy_file(Path(OPENB_POLICY))


def pod(qos: str, gpus: int = 1, milli: int = 1000, spec: tuple[str, ...] = ()) -> PodRequest:
    return PodRequest(4_000, 8_192, gpus, milli if gpus else 0, spec, qos)


def test_trace_pods_map_onto_workloads_shares_and_required_classes() -> None:
    policy = openb_policy()

    ls = pod_intent(trace_pod(pod("LS", 1, 300), "a", policy), policy)
    be = pod_intent(trace_pod(pod("BE", 2, spec=("V100M16", "V100M32")), "b", policy), policy)

    assert (ls.workload, ls.demand.gpus, ls.demand.milli) == ("interactive", 1, 300)
    assert (be.workload, be.demand.gpus, be.demand.milli) == ("batch", 2, 1000)
    assert be.allowed == {"v100m16", "v100m32"}
    assert not ls.conflicts
    assert not be.conflicts


def test_trace_nodes_are_classed_by_their_gpu_model() -> None:
    policy = openb_policy()
    cluster = make_cluster(("V100M32", 8), ("T4", 2), ("", 0))
    cache = ClusterCache(policy)
    for i in range(len(cluster)):
        cache.upsert_node(trace_node(cluster, i, policy))

    classes = [cache.node(name).gpu_class.name for name in cluster.names]  # type: ignore[union-attr]

    assert classes == ["v100m32", "t4", None]


def test_default_scores_follow_the_in_tree_formulas() -> None:
    cluster = Cluster(["a", "b"], [10_000, 10_000], [10_000, 20_000], [1, 1], ["T4", "T4"])
    cluster.place(0, (), PodRequest(4_000, 0))
    nodes = np.array([0, 1])
    incoming = PodRequest(1_000, 5_000, 0, 0)

    # a: cpu 5000/10000 used -> 50, memory 5000/10000 -> 50; b: cpu 90, memory 75.
    assert least_allocated(cluster, incoming, nodes).tolist() == [50, 82]
    # a: fractions 0.5 and 0.5 -> 100; b: 0.1 and 0.25 -> (1 - 0.075) * 100.
    assert balanced_allocation(cluster, incoming, nodes).tolist() == [100, 92]


def test_the_default_model_spreads_and_the_extender_keeps_interactive_off_batch_nodes() -> None:
    policy = openb_policy()
    cluster = make_cluster(("G2", 8), ("G2", 8))
    batch = PodRequest(1_000, 1_024, 4, 1000, (), "BE")
    cluster.place(0, (0, 1, 2, 3), batch)
    cluster.place(1, (), PodRequest(16_000, 1_024))  # node 1: a quarter of its CPU taken
    rng = np.random.default_rng(1)
    feasible = np.array([True, True])
    interactive = pod("LS")

    default_choice = DefaultScheduler().decide(cluster, interactive, feasible, rng)
    ours = ExtenderScheduler(cluster, policy, ExtenderProfile("default+extender"))
    ours.cache.upsert_pod(trace_pod(batch, "be", policy, "node-0"))
    our_choice = ours.decide(cluster, interactive, feasible, rng)

    assert default_choice is not None
    assert default_choice.node == 0
    assert our_choice is not None
    assert our_choice.node == 1


async def test_the_server_answers_the_simulators_state_with_the_simulators_scores(
    aiohttp_client: AiohttpClient,
) -> None:
    """The server's cache told what the simulator's was (each pod noted by a filter, then
    bound, in the same order): /filter + /prioritize answer with the simulator's scores."""
    policy = openb_policy()
    cluster = make_cluster(("V100M32", 8), ("V100M16", 4), ("G2", 8), ("G2", 8), ("T4", 2))
    model = ExtenderScheduler(cluster, policy, ExtenderProfile("default+extender"))
    server_cache = ClusterCache(policy)
    server_cache.replace_nodes(trace_node(cluster, i, policy) for i in range(len(cluster)))
    server_cache.replace_pods([])
    client = await aiohttp_client(app_for(policy, server_cache))
    rng = np.random.default_rng(7)
    arrivals = [pod("BE", 1), pod("LS", 1, 500), pod("BE", 2), pod("LS", 4), pod("BE", 1, 250)]
    for arrival in arrivals:
        feasible = cluster.feasible(arrival)
        choice = model.decide(cluster, arrival, feasible, rng)
        assert choice is not None
        cluster.place(choice.node, choice.gpus, arrival)
        # The server hears of it as the scheduler and the watch would tell it.
        wire = trace_pod(arrival, str(choice.token), policy)
        names = [name for name, fits in zip(cluster.names, feasible, strict=True) if fits]
        body = msgspec.json.encode({"Pod": wire, "Nodes": None, "NodeNames": names})
        await _post(client, "/filter", body)
        await _post(client, "/prioritize", body)
        node = cluster.names[choice.node]
        server_cache.upsert_pod(trace_pod(arrival, str(choice.token), policy, node=node))

    for k, probe in enumerate(
        (pod("LS", 1), pod("BE", 2), pod("LS", 1, 300, ("V100M16", "V100M32")))
    ):
        wire = trace_pod(probe, f"probe-{k}", policy)
        names = list(cluster.names)
        model.cache.note_pending(wire)  # as /filter notes it in the server's cache
        passed, scores = model.filter_and_score(wire, names)

        body = msgspec.json.encode({"Pod": wire, "Nodes": None, "NodeNames": names})
        filtered = await _post(client, "/filter", body)
        assert filtered["NodeNames"] == passed
        assert passed, "every probe fits somewhere"
        body = msgspec.json.encode({"Pod": wire, "Nodes": None, "NodeNames": passed})
        prioritized = await _post(client, "/prioritize", body)
        assert [(p["Host"], p["Score"]) for p in prioritized] == list(
            zip(passed, scores, strict=True)
        )


async def _post(client: Any, path: str, body: bytes) -> Any:
    response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert response.status == 200, await response.text()
    return await response.json()


def test_a_pod_without_gpus_reaches_the_extender_unless_managed_resources_keep_it_away() -> None:
    # node-0: 128 cores, its 8 GPUs taken by batch pods of 6 cores each; node-1: 64 cores,
    # 8 free GPUs. A 60-core pod without GPUs would leave node-1 4 cores, too few for a pod
    # like those: 8 GPUs stranded. MostAllocated on cpu alone prefers the fuller node-1.
    policy = openb_policy()
    batch = PodRequest(6_000, 1_024, 1, 1000, (), "BE")
    etl = PodRequest(60_000, 1_024, 0, 0, (), "BE")
    mostly_cpu = InTreeWeights(fit_strategy="MostAllocated", fit_resources=(("cpu", 1),))
    feasible = np.array([True, True])

    def choice(managed: frozenset[str] | None) -> int:
        state = Cluster(["node-0", "node-1"], [128_000, 64_000], [262_144] * 2, [8, 8], ["G2"] * 2)
        model = ExtenderScheduler(
            state, policy, ExtenderProfile("x", in_tree=mostly_cpu, managed=managed)
        )
        for i in range(8):
            state.place(0, (i,), batch)
            model.cache.upsert_pod(trace_pod(batch, f"b{i}", policy, "node-0"))
        placement = model.decide(state, etl, feasible, np.random.default_rng(1))
        assert placement is not None
        return placement.node

    assert choice(None) == 0  # our fragmentation score keeps node-1's GPUs usable
    assert choice(frozenset({GPU})) == 1  # not asked: the in-tree score decides
