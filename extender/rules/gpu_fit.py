"""Filter: the node's GPUs, one by one, must have room for the pod's share.

The scheduler counts whole GPUs itself; this rule also sees shared GPUs (a pod taking 300
of one GPU's 1000), our own binds that its cache has not yet seen, and separation at GPU
level: a sharing pod never takes a share of a GPU that pods of a workload class it is
kept apart from (either way, mode not off) share already, whatever the separation mode,
because no neighbour is noisier than one on the same GPU.
"""

from __future__ import annotations

from extender.policy.compiled import Policy
from extender.policy.intent import WHOLE_GPU, PodIntent
from extender.rules.base import ClusterView, Reject
from extender.state.devices import NO_DEVICES, pick_devices
from extender.state.features import NodeFeatures

NAME = "gpu_fit"


def blocked_devices(pod: PodIntent, node: NodeFeatures, policy: Policy) -> frozenset[int]:
    """GPUs this pod may not share: they hold shares of workload classes kept apart from it."""
    if pod.demand.milli >= WHOLE_GPU:
        return NO_DEVICES  # whole GPUs are never shared
    return node.apart_devices(policy.apart.get(pod.workload, frozenset()))


def check(
    pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy
) -> Reject | None:
    blocked = blocked_devices(pod, node, policy)
    if pick_devices(node.free, pod.demand, blocked) is not None:
        return None
    if pod.demand.milli >= WHOLE_GPU:
        return Reject(NAME, f"not enough free GPUs: needs {pod.demand.gpus} whole", True)
    if blocked and pick_devices(node.free, pod.demand) is not None:
        others = sorted({w for i in blocked for w in node.holders[i]} & policy.apart[pod.workload])
        return Reject(
            NAME,
            f"every GPU with {pod.demand.milli}/1000 free is shared with {'/'.join(others)} "
            f"pods; {pod.workload} pods never share a GPU with them",
            True,
        )
    return Reject(NAME, f"no GPU has {pod.demand.milli}/1000 free for a shared pod", True)
