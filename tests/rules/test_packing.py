"""Score: pack fills the fullest node first; spread prefers the emptiest."""

from __future__ import annotations

import math

import pytest
import yaml

from extender.policy import Policy, WorkloadName, load_policy_text, pod_intent
from extender.policy.intent import GpuDemand
from extender.rules import packing
from extender.rules.engine import applicable_components, explain_nodes, score_nodes
from extender.state import ClusterCache
from extender.wire import Pod
from tests.builders import EXAMPLE_POLICY, PREFIX, example_policy, make_cache, make_node, make_pod


@pytest.fixture
def cluster() -> ClusterCache:
    """Three standard nodes with 8 GPUs: 'full' has 6 busy, 'half' 4, 'empty' none."""
    nodes = [make_node(n, "L40S", 8) for n in ("full", "half", "empty")]
    pods = [
        make_pod("f", 6, workload="batch", node="full", phase="Running"),
        make_pod("h", 4, workload="batch", node="half", phase="Running"),
    ]
    return make_cache(example_policy(), nodes, pods)


def scores(cache: ClusterCache, workload: str, gpus: int = 1) -> dict[str, float]:
    pod = pod_intent(make_pod(gpus=gpus, workload=workload), cache.policy)
    return {n.name: packing.score(pod, n, cache, cache.policy) for n in cache.nodes()}


def test_pack_prefers_the_fuller_node(cluster: ClusterCache) -> None:
    got = scores(cluster, "batch")  # the example packs batch

    assert got["full"] > got["half"] > got["empty"]
    assert got["full"] == pytest.approx(7 / 8)
    assert got["empty"] == pytest.approx(1 / 8)


def test_spread_prefers_the_emptier_node(cluster: ClusterCache) -> None:
    got = scores(cluster, "interactive")  # the example spreads interactive

    assert got["empty"] > got["half"] > got["full"]
    assert got["empty"] == pytest.approx(7 / 8)


def test_the_pod_itself_counts_toward_the_allocation(cluster: ClusterCache) -> None:
    assert scores(cluster, "batch", gpus=2)["full"] == 1.0
    assert scores(cluster, "batch", gpus=4)["full"] == 1.0  # clamped, not above 1


def test_a_node_without_gpus_scores_zero() -> None:
    cache = make_cache(example_policy(), [make_node("cpu", None, gpus=0)])

    assert scores(cache, "batch") == {"cpu": 0.0}
    assert scores(cache, "interactive") == {"cpu": 0.0}


@pytest.mark.parametrize(
    ("strategy", "used_after", "capacity", "expected"),
    [
        ("pack", 0, 8000, 0.0),
        ("pack", 8000, 8000, 1.0),
        ("pack", 9000, 8000, 1.0),
        ("spread", 2000, 8000, 0.75),
        ("spread", 9000, 8000, 0.0),
    ],
    ids=["pack-empty", "pack-full", "pack-over", "spread-quarter", "spread-over"],
)
def test_pack_scores_the_used_share_and_spread_the_free_share(
    strategy: str, used_after: int, capacity: int, expected: float
) -> None:
    if strategy == "pack":
        assert packing.most_allocated(used_after, capacity) == expected
    else:
        assert packing.spread(used_after, capacity, replicas=0) == expected


# ---- fragmentation (FGD) -----------------------------------------------------------------

HALF = GpuDemand(1, 500)
WHOLE = GpuDemand(1)
TWO = GpuDemand(2)
CPU = 1000  # what make_pod requests
BATCH, INTERACTIVE = WorkloadName("batch"), WorkloadName("interactive")


@pytest.mark.parametrize(
    ("free", "demand", "expected"),
    [
        ([1000, 1000, 300, 0], HALF, 300),  # 300 free cannot hold a half share
        ([1000, 600], HALF, 0),
        ([1000, 1000, 300], WHOLE, 300),  # a partly used GPU is useless to whole pods
        ([1000, 300, 200], TWO, 1500),  # too few whole GPUs: everything is a fragment
        ([0, 0], WHOLE, 0),
    ],
)
def test_unusable_capacity_is_what_a_demand_cannot_take(
    free: list[int], demand: GpuDemand, expected: int
) -> None:
    assert packing.unusable(free, demand) == expected


