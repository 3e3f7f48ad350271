"""Policy health: headroom the fleet cannot keep, dedications no workload may use."""

from __future__ import annotations

from typing import Any

import yaml

from tests.builders import EXAMPLE_POLICY, PREFIX, node_dict, pod_dict, policy_from
from tests.doctor.builders import codes, findings, inputs


def policy(**changes: Any) -> Any:
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    doc.update(changes)
    return policy_from(yaml.safe_dump(doc))


def test_a_reserve_below_one_gpu_never_keeps_a_gpu_free() -> None:
    p = policy(
        headroom=[{"class": "premium", "reserve": 0.1, "for": ["interactive"], "mode": "hard"}]
    )
    (found,) = findings(inputs(p, [node_dict("h", "H100", 8)]), "headroom-below-one-gpu")
    assert "10% of 8 premium GPUs is 0.8 GPU" in found["message"]
    assert "raise reserve to at least 0.12" in found["fix"]


def test_a_reserve_for_workloads_that_may_not_use_the_class_is_an_error() -> None:
    p = policy(headroom=[{"class": "economy", "reserve": 0.5, "for": ["interactive"]}])
    (found,) = findings(inputs(p, [node_dict("t", "T4", 4)]), "headroom-for-nobody")
    assert found["severity"] == "error"
    assert "interactive, which may not use economy" in found["message"]


def test_a_reserve_on_a_class_without_gpus_keeps_nothing() -> None:
    found = codes(inputs(policy(), [node_dict("t", "T4", 4)]))
    assert "headroom-without-capacity" in found


def test_a_reserve_smaller_than_the_pods_it_is_for() -> None:
    pods = [pod_dict("big", 4, workload="interactive", node="h", phase="Running")]
    (found,) = findings(
        inputs(policy(), [node_dict("h", "H100", 8)], pods), "headroom-smaller-than-pods"
    )
    assert (
        "the reserve is 2 of 8 premium GPUs, but interactive pods here ask up to 4"
        in found["message"]
    )
    assert "raise reserve to at least 0.50" in found["fix"]


def test_a_reserve_eaten_by_other_workloads_now_is_info() -> None:
    pods = [pod_dict("b", 7, workload="batch", node="h", phase="Running")]
    (found,) = findings(inputs(policy(), [node_dict("h", "H100", 8)], pods), "headroom-unmet-now")
    assert found["severity"] == "info"
    assert (
        "1 of 8 premium GPUs are free, below the 2 reserve; other workloads hold 7"
        in found["message"]
    )


def test_a_class_dedicated_to_a_workload_that_may_not_use_it() -> None:
    p = policy(dedicated={"classes": [{"class": "economy", "workload": "interactive"}]})
    (found,) = findings(inputs(p, [node_dict("t", "T4", 4)]), "dedicated-class-unusable")
    assert found["subject"] == "class/economy"
    assert "dedicated (hard) to interactive, which may not use economy" in found["message"]


def test_a_node_dedicated_by_label_to_a_workload_that_may_not_use_its_class() -> None:
    node = node_dict("t", "T4", 4, labels={f"{PREFIX}dedicated": "interactive"})
    (found,) = findings(inputs(policy(), [node]), "dedicated-node-unusable")
    assert found["subject"] == "node/t"


def test_the_example_policy_on_a_fitting_fleet_is_healthy() -> None:
    nodes = [node_dict("h", "H100", 8), node_dict("a", "A10G", 4), node_dict("t", "T4", 4)]
    assert [f for f in findings(inputs(policy(), nodes)) if f["area"] == "policy"] == []


def test_pods_our_bind_placed_under_another_policy_are_listed_by_digest() -> None:
    current = policy()
    nodes = [node_dict("h", "H100", 8)]

    def placed(name: str, digest: str) -> dict[str, Any]:
        annotations = {f"{PREFIX}decision-class": "premium", f"{PREFIX}decision-policy": digest}
        return pod_dict(name, 1, node="h", phase="Running", annotations=annotations)

    pods = [placed("old-a", "0ld"), placed("old-b", "0ld"), placed("new", current.digest)]
    (found,) = findings(inputs(current, nodes, pods), "placed-under-another-policy")
    assert (found["severity"], found["subject"]) == ("info", "policy/0ld")
    assert found["message"] == (
        f"2 running pod(s) were placed by our bind under policy 0ld, not the one in force "
        f"({current.digest}): ml/old-a, ml/old-b"
    )
    # Pods placed under the policy in force, or by no bind of ours, are not findings.
    fresh = [placed("new", current.digest), pod_dict("plain", 1, node="h", phase="Running")]
    assert "placed-under-another-policy" not in codes(inputs(current, nodes, fresh))
