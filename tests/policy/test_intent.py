"""What a pod wants: workload class, GPU demand and GPU-class wishes, resolved against policy."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from extender.policy import GpuDemand, PodIntent, gpu_demand, pod_intent
from extender.wire import Pod
from tests.builders import PREFIX, example_policy, make_pod, pod_dict

GPU = "nvidia.com/gpu"
REQUIRED = f"{PREFIX}required-classes"
MIN_CLASS = f"{PREFIX}min-class"
EXCLUDED = f"{PREFIX}excluded-classes"
PREFERRED = f"{PREFIX}preferred-classes"
TOLERATE = f"{PREFIX}tolerate-dedicated"
MILLI = f"{PREFIX}gpu-milli"


def intent(**kw: Any) -> PodIntent:
    return pod_intent(make_pod(**kw), example_policy())


# ---- workload class ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "workload", "source"),
    [
        ({"workload": "interactive"}, "interactive", f"label {PREFIX}workload"),
        (
            {"workload": "batch", "priority_class": "inference-critical"},
            "batch",
            f"label {PREFIX}workload",
        ),
        (
            {"priority_class": "inference-critical", "owner_kind": "Job"},
            "interactive",
            "priorityClassName inference-critical",
        ),
        ({"priority_class": "system-node-critical", "owner_kind": "Job"}, "batch", "owner Job"),
        ({"owner_kind": "CronJob"}, "batch", "owner CronJob"),
        ({"owner_kind": "ReplicaSet"}, "batch", "default"),
        ({}, "batch", "default"),
    ],
    ids=[
        "label",
        "label-beats-priority-class",
        "priority-class-beats-owner",
        "unmapped-priority-class-falls-to-owner",
        "cronjob-owner",
        "unmapped-owner-falls-to-default",
        "default",
    ],
)
def test_the_workload_class_comes_from_label_then_priority_class_then_owner_then_default(
    kw: dict[str, Any], workload: str, source: str
) -> None:
    pod = intent(**kw)

    assert (pod.workload, pod.workload_source) == (workload, source)
    assert pod.conflicts == ()


def test_an_unknown_workload_label_is_a_conflict() -> None:
    pod = intent(workload="training")

    assert pod.workload == "batch"
    assert pod.conflicts == (
        f"pod label {PREFIX}workload=training names no workload class (known: batch, interactive)",
    )


# ---- GPU-class wishes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("workload", "annotations", "allowed", "allowed_text", "preferred"),
    [
        ("interactive", {}, {"premium", "standard"}, "standard or better", ("premium", "standard")),
        ("batch", {}, {"premium", "standard", "economy"}, "any class", ("economy", "standard")),
        ("interactive", {REQUIRED: "economy"}, {"economy"}, "economy", ("premium", "standard")),
        (
            "batch",
            {REQUIRED: "premium, economy"},
            {"premium", "economy"},
            "premium or economy",
            ("economy", "standard"),
        ),
        ("interactive", {MIN_CLASS: "premium"}, {"premium"}, "premium or better", None),
        ("batch", {EXCLUDED: "economy"}, {"premium", "standard"}, "standard or better", None),
        ("interactive", {EXCLUDED: "premium"}, {"standard"}, "standard", None),
        ("batch", {PREFERRED: "premium,standard"}, None, None, ("premium", "standard")),
    ],
    ids=[
        "interactive-defaults",
        "batch-defaults",
        "required-replaces-min-class",
        "required-set-keeps-tier-order",
        "min-class-annotation",
        "excluded-annotation",
        "excluded-adds-to-workload-min-class",
        "preferred-annotation-replaces-default",
    ],
)
def test_pod_annotations_override_the_workload_class_wishes(
    workload: str,
    annotations: dict[str, str],
    allowed: set[str] | None,
    allowed_text: str | None,
    preferred: tuple[str, ...] | None,
) -> None:
    pod = intent(workload=workload, annotations=annotations)

    assert pod.conflicts == ()
    if allowed is not None:
        assert pod.allowed == allowed
        assert pod.allowed_text == allowed_text
    if preferred is not None:
        assert pod.preferred == preferred


@pytest.mark.parametrize(
    ("annotations", "conflict"),
    [
        (
            {REQUIRED: "premium", EXCLUDED: "premium"},
            "GPU-class wishes contradict: pod requires premium but excludes premium",
        ),
        (
            {MIN_CLASS: "standard", REQUIRED: "economy"},
            "GPU-class wishes contradict: pod requires economy but needs at least standard",
        ),
        ({MIN_CLASS: "premium,standard"}, f"annotation {MIN_CLASS} must name one class"),
        (
            {REQUIRED: "gold"},
            f"annotation {REQUIRED} names unknown GPU class(es) gold "
            "(known: premium, standard, economy)",
        ),
        (
            {PREFERRED: "premium,silver"},
            f"annotation {PREFERRED} names unknown GPU class(es) silver "
            "(known: premium, standard, economy)",
        ),
        (
            {EXCLUDED: "bronze"},
            f"annotation {EXCLUDED} names unknown GPU class(es) bronze "
            "(known: premium, standard, economy)",
        ),
    ],
    ids=[
        "required-also-excluded",
        "required-below-min-class",
        "min-class-names-two",
        "unknown-required-class",
        "unknown-preferred-class",
        "unknown-excluded-class",
    ],
)
def test_contradictory_or_unknown_wishes_are_conflicts(
    annotations: dict[str, str], conflict: str
) -> None:
    pod = intent(workload="batch", annotations=annotations)

    assert conflict in pod.conflicts


def test_a_conflict_is_collected_not_raised_and_the_pod_allows_no_class() -> None:
    pod = intent(annotations={REQUIRED: "gold"})

    assert pod.allowed == frozenset()
    assert pod.allowed_text == "no class"
    # Only the cause is reported: the empty allowed set follows from the unknown name.
    assert pod.conflicts == (
        f"annotation {REQUIRED} names unknown GPU class(es) gold "
        "(known: premium, standard, economy)",
    )


# ---- dedication tolerations ------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "tolerated"),
    [
        ({}, frozenset({"batch"})),
        ({TOLERATE: "interactive"}, frozenset({"batch", "interactive"})),
        ({TOLERATE: " interactive , batch "}, frozenset({"batch", "interactive"})),
        ({TOLERATE: "*"}, None),
    ],
    ids=["own-class-only", "named-class", "spaces", "star-tolerates-all"],
)
def test_a_pod_tolerates_its_own_dedication_and_the_ones_it_names(
    annotations: dict[str, str], tolerated: frozenset[str] | None
) -> None:
    assert intent(workload="batch", annotations=annotations).tolerates_dedicated == tolerated


# ---- GPU demand ----------------------------------------------------------------------


def container(name: str, requests: str | None = None, limits: str | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = {GPU: requests}
    if limits is not None:
        resources["limits"] = {GPU: limits}
    return {"name": name, "resources": resources}


def pod_with(
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
) -> Pod:
    data = pod_dict("p", annotations=annotations)
    data["spec"]["containers"] = containers
    if init is not None:
        data["spec"]["initContainers"] = init
    return msgspec.convert(data, Pod)


@pytest.mark.parametrize(
    ("containers", "init", "gpus"),
    [
        ([container("a", "1", "1"), container("b", "2", "2")], None, 3),
        ([container("a", "1", "1")], [container("i", "4", "4")], 4),
        ([container("a", "2", "2")], [container("i", "1", "1")], 2),
        ([container("a", limits="2")], None, 2),
        ([container("a", requests="2")], None, 2),
        ([{"name": "cpu-only"}], None, 0),
        ([container("a", "1", "1"), {"name": "sidecar"}], None, 1),
    ],
    ids=[
        "sum-of-containers",
        "init-container-max-wins",
        "app-containers-win",
        "limit-only-defaults-request",
        "request-only",
        "no-gpu",
        "gpu-less-sidecar",
    ],
)
def test_gpu_demand_is_computed_as_the_scheduler_does(
    containers: list[dict[str, Any]], init: list[dict[str, Any]] | None, gpus: int
) -> None:
    demand, problems = gpu_demand(pod_with(containers, init), example_policy())

    assert demand == GpuDemand(gpus)
    assert problems == []


def test_a_gpu_request_that_differs_from_its_limit_is_a_conflict() -> None:
    pod = pod_with([container("a", "1", "1"), container("b", "1", "2")])

    demand, problems = gpu_demand(pod, example_policy())

    assert demand.gpus == 1
    assert problems == [
        "container b: nvidia.com/gpu request 1 differs from limit 2 "
        "(extended resources need equal request and limit)"
    ]
    assert pod_intent(pod, example_policy()).conflicts == tuple(problems)


def test_more_gpus_than_any_node_holds_is_a_conflict_and_stays_a_64_bit_number() -> None:
    # Found by fuzzing: 2**70 GPUs reached /debug/explain's JSON encoder (a 500).
    pod = pod_with([container("a", str(2**70), str(2**70))])

    demand, problems = gpu_demand(pod, example_policy())

    assert problems == [f"asks for {2**70} nvidia.com/gpu; no node holds more than 1024"]
    assert demand.gpus == 1025


def test_a_fractional_gpu_count_is_a_conflict() -> None:
    _, problems = gpu_demand(pod_with([container("a", "500m", "500m")]), example_policy())

    assert len(problems) == 1
    assert problems[0].startswith("container a: nvidia.com/gpu ")
    assert "not a whole, non-negative count" in problems[0]


@pytest.mark.parametrize(
    ("gpus", "milli", "demand", "problem"),
    [
        (1, "300", GpuDemand(1, 300), None),
        (1, "1000", GpuDemand(1, 1000), None),
        (1, "1", GpuDemand(1, 1), None),
        (1, "0", GpuDemand(1), f"annotation {MILLI}='0' is not an integer 1..1000"),
        (1, "1001", GpuDemand(1), f"annotation {MILLI}='1001' is not an integer 1..1000"),
        (1, "0.5", GpuDemand(1), f"annotation {MILLI}='0.5' is not an integer 1..1000"),
        (1, "half", GpuDemand(1), f"annotation {MILLI}='half' is not an integer 1..1000"),
        (
            2,
            "300",
            GpuDemand(2),
            f"annotation {MILLI}=300 shares a GPU, which needs exactly 1 nvidia.com/gpu, not 2",
        ),
        (2, "1000", GpuDemand(2), None),
        (0, "300", GpuDemand(0), None),
    ],
    ids=[
        "shared-300",
        "whole",
        "smallest-share",
        "zero",
        "above-whole",
        "decimal",
        "not-a-number",
        "share-with-two-gpus",
        "whole-with-two-gpus",
        "ignored-without-gpus",
    ],
)
def test_the_gpu_milli_annotation_shares_one_gpu(
    gpus: int, milli: str, demand: GpuDemand, problem: str | None
) -> None:
    pod = make_pod(gpus=gpus, annotations={MILLI: milli})

    got, problems = gpu_demand(pod, example_policy())

    assert got == demand
    assert problems == ([problem] if problem else [])
    assert pod_intent(pod, example_policy()).conflicts == tuple(problems)


def test_total_milli_counts_every_device() -> None:
    assert GpuDemand(4).total_milli == 4000
    assert GpuDemand(1, 250).total_milli == 250


def test_the_pod_key_is_namespace_slash_name() -> None:
    assert intent(name="web-0", namespace="serving").key == "serving/web-0"


# ---- controller ----------------------------------------------------------------------------


def test_the_owner_is_the_controller_reference_in_the_pods_namespace() -> None:
    pod = pod_dict(namespace="serving")
    pod["metadata"]["ownerReferences"] = [
        {"kind": "Service", "name": "front"},  # an owner, not the controller
        {"kind": "ReplicaSet", "name": "chat-7d9f", "controller": True},
    ]
    assert pod_intent(msgspec.convert(pod, Pod), example_policy()).owner == (
        "serving/ReplicaSet/chat-7d9f"
    )
    assert intent().owner == ""
    assert intent(owner_kind="Job", owner_name="train").owner == "ml/Job/train"