def test_a_shared_pod_fills_a_fragment_rather_than_break_a_whole_gpu() -> None:
    mix = ((BATCH, (WHOLE, CPU), 0.5), (BATCH, (HALF, CPU), 0.5))
    broken = make_node("broken", "L40S", 2)
    fresh = make_node("fresh", "L40S", 2)
    half = make_pod(
        "half", 1, workload="batch", node="broken", phase="Running", annotations=_share(500)
    )
    waiting = make_pod("whole", 1, workload="batch")  # pending: counts in the mix too
    cache = make_cache(_fragmentation_policy(), [broken, fresh], [half, waiting])
    node_broken, node_fresh = cache.node("broken"), cache.node("fresh")
    assert node_broken is not None
    assert node_fresh is not None
    assert set(cache.demand_mix()) == set(mix)
    pod = pod_intent(make_pod(gpus=1, workload="batch", annotations=_share(500)), cache.policy)

    into_fragment = packing.fragment_growth(node_broken, pod, mix, cache.policy)
    into_whole = packing.fragment_growth(node_fresh, pod, mix, cache.policy)

    assert into_fragment == pytest.approx(-250.0)  # half of the mix could not use the 500
    assert into_whole == pytest.approx(250.0)  # whole pods lose the GPU it breaks
    assert packing.score(pod, node_broken, cache, cache.policy) > packing.score(
        pod, node_fresh, cache, cache.policy
    )


def _separated_fragmentation_policy() -> Policy:
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    for workload in ("interactive", "batch"):
        doc["workloadClasses"][workload]["packing"] = "fragmentation"
    return load_policy_text(yaml.safe_dump(doc))


def test_a_share_fills_its_own_class_gpu_rather_than_close_a_free_gpu_to_the_other_class() -> None:
    # Both nodes have a half-used GPU and a free one; on `own` batch holds the half, on
    # `other` interactive does. Half of the pods to come are interactive halves, half batch
    # halves. A batch half fits both nodes, each time without a fragment of its own class;
    # but on `other` it must break the free GPU, whose rest interactive halves may no
    # longer share, while on `own` it closes a GPU interactive halves could not use anyway.
    nodes = [make_node("own", "L40S", 2), make_node("other", "L40S", 2)]
    held = [
        make_pod("b", 1, workload="batch", node="own", phase="Running", annotations=_share(500)),
        make_pod(
            "i", 1, workload="interactive", node="other", phase="Running", annotations=_share(500)
        ),
    ]
    cache = make_cache(_separated_fragmentation_policy(), nodes, held)
    mix = cache.demand_mix()
    assert sorted(mix) == [(BATCH, (HALF, CPU), 0.5), (INTERACTIVE, (HALF, CPU), 0.5)]
    own, other = cache.node("own"), cache.node("other")
    assert own is not None
    assert other is not None
    pod = pod_intent(make_pod(gpus=1, workload="batch", annotations=_share(500)), cache.policy)

    assert packing.fragment_growth(own, pod, mix, cache.policy) == (
        pytest.approx(-250.0)  # the interactive halves lose nothing more; the 500 is gone
    )
    blocked = frozenset({0})  # interactive's GPU
    assert packing.fragment_growth(other, pod, mix, cache.policy, blocked) == (
        pytest.approx(250.0)  # the free GPU's other 500 closes to interactive halves
    )
    assert packing.score(pod, own, cache, cache.policy) > packing.score(
        pod, other, cache, cache.policy
    )


def test_a_new_policy_gives_the_typical_pods_their_new_workload_class() -> None:
    critical = [
        make_pod(f"c{i}", 1, priority_class="inference-critical", uid=f"c{i}") for i in range(4)
    ]
    cache = make_cache(_fragmentation_policy(), [make_node("n", "L40S", 8)], critical)
    assert {workload for workload, _, _ in cache.demand_mix()} == {INTERACTIVE}

    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    doc["workloadClassification"]["priorityClassNames"]["inference-critical"] = "batch"
    cache.set_policy(load_policy_text(yaml.safe_dump(doc)))

    # Read as interactive still, batch's shares would be kept off their GPUs.
    assert {workload for workload, _, _ in cache.demand_mix()} == {BATCH}


def test_the_typical_demands_come_from_the_cluster_pods() -> None:
    pods = [make_pod(f"w{i}", 1, workload="batch", node="n", phase="Running") for i in range(30)]
    pods += [
        make_pod(f"s{i}", 1, workload="batch", annotations=_share(250), uid=f"s{i}")
        for i in range(10)
    ]
    cache = make_cache(_fragmentation_policy(), [make_node("n", "L40S", 8)], pods)

    mix = cache.demand_mix()

    assert mix == (
        (BATCH, (WHOLE, CPU), 0.75),
        (BATCH, (GpuDemand(1, 250), CPU), 0.25),
    )


