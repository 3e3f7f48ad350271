"""Filter: the node's GPUs, one by one, must have room for the pod (whole or shared)."""

from __future__ import annotations

from extender.policy import pod_intent
from extender.rules import gpu_fit
from extender.rules.base import Reject
from extender.state import ClusterCache
from extender.wire import Pod
from tests.builders import (
    EXAMPLE_POLICY,
    PREFIX,
    example_policy,
    make_cache,
    make_node,
    make_pod,
    policy_from,
)

MILLI = f"{PREFIX}gpu-milli"


def shared(milli: int, node: str = "", name: str = "s") -> Pod:
    return make_pod(
        name, 1, workload="batch", annotations={MILLI: str(milli)}, node=node, phase="Running"
    )


def whole(gpus: int, node: str = "", name: str = "w") -> Pod:
    return make_pod(name, gpus, workload="batch", node=node, phase="Running")


def check(cache: ClusterCache, pod: Pod, node: str = "n1") -> Reject | None:
    features = cache.node(node)
    assert features is not None
    return gpu_fit.check(pod_intent(pod, cache.policy), features, cache, cache.policy)


def test_whole_gpu_pods_fit_while_enough_whole_gpus_are_free() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 4)], [whole(3, "n1")])

    assert check(cache, whole(1)) is None
    assert check(cache, whole(2)) == Reject("gpu_fit", "not enough free GPUs: needs 2 whole", True)


def test_a_partly_used_gpu_is_not_a_whole_free_gpu() -> None:
    cache = make_cache(example_policy(), [make_node("n1", "T4", 1)], [shared(100, "n1")])

    assert check(cache, whole(1)) is not None
    assert check(cache, shared(900)) is None


def test_a_shared_pod_fits_on_any_gpu_with_its_share_free() -> None:
    pods = [shared(800, "n1", "a")]
    cache = make_cache(example_policy(), [make_node("n1", "T4", 2)], pods)

    assert check(cache, shared(200)) is None
    assert check(cache, shared(1000)) is None


def test_a_shared_pod_is_rejected_when_no_single_gpu_has_its_share() -> None:
    pods = [shared(800, "n1", "a"), shared(800, "n1", "b")]
    cache = make_cache(example_policy(), [make_node("n1", "T4", 2)], pods)

    assert check(cache, shared(300)) == Reject(
        "gpu_fit", "no GPU has 300/1000 free for a shared pod", True
    )
    assert check(cache, shared(200)) is None


def test_shared_pods_take_the_tightest_gpu_so_whole_gpus_stay_free() -> None:
    pods = [shared(700, "n1", "a"), shared(200, "n1", "b")]
    cache = make_cache(example_policy(), [make_node("n1", "T4", 2)], pods)

    node = cache.node("n1")
    assert node is not None
    assert sorted(node.free) == [100, 1000]
    assert check(cache, whole(1)) is None


def share_of(workload: str, milli: int, node: str = "", name: str = "p") -> Pod:
    return make_pod(
        name, 1, workload=workload, annotations={MILLI: str(milli)}, node=node, phase="Running"
    )


def test_a_sharing_pod_never_shares_a_gpu_with_a_workload_class_kept_apart_from_it() -> None:
    # The example policy's interactive pods avoid batch pods (soft at node level).
    cache = make_cache(
        example_policy(), [make_node("n1", "T4", 1)], [share_of("batch", 300, "n1", "b")]
    )

    reject = check(cache, share_of("interactive", 500))

    assert reject == Reject(
        "gpu_fit",
        "every GPU with 500/1000 free is shared with batch pods; interactive pods never share "
        "a GPU with them",
        True,
    )
    # The rule is symmetric: batch pods keep off GPUs interactive pods share, too.
    cache = make_cache(
        example_policy(), [make_node("n1", "T4", 1)], [share_of("interactive", 300, "n1")]
    )
    assert check(cache, share_of("batch", 500)) is not None
    assert check(cache, share_of("interactive", 500)) is None  # its own class may share


def test_a_sharing_pod_takes_a_gpu_its_own_class_shares_rather_than_a_whole_one() -> None:
    pods = [share_of("batch", 300, "n1", "b"), share_of("interactive", 300, "n1", "i")]
    cache = make_cache(example_policy(), [make_node("n1", "T4", 3)], pods)
    node = cache.node("n1")
    assert node is not None
    # Charged to two different GPUs, each with one class.
    assert sorted(node.free) == [700, 700, 1000]
    assert sorted(tuple(h) for h in node.holders if h) == [("batch",), ("interactive",)]

    assert check(cache, share_of("interactive", 700)) is None
    assert check(cache, whole(1)) is None  # whole GPUs are never shared


def test_separation_off_lets_classes_share_a_gpu() -> None:
    policy = policy_from(EXAMPLE_POLICY.read_text().replace("mode: soft", "mode: off"))
    # A bare `off` (YAML 1.1 reads it as false) is the mode off.
    assert all(w.separation.mode == "off" for w in policy.workloads.values())
    cache = make_cache(policy, [make_node("n1", "T4", 1)], [share_of("batch", 300, "n1", "b")])

    assert check(cache, share_of("interactive", 500)) is None
