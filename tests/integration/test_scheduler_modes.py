"""How the real kube-scheduler calls us: both node modes, bind, pods without GPUs, outages."""

from __future__ import annotations

import time

from tests.integration.fleet import Fleet
from tests.integration.stack import EXAMPLE_POLICY, LocalStack, SchedulerSettings


def test_full_node_objects_mode_places_and_rejects_like_names_mode(
    local: LocalStack, fleet: Fleet
) -> None:
    local.configure_scheduler(SchedulerSettings(node_cache_capable=False))
    premium = fleet.node("h100", "H100", 8)
    fleet.node("t4", "T4", 4)
    fleet.await_cached()
    fleet.pod("chat", 1, workload="interactive")
    assert fleet.bound("chat") == premium
    fleet.pod("fill", 7, workload="interactive")
    assert fleet.bound("fill") == premium
    fleet.pod("more", 4, workload="interactive")  # fits only the T4 node, the wrong class
    reason = fleet.pending_reason("more")
    assert "1 GPU class economy (T4-15GB) is below the required tier standard" in reason


def test_a_burst_bound_through_us_never_overcommits_a_node(local: LocalStack, fleet: Fleet) -> None:
    nodes = [fleet.node(f"h100-{i}", "H100", 4) for i in range(2)]
    fleet.await_cached()
    binds = local.metric("gpuclass_extender_binds_total", result="bound")
    for i in range(9):  # back to back, no waiting: 8 fit
        fleet.pod(f"chat-{i}", 1, workload="interactive")
    placed = [fleet.bound(f"chat-{i}") for i in range(8)]
    assert sorted(placed.count(n) for n in nodes) == [4, 4]
    assert "Insufficient nvidia.com/gpu" in fleet.pending_reason("chat-8")
    assert local.metric("gpuclass_extender_binds_total", result="bound") == binds + 8
    for node in nodes:  # our view agrees with the API, every binding confirmed
        view = local.debug_cache(node)
        assert view["heldMilliByWorkload"] == {"interactive": 4000}
        assert not any(p["assumed"] for p in view["pods"])


def test_a_burst_of_batch_pods_leaves_the_premium_reserve_free(sole_gpu_fleet: Fleet) -> None:
    fleet = sole_gpu_fleet
    # 8 premium GPUs, 2 reserved: only three 2-GPU batch pods may land. The scheduler
    # counts GPUs, not the reserve: each of our filter calls must see the binds before it.
    premium = fleet.node("h100", "H100", 8)
    fleet.await_cached()
    names = [fleet.pod(f"train-{i}", 2, "batch", {"required-classes": "premium"}) for i in range(4)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        placed = [fleet.get_pod(n)["spec"].get("nodeName") for n in names]
        if placed.count(premium) == 3:
            break
        time.sleep(0.05)
    assert placed.count(premium) == 3, placed
    [waiting] = [n for n, node in zip(names, placed, strict=True) if not node]
    assert "premium headroom reserved: 2 of 8 premium GPUs" in fleet.pending_reason(waiting)
    fleet.still_pending(waiting, 1)


FRAGMENTATION = EXAMPLE_POLICY.read_text().replace("packing: pack", "packing: fragmentation")


def test_a_pod_without_gpus_goes_where_its_cpu_strands_no_gpus(
    local: LocalStack, fleet: Fleet
) -> None:
    local.use_policy(FRAGMENTATION)
    fleet.node("idle", "L40S", 4, cpu="40")
    busy = fleet.node("busy", "L40S", 4, cpu="80")
    fleet.await_cached()
    for i in range(4):  # busy's GPUs are taken by pods of 1 GPU and 8 cores
        fleet.pod(f"train-{i}", 1, workload="batch", cpu="8", node_name=busy)
    fleet.await_pods_cached(busy, 4)
    before = local.filter_calls()
    # 40 cores would leave idle none, so no GPU pod of any shape could use its 4 GPUs
    # (the cache's typical pods are every test's so far). The shipped profile scores no
    # resource for a pod that asks for no GPU, so our score alone decides.
    fleet.pod("etl", 0, workload="batch", cpu="40")
    assert fleet.bound("etl") == busy
    assert local.filter_calls() > before  # no managedResources: it came to us


def test_pods_wait_while_a_non_ignorable_extender_is_down_and_land_when_it_returns(
    local: LocalStack, fleet: Fleet
) -> None:
    premium = fleet.node("h100", "H100", 8)
    fleet.node("t4", "T4", 4)
    fleet.await_cached()
    local.stop_extender()
    fleet.pod("chat", 1, workload="interactive")
    assert "connection refused" in fleet.pending_reason("chat")
    fleet.still_pending("chat", 2)
    local.start_extender()
    assert fleet.bound("chat", timeout=40) == premium


def test_pods_are_placed_without_an_ignorable_extender_that_is_down(
    local: LocalStack, fleet: Fleet
) -> None:
    local.configure_scheduler(SchedulerSettings(ignorable=True))
    nodes = {fleet.node("h100", "H100", 8), fleet.node("t4", "T4", 4)}
    fleet.await_cached()
    local.stop_extender()
    fleet.pod("chat", 1, workload="interactive")
    assert fleet.bound("chat") in nodes