def _share(milli: int) -> dict[str, str]:
    return {f"{PREFIX}gpu-milli": str(milli)}


def _fragmentation_policy() -> Policy:
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    doc["workloadClasses"]["batch"]["packing"] = "fragmentation"
    return load_policy_text(yaml.safe_dump(doc))


def test_free_gpus_beyond_what_the_free_cpu_feeds_are_fragment() -> None:
    assert packing.unusable([1000, 1000], WHOLE, cpu_room=0, cpu=8000) == 2000
    assert packing.unusable([1000, 1000], WHOLE, cpu_room=4000, cpu=8000) == 1500  # half a pod
    assert packing.unusable([1000, 1000], WHOLE, cpu_room=8000, cpu=8000) == 1000
    assert packing.unusable([1000, 1000], WHOLE, cpu_room=16000, cpu=8000) == 0
    assert packing.unusable([1000] * 8, WHOLE, cpu_room=96000, cpu=24000) == 4000
    assert packing.unusable([1000, 1000], WHOLE, cpu_room=-1, cpu=8000) == 0  # CPU unknown
    # Shares: 300 free is too small anyway; CPU for 1.25 shares leaves 1375 of 2000 unused.
    assert packing.unusable([1000, 1000, 300], HALF, cpu_room=10000, cpu=8000) == 1675
    assert packing.unusable([1000, 1000, 300], HALF, cpu_room=80000, cpu=8000) == 300


def test_a_cpu_hungry_gpu_pod_goes_where_the_cpu_outlasts_the_gpus() -> None:
    # Two 4-GPU nodes, `lean` with 48 cores (12 per GPU), `rich` with 96; typical pods take
    # 1 GPU and 12 cores. A 1-GPU pod asking 24 cores leaves `lean` CPU for two of its
    # three other GPUs; on `rich` all three stay usable.
    nodes = [make_node("lean", "L40S", 4, cpu="48"), make_node("rich", "L40S", 4, cpu="96")]
    typical = make_pod("t", 1, workload="batch", cpu="12")
    cache = make_cache(_fragmentation_policy(), nodes, [typical])
    lean, rich = cache.node("lean"), cache.node("rich")
    assert lean is not None
    assert rich is not None
    mix = cache.demand_mix()
    assert mix == ((BATCH, (WHOLE, 12_000), 1.0),)
    hungry = pod_intent(make_pod(gpus=1, workload="batch", cpu="24"), cache.policy)
    typical_pod = pod_intent(make_pod(gpus=1, workload="batch", cpu="12"), cache.policy)

    assert packing.fragment_growth(lean, hungry, mix, cache.policy) == 1000
    assert packing.fragment_growth(rich, hungry, mix, cache.policy) == 0
    assert packing.fragment_growth(lean, typical_pod, mix, cache.policy) == 0


def test_a_pod_without_gpus_keeps_off_the_cpu_a_nodes_free_gpus_need() -> None:
    # Both nodes have 4 free GPUs; typical pods take 1 GPU and 12 cores. 12 cores taken
    # from `lean` (48) leave CPU for three of them; `rich` (200) has CPU to spare. Asking
    # only whether one typical pod still fits, as FGD does, would tell them apart from
    # neither.
    nodes = [make_node("lean", "L40S", 4, cpu="48"), make_node("rich", "L40S", 4, cpu="200")]
    typical = make_pod("t", 1, workload="batch", cpu="12")
    cache = make_cache(_fragmentation_policy(), nodes, [typical])
    pod = pod_intent(make_pod("etl", 0, workload="batch", cpu="12"), cache.policy)

    got = {n.name: packing.score(pod, n, cache, cache.policy) for n in cache.nodes()}

    assert got["rich"] == 0.5
    assert got["lean"] == pytest.approx(1 / (1 + math.exp(1)))  # one GPU stranded


