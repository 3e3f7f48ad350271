"""Faults on the real control plane, each during a stream of interactive and batch GPU pods.

For every fault it must hold that: no node's bound GPU pods exceed its allocatable GPUs;
no pod sits on a class its required classes exclude; the extender's /readyz is 503 while
its cache is not in sync and 200 after; and every pod that fits is placed once the fault
ends. Times to recover go to docs/reliability.md (printed with -s).
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from pathlib import Path

import localcluster
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.builders import EXAMPLE_POLICY
from tests.integration.fleet import Fleet, wait_for
from tests.integration.stack import LocalStack, SchedulerSettings

# (name, GPUs, workload, required classes): 20 GPUs of the fleet's 32, so all fit.
STREAM = [
    (f"{kind}-{i}", gpus, workload, required)
    for i in range(2)
    for kind, gpus, workload, required in (
        ("chat", 1, "interactive", None),
        ("serve", 2, "interactive", "premium"),
        ("embed", 1, "batch", None),
        ("score", 2, "batch", "standard"),
        ("etl", 1, "batch", "economy"),
        ("eval", 1, "batch", "economy,standard"),
        ("tune", 2, "interactive", None),
    )
]
CLASS_OF_PRODUCT = {"H100": "premium", "L40S": "standard", "T4": "economy"}


@pytest.fixture
def gpu_fleet(fleet: Fleet) -> tuple[Fleet, dict[str, str]]:
    """Six nodes of three classes, 32 GPUs; node -> class."""
    nodes = {}
    for product, count, gpus in (("H100", 2, 8), ("L40S", 2, 4), ("T4", 2, 4)):
        for i in range(count):
            nodes[fleet.node(f"{product.lower()}-{i}", product, gpus)] = CLASS_OF_PRODUCT[product]
    fleet.await_cached()
    return fleet, nodes


def create(fleet: Fleet, stream: list[tuple[str, int, str, str | None]]) -> None:
    for name, gpus, workload, required in stream:
        annotations = {"required-classes": required} if required else None
        fleet.pod(name, gpus, workload=workload, annotations=annotations)


def assert_placed_and_sound(fleet: Fleet, classes: dict[str, str], timeout: float = 90) -> float:
    """Every stream pod bound; no overcommit; no required class broken. Returns the time
    the last pod took to be bound."""
    started = time.monotonic()
    placed = {name: fleet.bound(name, timeout) for name, *_ in STREAM}
    waited = time.monotonic() - started
    used: Counter[str] = Counter()
    for name, gpus, _, required in STREAM:
        node = placed[name]
        used[node] += gpus
        if required:
            assert classes[node] in required.split(","), f"{name} on {classes[node]} {node}"
    capacity = {n: allocatable_gpus(fleet, n) for n in classes}
    over = {n: (used[n], capacity[n]) for n in used if used[n] > capacity[n]}
    assert over == {}, f"GPUs overcommitted (bound, allocatable): {over}"
    return waited


def allocatable_gpus(fleet: Fleet, node: str) -> int:
    status = fleet.kube.request("GET", f"/api/v1/nodes/{node}")["status"]
    return int(status["allocatable"]["nvidia.com/gpu"])


def desyncs(extender: localcluster.ExtenderProcess, cause: str) -> float:
    """gpuclass_extender_cache_desyncs_total of that cause, over both kinds."""
    with urllib.request.urlopen(f"{extender.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gpuclass_extender_cache_desyncs_total"
        and sample.labels.get("cause") == cause
    )


def readyz(local: LocalStack) -> int:
    return local.extender.status("/readyz")


@pytest.mark.parametrize("outage", [0.0, 30.0], ids=["killed-and-restarted", "gone-30s"])
def test_kube_apiserver_down_mid_stream(
    local: LocalStack, gpu_fleet: tuple[Fleet, dict[str, str]], outage: float
) -> None:
    fleet, classes = gpu_fleet
    create(fleet, STREAM[:7])
    local.cluster.kill_component("kube-apiserver")
    # Its watches broke: the cache may miss events, and says so.
    wait_for(lambda: readyz(local) == 503, 15, "extender /readyz 503 without an API server")
    time.sleep(outage)
    assert readyz(local) == 503
    local.cluster.restart_apiserver()
    recovered = wait_for(lambda: readyz(local) == 200, 60, "extender ready again")
    create(fleet, STREAM[7:])
    waited = assert_placed_and_sound(fleet, classes)
    print(f"apiserver down {outage:g} s: extender ready {recovered:.1f} s after the restart; "
          f"last pod bound {waited:.1f} s after the rest of the stream was created")  # fmt: skip


def test_the_extender_killed_mid_burst_and_restarted(
    local: LocalStack, gpu_fleet: tuple[Fleet, dict[str, str]]
) -> None:
    fleet, classes = gpu_fleet
    create(fleet, STREAM[:7])
    local.kill_extender()
    create(fleet, STREAM[7:])  # the scheduler cannot reach us: not ignorable, so they wait
    time.sleep(3)
    # ... and waited: none placed without our rules while we were down.
    placed_meanwhile = [n for n, *_ in STREAM[7:] if fleet.get_pod(n)["spec"].get("nodeName")]
    assert placed_meanwhile == []
    started = time.monotonic()
    local.start_extender()
    ready = time.monotonic() - started
    waited = assert_placed_and_sound(fleet, classes)
    print(f"extender killed: ready {ready:.1f} s after its restart; every pod bound "
          f"{waited:.1f} s later")  # fmt: skip


def test_with_ignorable_true_a_killed_extender_costs_the_hard_rules_not_the_gpus(
    local: LocalStack, gpu_fleet: tuple[Fleet, dict[str, str]]
) -> None:
    """`ignorable: true` (not what we ship) lets the scheduler go on without us: pods are
    placed during the outage, GPUs are never overcommitted (the scheduler counts them),
    but our class rules are not applied to those pods."""
    fleet, classes = gpu_fleet
    local.configure_scheduler(SchedulerSettings(ignorable=True))
    local.kill_extender()
    create(fleet, STREAM)
    placed = {name: fleet.bound(name, 60) for name, *_ in STREAM}  # all placed without us
    broken = [
        name
        for name, _, _, required in STREAM
        if required and classes[placed[name]] not in required.split(",")
    ]
    local.start_extender()
    used: Counter[str] = Counter()
    for name, gpus, *_ in STREAM:
        used[placed[name]] += gpus
    for node, gpus in used.items():
        assert gpus <= allocatable_gpus(fleet, node), f"{node}: {gpus} GPUs bound"
    required = sum(1 for *_, classes_wanted in STREAM if classes_wanted)
    print(f"ignorable extender down: {len(broken)} of {required} pods with required classes "
          "placed elsewhere")  # fmt: skip


def test_kube_scheduler_restarted_mid_stream(
    local: LocalStack, gpu_fleet: tuple[Fleet, dict[str, str]]
) -> None:
    fleet, classes = gpu_fleet
    create(fleet, STREAM[:7])
    settings = local.settings
    local.settings = None  # forces a restart with the same settings
    started = time.monotonic()
    local.configure_scheduler(settings or SchedulerSettings())
    restarted = time.monotonic() - started
    create(fleet, STREAM[7:])
    waited = assert_placed_and_sound(fleet, classes)
    assert readyz(local) == 200
    print(f"scheduler restarted in {restarted:.1f} s; every pod bound {waited:.1f} s later")


def test_etcd_compaction_answers_410_gone_and_the_extender_relists(
    stack: object, tmp_path: Path
) -> None:
    """etcd compacts its history; a watch renewed from an older resourceVersion gets 410
    Gone. Its own cluster: the shared stack's apiserver serves watches from its watch
    cache, which hides a compaction from watchers that keep up."""
    cluster = localcluster.LocalCluster(
        state_dir=tmp_path / "cluster", apiserver_args=("--watch-cache=false",)
    )
    cluster.start()
    extender = None
    try:
        policy = tmp_path / "policy.yaml"
        policy.write_text(EXAMPLE_POLICY.read_text())
        extender = localcluster.ExtenderProcess(
            kubeconfig=cluster.kubeconfig,
            policy=policy,
            log=tmp_path / "extender.log",
            extra_args=("--watch-timeout-seconds", "3"),
        )
        extender.start()
        localcluster.apply_fake_node(
            cluster.kubeconfig, "h100-0", localcluster.gfd_labels("H100", 8), 8
        )
        wait_for(lambda: extender.status("/debug/cache?node=h100-0") == 200, 15, "node cached")
        # Writes elsewhere move the revision on; the pod watch's resourceVersion stays put.
        for i in range(20):
            cluster.request("POST", "/api/v1/namespaces/default/configmaps",
                            {"metadata": {"name": f"churn-{i}"}})  # fmt: skip
        revision = cluster.compact_etcd()
        started = time.monotonic()
        # Within the 3 s watch timeout the renewal gets 410, and a relist follows.
        wait_for(lambda: "410 Gone" in extender.log.read_text(), 20, "a 410 Gone")
        # The cache stopped being in sync (/readyz 503, verbs "not synced": the relist on
        # 3 nodes is too quick to catch by polling, the counter is not) ...
        wait_for(lambda: desyncs(extender, "gone") >= 1, 20, "the cache marked out of sync")
        assert desyncs(extender, "error") == 0
        # ... until the relist brought it back.
        wait_for(lambda: extender.status("/readyz") == 200, 20, "ready after the relist")
        recovered = time.monotonic() - started
        # The cache still follows the cluster: a node added after the relist arrives.
        localcluster.apply_fake_node(
            cluster.kubeconfig, "t4-0", localcluster.gfd_labels("T4", 4), 4
        )
        wait_for(lambda: extender.status("/debug/cache?node=t4-0") == 200, 15, "new node cached")
        print(f"etcd compacted at revision {revision}: 410 and relist, ready again in "
              f"{recovered:.1f} s")  # fmt: skip
    finally:
        if extender is not None:
            extender.stop()
        cluster.stop()
