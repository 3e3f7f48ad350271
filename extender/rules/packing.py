"""Score: pack (most-allocated GPUs first), spread, or keep fragments few, per workload.

`fragmentation` follows FGD (Weng et al., "Beware of Fragmentation", USENIX ATC'23): a
node's fragment is the free GPU capacity the cluster's typical pods could not use there
(a GPU with less free than a sharing pod needs; partly used GPUs, or too few whole ones,
for whole-GPU pods), weighted by how common each demand is. The best node is where this
pod grows that expected fragment the least. Unlike FGD we know GPUs only (CPU and memory
are the scheduler's business) and take the typical pods from the cluster's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from extender.policy.compiled import Policy
from extender.policy.intent import WHOLE_GPU, GpuDemand, PodIntent
from extender.rules.base import ClusterView, clamp01
from extender.rules.gpu_fit import blocked_devices
from extender.state.cache import DemandMix
from extender.state.devices import pick_devices
from extender.state.features import NodeFeatures

NAME = "packing"


def most_allocated(used_after: int, capacity: int) -> float:
    return clamp01(used_after / capacity)


def least_allocated(used_after: int, capacity: int) -> float:
    return clamp01(1.0 - used_after / capacity)


STRATEGIES: dict[str, Callable[[int, int], float]] = {
    "pack": most_allocated,
    "spread": least_allocated,
}


def unusable(free: Sequence[int], demand: GpuDemand) -> int:
    """Free milli-GPU on these GPUs that a pod with `demand` could not use."""
    if demand.milli < WHOLE_GPU:
        return sum(f for f in free if f < demand.milli)
    if sum(1 for f in free if f >= WHOLE_GPU) < demand.gpus:
        return sum(free)
    return sum(f for f in free if f < WHOLE_GPU)


def fragment(free: Sequence[int], mix: DemandMix) -> float:
    """Expected free milli-GPU a pod drawn from `mix` could not use."""
    return sum(weight * unusable(free, demand) for demand, weight in mix)


def fragment_growth(
    node: NodeFeatures,
    demand: GpuDemand,
    mix: DemandMix,
    blocked: frozenset[int] = frozenset(),
) -> float | None:
    """How much placing the pod grows the node's expected fragment (None: it does not fit)."""
    devices = pick_devices(node.free, demand, blocked)
    if devices is None:
        return None
    after = list(node.free)
    for device in devices:
        after[device] -= demand.milli
    return fragment(after, mix) - fragment(node.free, mix)


def applies(pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy) -> bool:
    return True


def score(pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy) -> float:
    capacity = node.capacity_milli
    if capacity <= 0:
        return 0.0
    strategy = policy.workloads[pod.workload].packing
    if strategy == "fragmentation":
        mix = cluster.demand_mix() or ((pod.demand, 1.0),)
        growth = fragment_growth(node, pod.demand, mix, blocked_devices(pod, node, policy))
        # Filling a fragment (growth -1 GPU) scores 1, leaving it as it was 0.5, making a
        # whole GPU unusable 0.
        return 0.0 if growth is None else clamp01(0.5 - growth / (2 * WHOLE_GPU))
    used_after = capacity - node.free_milli + pod.demand.total_milli
    return STRATEGIES[strategy](used_after, capacity)
