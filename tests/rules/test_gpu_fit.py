"""Filter: the node's GPUs, one by one, must have room for the pod (whole or shared)."""

from __future__ import annotations

from extender.policy import pod_intent
from extender.rules import gpu_fit
from extender.rules.base import Reject
from extender.state import ClusterCache
from extender.wire import Pod
from tests.builders import PREFIX, example_policy, make_cache, make_node, make_pod

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
