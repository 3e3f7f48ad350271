"""Score: pack (most-allocated GPUs first), spread, or keep fragments few, per workload.

`fragmentation` follows FGD (Weng et al., "Beware of Fragmentation", USENIX ATC'23): a
node's fragment is the free GPU capacity the cluster's typical pods could not use there
(all of it when a pod does not fit the node's free CPU; a GPU with less free than a
sharing pod needs; partly used GPUs, or too few whole ones, for whole-GPU pods), weighted
by how common each shape is. The best node is where this pod grows that expected fragment
the least. The typical pods are the cluster's own pods of the pod's workload class: under
separation they are the ones that will use what it leaves free (`ClusterCache.demand_mix`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from extender.policy.compiled import Policy
from extender.policy.intent import WHOLE_GPU, GpuDemand, PodIntent
from extender.rules.base import ClusterView, clamp01
from extender.rules.gpu_fit import blocked_devices
from extender.state.cache import DemandMix
from extender.state.devices import pick_devices
from extender.state.features import NodeFeatures

NAME = "packing"
NO_CPU_LIMIT = -1


def most_allocated(used_after: int, capacity: int) -> float:
    return clamp01(used_after / capacity)


def least_allocated(used_after: int, capacity: int) -> float:
    return clamp01(1.0 - used_after / capacity)


STRATEGIES: dict[str, Callable[[int, int], float]] = {
    "pack": most_allocated,
    "spread": least_allocated,
}


def unusable(
    free: Sequence[int], demand: GpuDemand, cpu_room: int = NO_CPU_LIMIT, cpu: int = 0
) -> int:
    """Free milli-GPU on these GPUs that a pod with `demand` (and `cpu` millicores of CPU)
    could not use, on a node with `cpu_room` millicores free (-1: CPU not counted)."""
    if 0 <= cpu_room < cpu:
        return sum(free)  # it does not fit the node's CPU: every free GPU is lost to it
    if demand.milli < WHOLE_GPU:
        return sum(f for f in free if f < demand.milli)
    if sum(1 for f in free if f >= WHOLE_GPU) < demand.gpus:
        return sum(free)
    return sum(f for f in free if f < WHOLE_GPU)


def fragment(free: Sequence[int], mix: DemandMix, cpu_room: int = NO_CPU_LIMIT) -> float:
    """Expected free milli-GPU a pod drawn from `mix` could not use."""
    return sum(weight * unusable(free, demand, cpu_room, cpu) for (demand, cpu), weight in mix)


def fragment_growth(
    node: NodeFeatures,
    demand: GpuDemand,
    mix: DemandMix,
    blocked: frozenset[int] = frozenset(),
    cpu: int = 0,
) -> float | None:
    """How much placing the pod (GPUs and `cpu` millicores) grows the node's expected
    fragment (None: its GPUs do not fit)."""
    devices = pick_devices(node.free, demand, blocked)
    if devices is None:
        return None
    after = list(node.free)
    for device in devices:
        after[device] -= demand.milli
    room = node.cpu_room
    room_after = max(0, room - cpu) if room >= 0 else NO_CPU_LIMIT
    return fragment(after, mix, room_after) - fragment(node.free, mix, room)


def applies(pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy) -> bool:
    return True


def score(pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy) -> float:
    strategy = policy.workloads[pod.workload].packing
    capacity = node.capacity_milli
    if strategy == "fragmentation":
        if pod.demand.gpus == 0:
            # A pod without GPUs strands the free GPUs of a node whose CPU it leaves too
            # small for the cluster's typical GPU pods, of whatever class will take them.
            mix = cluster.demand_mix()
        elif capacity <= 0:
            return 0.0
        else:
            mix = cluster.demand_mix(pod.workload) or (((pod.demand, pod.cpu_milli), 1.0),)
        blocked = blocked_devices(pod, node, policy)
        growth = fragment_growth(node, pod.demand, mix, blocked, pod.cpu_milli)
        # FGD's squashing: leaving the fragment as it was scores 0.5, filling a GPU's worth
        # of it 0.73, stranding a GPU 0.27, and several GPUs still tell apart.
        return 0.0 if growth is None else 1.0 / (1.0 + math.exp(growth / WHOLE_GPU))
    if capacity <= 0:
        return 0.0
    used_after = capacity - node.free_milli + pod.demand.total_milli
    return STRATEGIES[strategy](used_after, capacity)
