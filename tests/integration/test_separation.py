"""Workload separation and dedicated nodes, decided by the real kube-scheduler with us."""

from __future__ import annotations

from tests.integration.fleet import Fleet
from tests.integration.stack import EXAMPLE_POLICY, LocalStack

HARD_SEPARATION = EXAMPLE_POLICY.read_text().replace(
    """    separation:
      avoid: [batch]
      mode: soft""",
    """    separation:
      avoid: [batch]
      mode: hard""",
)


def test_an_interactive_pod_avoids_a_node_loaded_with_batch_pods(fleet: Fleet) -> None:
    busy = fleet.node("busy", "A100-40GB", 8)
    quiet = fleet.node("quiet", "A100-40GB", 8, cpu="16")
    fleet.await_cached()
    # Both nodes hold 4 GPUs (equal packing); `quiet` holds them for interactive pods.
    fleet.pod("train", 4, workload="batch", node_name=busy)
    fleet.pod("chat-0", 4, workload="interactive", node_name=quiet)
    # The in-tree scorers lean to `busy` (more free CPU); separation must outweigh them.
    fleet.pod("cpu-hog", 0, cpu="8", node_name=quiet)
    fleet.pod("chat", 1, workload="interactive")
    assert fleet.bound("chat") == quiet


def test_a_batch_pod_avoids_a_node_serving_interactive_pods(fleet: Fleet) -> None:
    serving = fleet.node("serving", "A100-40GB", 8)
    other = fleet.node("other", "A100-40GB", 8, cpu="16")
    fleet.await_cached()
    fleet.pod("chat", 4, workload="interactive", node_name=serving)
    fleet.pod("train", 4, workload="batch", node_name=other)
    fleet.pod("cpu-hog", 0, cpu="8", node_name=other)
    fleet.pod("embed", 1, workload="batch")
    assert fleet.bound("embed") == other


def test_hard_separation_refuses_a_node_with_batch_pods(local: LocalStack, fleet: Fleet) -> None:
    local.use_policy(HARD_SEPARATION)
    only = fleet.node("only", "H100", 8)
    fleet.await_cached()
    fleet.pod("train", 1, workload="batch", node_name=only)
    fleet.pod("chat", 1, workload="interactive")
    reason = fleet.pending_reason("chat")
    assert "batch pods run here; interactive pods keep hard separation from them" in reason


def test_hard_separation_also_keeps_batch_off_nodes_with_interactive_pods(
    local: LocalStack, fleet: Fleet
) -> None:
    local.use_policy(HARD_SEPARATION)
    serving = fleet.node("serving", "T4", 4)
    free = fleet.node("free", "H100", 8)
    fleet.await_cached()
    fleet.pod("chat", 1, workload="interactive", node_name=serving)
    fleet.pod("embed", 1, workload="batch")
    # Economy is batch's first choice, but its interactive pod keeps batch away.
    assert fleet.bound("embed") == free


def test_a_hard_dedicated_node_refuses_other_workloads(fleet: Fleet) -> None:
    dedicated = fleet.node(
        "inference", "T4", 4, labels={"gpuclass.example.io/dedicated": "interactive"}
    )
    fleet.await_cached()
    fleet.pod("embed", 1, workload="batch")
    reason = fleet.pending_reason("embed")
    assert "node is dedicated to interactive workloads (hard); pod is batch" in reason
    fleet.pod("tolerant", 1, workload="batch", annotations={"tolerate-dedicated": "interactive"})
    assert fleet.bound("tolerant") == dedicated


def test_a_soft_dedicated_node_is_a_last_resort_for_other_workloads(fleet: Fleet) -> None:
    soft = {
        "gpuclass.example.io/dedicated": "interactive",
        "gpuclass.example.io/dedicated-mode": "soft",
    }
    dedicated = fleet.node("inference", "T4", 4, labels=soft)
    shared = fleet.node("shared", "T4", 4)
    fleet.await_cached()
    fleet.pod("embed-0", 4, workload="batch")
    assert fleet.bound("embed-0") == shared
    fleet.pod("embed-1", 2, workload="batch")
    assert fleet.bound("embed-1") == dedicated


def test_sharing_pods_of_separated_classes_get_their_own_gpus_named_on_the_pod(
    fleet: Fleet,
) -> None:
    only = fleet.node("share", "L40S", 2)
    fleet.await_cached()
    devices = "gpuclass.example.io/gpu-devices"

    fleet.pod("embed", 1, workload="batch", annotations={"gpu-milli": "300"})
    assert fleet.bound("embed") == only
    fleet.pod("chat", 1, workload="interactive", annotations={"gpu-milli": "500"})
    assert fleet.bound("chat") == only

    # Our bind put each share's GPU on the pod (copied from the Binding by the API server):
    # two GPUs, not the tighter fit beside the batch share.
    batch_gpu = fleet.get_pod("embed")["metadata"]["annotations"][devices]
    interactive_gpu = fleet.get_pod("chat")["metadata"]["annotations"][devices]
    assert {batch_gpu, interactive_gpu} == {"0", "1"}
