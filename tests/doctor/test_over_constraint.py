"""Over-constraint: pending GPU pods our rules leave nowhere to go, and what would admit
them."""

from __future__ import annotations

from typing import Any

from tests.builders import PREFIX, example_policy, node_dict, pod_dict
from tests.doctor.builders import codes, findings, inputs


def requiring(name: str, classes: str, gpus: int = 1, **kw: Any) -> dict[str, Any]:
    return pod_dict(name, gpus, annotations={f"{PREFIX}required-classes": classes}, **kw)


def test_a_pod_that_requires_and_excludes_a_class_is_contradictory() -> None:
    pod = pod_dict(
        "p",
        annotations={
            f"{PREFIX}required-classes": "premium",
            f"{PREFIX}excluded-classes": "premium",
        },
    )
    (found,) = findings(inputs(example_policy(), [node_dict("h")], [pod]), "contradictory-wishes")
    assert found["subject"] == "pod/ml/p"
    assert found["severity"] == "error"
    assert "requires premium but excludes premium" in found["message"]


def test_a_required_class_no_node_has_names_the_nearest_class_present() -> None:
    view = inputs(
        example_policy(),
        [node_dict("h", "H100"), node_dict("t", "T4", 4)],
        [requiring("p", "standard", 2)],
    )
    (found,) = findings(view, "no-eligible-node")
    assert "0/2 nodes: 2 wrong GPU class (need standard)" in found["message"]
    assert "add a node of class standard" in found["fix"]
    # premium and economy are both one tier away; the higher one is named first
    assert f"{PREFIX}required-classes=premium,standard" in found["fix"]


def test_gpu_attribute_failures_are_named_with_the_fix() -> None:
    # interactive pods need more than 20000 MiB of GPU memory
    view = inputs(
        example_policy(), [node_dict("l40s", "L40S", 4)], [pod_dict("p", workload="interactive")]
    )
    assert "no-eligible-node" not in codes(view)  # 46068 MiB
    view = inputs(
        example_policy(),
        [node_dict("a", "A10G", 4, labels={"nvidia.com/gpu.memory": "16000"})],
        [pod_dict("p", workload="interactive")],
    )
    (found,) = findings(view, "no-eligible-node")
    assert "0/1 nodes: 1 GPU attributes not as required" in found["message"]
    assert "relax the workload's gpuAttributes" in found["fix"]


def test_nodes_of_the_class_without_the_label_a_requirement_reads_are_named() -> None:
    # An A100 comes in 40 and 80 GB: with no memory label, nothing says which these are.
    unsized = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4"}
    view = inputs(
        example_policy(),
        [node_dict("a1", None, 8, labels=unsized), node_dict("a2", None, 8, labels=unsized)],
        [pod_dict("p", workload="interactive")],
    )

    (found,) = findings(view, "attribute-label-missing")

    assert "no-eligible-node" not in codes(view)
    assert found["severity"] == "error"
    assert (
        "2 node(s) of an allowed class (a1, a2) have no nvidia.com/gpu.memory" in found["message"]
    )
    assert found["fix"].startswith(
        "give those nodes nvidia.com/gpu.memory (read from nvidia.com/gpu.memory or "
        "karpenter.k8s.aws/instance-gpu-memory, or a product the catalogue sizes"
    )
    assert "add a node of class" not in found["fix"]


def test_eligible_nodes_without_room_say_how_many_gpus_are_short() -> None:
    busy = [
        pod_dict(f"b{i}", 3, node="h1", phase="Running", workload="interactive") for i in range(2)
    ]
    view = inputs(
        example_policy(),
        [node_dict("h1", "H100", 8)],
        [*busy, requiring("p", "premium", 4, workload="interactive")],
    )
    (found,) = findings(view, "no-eligible-node-with-room")
    assert "the most on one eligible node is 2 (h1), 2 short" in found["message"]
    assert "free or add 2 GPU(s)" in found["fix"]


def test_a_pod_larger_than_any_eligible_node_asks_for_a_larger_node() -> None:
    view = inputs(
        example_policy(), [node_dict("h1", "H100", 8)], [pod_dict("p", 16, workload="interactive")]
    )
    (found,) = findings(view, "no-eligible-node-with-room")
    assert "no node of an allowed class has 16 GPUs (the largest has 8)" in found["fix"]


def test_headroom_that_blocks_a_pod_is_named() -> None:
    # batch may not take the last quarter of premium (hard headroom in the example policy)
    busy = [
        pod_dict(f"i{i}", 2, node="h1", phase="Running", workload="interactive") for i in range(3)
    ]
    view = inputs(
        example_policy(),
        [node_dict("h1", "H100", 8)],
        [*busy, requiring("p", "premium", 2, workload="batch")],
    )
    (found,) = findings(view, "no-eligible-node-with-room")
    assert "(0/1 nodes: 1 premium headroom reserved)" in found["message"]
    assert "headroom keeps part of a class free" in found["fix"]


def test_a_pod_that_fits_somewhere_or_is_bound_is_not_reported() -> None:
    pods = [
        requiring("fits", "premium"),
        requiring("bound", "standard", node="h1", phase="Running"),
    ]
    found = codes(inputs(example_policy(), [node_dict("h1")], pods))
    assert not found & {"no-eligible-node", "no-eligible-node-with-room"}


def test_only_nodes_the_pods_own_selector_admits_count() -> None:
    pod = requiring("p", "premium")
    pod["spec"]["nodeSelector"] = {"pool": "b"}
    nodes = [node_dict("h", labels={"pool": "a"}), node_dict("t", "T4", 4, labels={"pool": "b"})]
    (found,) = findings(inputs(example_policy(), nodes, [pod]), "no-eligible-node")
    assert "0/1 nodes: 1 wrong GPU class" in found["message"]
