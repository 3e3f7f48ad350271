"""Filter: the node's GPUs, one by one, must have room for the pod's share.

The scheduler counts whole GPUs itself; this rule also sees shared GPUs (a pod taking 300
of one GPU's 1000) and our own binds that its cache has not yet seen.
"""

from __future__ import annotations

from extender.policy.compiled import Policy
from extender.policy.intent import WHOLE_GPU, PodIntent
from extender.rules.base import ClusterView, Reject
from extender.state.devices import pick_devices
from extender.state.features import NodeFeatures

NAME = "gpu_fit"


def check(
    pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy
) -> Reject | None:
    if pick_devices(node.free, pod.demand) is not None:
        return None
    if pod.demand.milli >= WHOLE_GPU:
        return Reject(NAME, f"not enough free GPUs: needs {pod.demand.gpus} whole", True)
    return Reject(NAME, f"no GPU has {pod.demand.milli}/1000 free for a shared pod", True)
