"""GPU-class affinity and premium headroom, decided by the real kube-scheduler with us."""

from __future__ import annotations

from tests.integration.fleet import Fleet


def test_interactive_pods_land_on_the_premium_class(fleet: Fleet) -> None:
    premium = fleet.node("h100", "H100", 8)
    fleet.node("a100", "A100-40GB", 8)
    fleet.node("t4", "T4", 4)
    fleet.await_cached()
    for i in range(3):
        fleet.pod(f"chat-{i}", 1, workload="interactive")
        assert fleet.bound(f"chat-{i}") == premium


def test_batch_pods_prefer_the_economy_class(fleet: Fleet) -> None:
    """The T4 is the node the shipped profile's MostAllocated likes least (2 of its 8 GPUs
    in use against 2 of 4 elsewhere), and every node passes our filter: only our score
    for batch's preferred class takes the pod there."""
    fleet.node("h100", "H100", 4)
    fleet.node("a100", "A100-40GB", 4)
    economy = fleet.node("t4", "T4", 8)
    fleet.await_cached()
    fleet.pod("embed", 2, workload="batch")
    assert fleet.bound("embed") == economy


def test_a_pod_requiring_a_class_without_room_stays_pending_with_our_reason(
    fleet: Fleet,
) -> None:
    premium = fleet.node("h100", "H100", 2)
    fleet.node("t4", "T4", 4)
    fleet.await_cached()
    fleet.pod("first", 2, workload="interactive")
    assert fleet.bound("first") == premium
    fleet.pod("second", 1, workload="interactive", annotations={"required-classes": "premium"})
    reason = fleet.pending_reason("second")
    assert "1 GPU class economy (T4-15GB) is below the required tier premium" in reason
    assert "1 Insufficient nvidia.com/gpu" in reason


def test_batch_stays_off_premium_while_its_headroom_is_short(sole_gpu_fleet: Fleet) -> None:
    fleet = sole_gpu_fleet
    # 8 premium GPUs, 25% (2) kept for interactive pods; 5 are already taken.
    premium = fleet.node("h100", "H100", 8)
    fleet.await_cached()
    fleet.pod("chat", 5, workload="interactive")
    assert fleet.bound("chat") == premium
    fleet.pod("train", 2, workload="batch")
    reason = fleet.pending_reason("train")
    assert "premium headroom reserved: 2 of 8 premium GPUs kept free for interactive" in reason
    # Interactive pods may use the reserve.
    fleet.pod("chat-2", 2, workload="interactive")
    assert fleet.bound("chat-2") == premium


def test_batch_uses_idle_premium_when_its_own_classes_are_full(sole_gpu_fleet: Fleet) -> None:
    fleet = sole_gpu_fleet
    premium = fleet.node("h100", "H100", 8)
    economy = fleet.node("t4", "T4", 4)
    fleet.await_cached()
    fleet.pod("embed", 4, workload="batch")
    assert fleet.bound("embed") == economy
    fleet.pod("embed-2", 4, workload="batch")
    assert fleet.bound("embed-2") == premium


def test_interactive_replicas_spread_over_premium_nodes_despite_most_allocated(
    fleet: Fleet,
) -> None:
    """The base policy spreads interactive pods; the shipped profile's MostAllocated (GPU)
    would put the second replica next to the first. Our relative score must win."""
    first_node = fleet.node("h100-a", "H100", 8)
    second_node = fleet.node("h100-b", "H100", 8)
    fleet.await_cached()

    fleet.pod("chat-0", 1, workload="interactive")
    first = fleet.bound("chat-0")
    fleet.pod("chat-1", 1, workload="interactive")

    assert {first, fleet.bound("chat-1")} == {first_node, second_node}


def test_replicas_of_one_owner_go_to_different_nodes_though_one_is_emptier(
    fleet: Fleet,
) -> None:
    """Spread keeps a controller's replicas apart: the second replica of `web` goes to the
    node without one, though that node holds three GPUs of another pod (free GPUs alone
    would put it next to the first)."""
    fleet.node("h100-a", "H100", 8)
    fleet.node("h100-b", "H100", 8)
    fleet.await_cached()
    fleet.pod("other", 3, workload="interactive")
    busy = fleet.bound("other")
    fleet.pod("web-0", 1, workload="interactive", replica_set="web")
    first = fleet.bound("web-0")
    assert first != busy
    fleet.await_pods_cached(first, 1)

    fleet.pod("web-1", 1, workload="interactive", replica_set="web")

    assert fleet.bound("web-1") == busy
