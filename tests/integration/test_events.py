"""Our Events on pods, read back through the events.k8s.io/v1 API of a real apiserver."""

from __future__ import annotations

import time
from typing import Any

from extender.server.events import CONTROLLER, REASON_SCORED, REASON_UNSCHEDULABLE
from tests.integration.fleet import Fleet, wait_for


def our_events(fleet: Fleet, pod: str, reason: str) -> list[dict[str, Any]]:
    path = (
        f"/apis/events.k8s.io/v1/namespaces/{fleet.namespace}/events"
        f"?fieldSelector=regarding.name={pod},reason={reason}"
    )
    items: list[dict[str, Any]] = fleet.kube.request("GET", path)["items"]
    return [e for e in items if e.get("reportingController") == CONTROLLER]


def test_events_name_the_winning_class_and_summarise_a_pending_pod(
    sole_gpu_fleet: Fleet,
) -> None:
    fleet = sole_gpu_fleet
    premium = fleet.node("h100", "H100", 8)
    fleet.node("l40s", "L40S", 4)
    fleet.node("t4", "T4", 4)
    fleet.await_cached()

    # Prioritize is called only when more than one node passes the filters: `chat` fits on
    # the H100 and the L40S (the T4 is below interactive's minimum class).
    fleet.pod("serving", 4, workload="interactive", node_name=premium)
    fleet.pod("chat", 1, workload="interactive")
    assert fleet.bound("chat") == premium
    wait_for(lambda: our_events(fleet, "chat", REASON_SCORED), 10, "a GpuClassScored event")
    [scored] = our_events(fleet, "chat", REASON_SCORED)
    assert scored["type"] == "Normal"
    assert scored["action"] == "Scoring"
    assert scored["note"].startswith(f"best: {premium} (premium, score ")
    assert "of 2 nodes; interactive prefers premium > standard" in scored["note"]
    pod_uid = fleet.get_pod("chat")["metadata"]["uid"]
    assert scored["regarding"]["uid"] == pod_uid
    assert scored["reportingInstance"]

    # Batch requiring premium: 3 of 8 premium GPUs are free, but 2 are kept for interactive
    # pods; the two other nodes are the wrong class. The scheduler's own filters pass all
    # three (enough GPUs), so the pod stays Pending because of our rules.
    fleet.pod("train", 2, workload="batch", annotations={"required-classes": "premium"})
    fleet.pending_reason("train")
    wait_for(
        lambda: our_events(fleet, "train", REASON_UNSCHEDULABLE), 10, "a GpuClassUnschedulable"
    )
    [summary] = our_events(fleet, "train", REASON_UNSCHEDULABLE)
    assert summary["type"] == "Warning"
    assert summary["action"] == "Scheduling"
    assert summary["note"] == (
        "0/3 nodes: 2 wrong GPU class (need premium or better), 1 premium headroom reserved"
    )

    # The scheduler retries the pod on cluster changes: the same verdict again is counted
    # into the one Event's series, not a new Event each time.
    def aggregated() -> bool:
        fleet.label_node(premium, {"gpuclass-e2e/nudge": str(time.monotonic_ns())})
        time.sleep(0.5)
        events = our_events(fleet, "train", REASON_UNSCHEDULABLE)
        return len(events) == 1 and events[0].get("series", {}).get("count", 1) > 1

    wait_for(aggregated, 25, "the repeated verdict counted into the Event's series")
    [summary] = our_events(fleet, "train", REASON_UNSCHEDULABLE)
    assert summary["series"]["lastObservedTime"] >= summary["eventTime"]
    assert fleet.get_pod("train")["spec"].get("nodeName") is None
