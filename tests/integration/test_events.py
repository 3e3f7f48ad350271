"""Our Events on pods, read back through the events.k8s.io/v1 API of a real apiserver."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from extender.cli.main import main
from extender.server.events import CONTROLLER, REASON_SCORED, REASON_UNSCHEDULABLE
from tests.integration.fleet import Fleet, wait_for
from tests.integration.stack import EXAMPLE_POLICY, LocalStack


def our_events(fleet: Fleet, pod: str, reason: str) -> list[dict[str, Any]]:
    path = (
        f"/apis/events.k8s.io/v1/namespaces/{fleet.namespace}/events"
        f"?fieldSelector=regarding.name={pod},reason={reason}"
    )
    items: list[dict[str, Any]] = fleet.kube.request("GET", path)["items"]
    return [e for e in items if e.get("reportingController") == CONTROLLER]


DECISION = "gpuclass.example.io/decision-"


def test_the_bind_records_the_decision_on_the_pod_and_events_summarise_a_pending_pod(
    sole_gpu_fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fleet = sole_gpu_fleet
    stack = fleet.stack
    if not isinstance(stack, LocalStack):
        pytest.skip("needs the extender's loopback port to retry a bind")
    premium = fleet.node("h100", "H100", 8)
    fleet.node("l40s", "L40S", 4)
    fleet.node("t4", "T4", 4)
    fleet.await_cached()

    # Prioritize is called only when more than one node passes the filters: `chat` fits on
    # the H100 and the L40S (the T4 is below interactive's minimum class).
    fleet.pod("serving", 4, workload="interactive", node_name=premium)
    fleet.pod("chat", 1, workload="interactive")
    assert fleet.bound("chat") == premium

    # The record came with the Binding: no Event of ours for a pod that was placed.
    chat = fleet.get_pod("chat")
    record = {k: v for k, v in chat["metadata"]["annotations"].items() if k.startswith(DECISION)}
    digest = stack.debug_cache()["policyDigest"]
    assert record == {
        f"{DECISION}class": "premium",
        f"{DECISION}score": "10",
        f"{DECISION}reason": "score 10/10 (the best of 2 nodes); "
        "interactive prefers premium > standard; no batch pods on it",
        f"{DECISION}policy": digest,
    }
    assert our_events(fleet, "chat", REASON_SCORED) == []
    # `explain` shows it, and that the policy which decided is the one in force.
    kubeconfig = ["--kubeconfig", str(fleet.kube.kubeconfig), "--policy", str(EXAMPLE_POLICY)]
    assert main(["explain", f"{fleet.namespace}/chat", *kubeconfig, "-o", "json"]) == 0
    explained = orjson.loads(capsys.readouterr().out)
    assert explained["decision"] == {
        "node": premium,
        "class": "premium",
        "score": "10",
        "reason": record[f"{DECISION}reason"],
        "policy": digest,
        "policyInForce": "yes",
    }
    # Under another policy (one weight changed), doctor lists the pod as placed under the
    # old one.
    changed = yaml.safe_load(EXAMPLE_POLICY.read_text())
    changed.setdefault("weights", {})["packing"] = 7
    other = tmp_path / "policy.yaml"
    other.write_text(yaml.safe_dump(changed))
    main(
        ["doctor", "--kubeconfig", str(fleet.kube.kubeconfig), "--policy", str(other), "-o", "json"]
    )
    report = orjson.loads(capsys.readouterr().out)
    [placed] = [f for f in report["findings"] if f["code"] == "placed-under-another-policy"]
    assert placed["subject"] == f"policy/{digest}"
    assert f"{fleet.namespace}/chat" in placed["message"]

    # The scheduler retries a bind whose answer it lost: the pod is already there, with
    # its record; the retry succeeds and changes nothing.
    args = {
        "PodName": "chat",
        "PodNamespace": fleet.namespace,
        "PodUID": chat["metadata"]["uid"],
        "Node": premium,
    }
    assert stack.post("/bind", args) == (200, {"Error": ""})
    again = fleet.get_pod("chat")
    assert again["metadata"]["annotations"] == chat["metadata"]["annotations"]
    assert again["metadata"]["resourceVersion"] == chat["metadata"]["resourceVersion"]
    # ... and one for another node is refused, with the reason.
    status, answer = stack.post("/bind", {**args, "Node": f"{fleet.id}-l40s"})
    assert status == 200
    assert answer["Error"].endswith(f"refused: the pod is already bound to {premium}")

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