def test_a_pod_without_gpus_goes_where_its_cpu_strands_no_gpus() -> None:
    # Typical pods take 1 GPU and 8 cores. A 35-core pod without GPUs leaves `idle` 5
    # cores, 5/8 of what one of its 4 free GPUs needs; `busy` has none free and the CPU
    # node has no GPUs to strand, so both keep the fragment as it was.
    nodes = [
        make_node("idle", "L40S", 4, cpu="40"),
        make_node("busy", "L40S", 4, cpu="80"),
        make_node("cpu", None, gpus=0, cpu="40"),
    ]
    typical = [make_pod(f"t{i}", 1, workload="batch", cpu="8", node="busy") for i in range(4)]
    cache = make_cache(_fragmentation_policy(), nodes, typical)
    pod = pod_intent(make_pod("etl", 0, workload="batch", cpu="35"), cache.policy)

    got = {n.name: packing.score(pod, n, cache, cache.policy) for n in cache.nodes()}

    assert got["busy"] == got["cpu"] == 0.5
    assert got["idle"] == pytest.approx(1 / (1 + math.exp(4 - 5 / 8)))  # 3.375 GPUs stranded


def test_pods_without_gpus_are_scored_only_by_a_class_that_packs_by_fragmentation() -> None:
    nodes = [make_node("n", "L40S", 4, cpu="40")]
    fragmentation = make_cache(_fragmentation_policy(), nodes)
    pod = make_pod("etl", 0, workload="batch", cpu="30")

    chosen = applicable_components(pod_intent(pod, fragmentation.policy), [], fragmentation.policy)
    assert [name for name, _, _ in chosen] == [packing.NAME]
    for workload in ("batch", "interactive"):  # the example packs one, spreads the other
        intent = pod_intent(make_pod("etl", 0, workload=workload), example_policy())
        assert applicable_components(intent, [], example_policy()) == []


# ---- spread: replicas of one controller ---------------------------------------------------


def _replica(name: str, node: str = "", namespace: str = "ml") -> Pod:
    return make_pod(
        name, 1, workload="interactive", node=node, phase="Running" if node else "Pending",
        owner_kind="ReplicaSet", owner_name="web", namespace=namespace,
    )  # fmt: skip


@pytest.fixture
def replicas() -> ClusterCache:
    """Two H100 nodes: 'busy' holds 3 GPUs of another pod, 'twin' one replica of ml/web."""
    nodes = [make_node(n, "H100", 8) for n in ("busy", "twin")]
    other = make_pod("other", 3, workload="interactive", node="busy", phase="Running")
    return make_cache(example_policy(), nodes, [other, _replica("web-0", "twin")])


def test_spread_counts_a_replica_of_the_pods_controller_like_half_the_free_gpus(
    replicas: ClusterCache,
) -> None:
    def score(pod: Pod, node: str) -> float:
        intent = pod_intent(pod, replicas.policy)
        found = replicas.node(node)
        assert found is not None
        return packing.score(intent, found, replicas, replicas.policy)

    stranger = make_pod("solo", 1, workload="interactive")
    assert (score(stranger, "twin"), score(stranger, "busy")) == (6 / 8, 4 / 8)
    assert (score(_replica("web-1"), "twin"), score(_replica("web-1"), "busy")) == (3 / 8, 4 / 8)
    # Another namespace's "web" is another controller.
    assert score(_replica("web-1", namespace="other"), "twin") == 6 / 8


def test_the_next_replica_goes_to_the_node_without_one_though_it_is_fuller(
    replicas: ClusterCache,
) -> None:
    policy = replicas.policy
    pod = pod_intent(_replica("web-1"), policy)
    names = ["busy", "twin"]
    [busy, twin] = explain_nodes(pod, names, replicas.node, replicas, policy)
    assert busy.score == 10 > twin.score
    assert (busy.components["packing"], twin.components["packing"]) == (4 / 8, 3 / 8)
    # The memoised path (the server's: groups by shape) scores the replica's node on its own.
    for shape_of in (replicas.shape_lookup, None):
        scored = score_nodes(pod, names, replicas.node, replicas, policy, shape_of)
        assert scored == (names, [busy.score, twin.score])


def test_nodes_alike_but_for_a_replica_are_told_apart() -> None:
    """'twin' and 'other' have one shape (one interactive GPU each): only the replica of
    ml/web on 'twin' tells them apart, whichever of them stands for the shape."""
    nodes = [make_node(n, "H100", 8) for n in ("other", "twin")]
    pods = [
        make_pod("solo", 1, workload="interactive", node="other", phase="Running"),
        _replica("web-0", "twin"),
    ]
    cache = make_cache(example_policy(), nodes, pods)
    pod = pod_intent(_replica("web-1"), cache.policy)
    for names in (["other", "twin"], ["twin", "other"]):
        for shape_of in (cache.shape_lookup, None):
            found = score_nodes(pod, names, cache.node, cache, cache.policy, shape_of)
            scored = dict(zip(*found, strict=True))
            assert scored["other"] > scored["twin"], (names, shape_of)
