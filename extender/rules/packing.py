"""Score: pack (most-allocated GPUs first), spread, or keep fragments few, per workload.

`fragmentation` follows FGD (Weng et al., "Beware of Fragmentation", USENIX ATC'23): a
node's fragment is the free GPU capacity the cluster's typical pods could not use there (a
GPU with less free than a sharing pod needs; partly used GPUs, or too few whole ones, for
whole-GPU pods), weighted by how common each shape is. The best node is where this pod
grows that expected fragment the least. The typical pods are the cluster's own pods, each
with its workload class (`ClusterCache.demand_mix`): a sharing pod may not use a GPU that a
class kept apart from its own shares (gpu_fit), so a share started on a free GPU closes
the rest of it to those classes, and that is fragment too (docs/quality-notes.md).

CPU counts as a node's free CPU feeds typical pods: what the pods that fit its free CPU
cannot reach is fragment too. FGD asks only whether one more typical pod fits the CPU, so
a pod that takes the CPU three of a node's four free GPUs need costs nothing there until
the last core; counting every pod the CPU feeds sends CPU-hungry pods, and pods without
GPUs, to nodes whose CPU outlasts their GPUs (on the openb trace: CPU-only pods to the
2-GPU, 104-core T4 nodes instead of the 8-GPU, 96-core G2 nodes; docs/quality-notes.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from extender.policy.compiled import Policy, WorkloadName
from extender.policy.intent import WHOLE_GPU, GpuDemand, PodIntent
from extender.rules.base import ClusterView, clamp01
from extender.rules.gpu_fit import blocked_devices
from extender.state.devices import NO_DEVICES, apart_devices, pick_devices
from extender.state.features import NodeFeatures
from extender.state.rules_view import DemandMix

NAME = "packing"
NO_CPU_LIMIT = -1
NO_CLASSES: frozenset[WorkloadName] = frozenset()


def most_allocated(used_after: int, capacity: int) -> float:
    return clamp01(used_after / capacity)


def least_allocated(used_after: int, capacity: int) -> float:
    return clamp01(1.0 - used_after / capacity)


def spread(used_after: int, capacity: int, replicas: int) -> float:
    """The node's free share after the pod, divided by 1 + the replicas of the pod's
    controller already there: a node holding one counts half its free GPUs, so replicas go
    to other nodes unless those are much fuller."""
    return least_allocated(used_after, capacity) / (1 + replicas)


def unusable(
    free: Sequence[int], demand: GpuDemand, cpu_room: int = NO_CPU_LIMIT, cpu: int = 0
) -> float:
    """Free milli-GPU on these GPUs that pods with `demand` (and `cpu` millicores of CPU
    each) could not use, on a node with `cpu_room` millicores free (-1: CPU not counted).

    The free CPU feeds `cpu_room / cpu` such pods, fractions included: the pods to come
    ask for CPU around the typical figure, not exactly it, and a whole-pod count would
    see no cost in taking CPU until the last core (measured with `simulate`:
    docs/quality-notes.md)."""
    total = sum(free)
    if demand.milli < WHOLE_GPU:
        lost = sum(f for f in free if f < demand.milli)
    elif sum(1 for f in free if f >= WHOLE_GPU) < demand.gpus:
        return total
    else:
        lost = sum(f for f in free if f < WHOLE_GPU)
    if cpu_room < 0 or cpu <= 0:
        return lost
    # As many such pods as the free CPU feeds use the rest; what they cannot reach is lost.
    return total - min(total - lost, cpu_room * demand.total_milli / cpu)


def fragment(
    free: Sequence[int],
    holders: Sequence[Mapping[WorkloadName, int]],
    mix: DemandMix,
    apart: Mapping[WorkloadName, frozenset[WorkloadName]],
    cpu_room: int = NO_CPU_LIMIT,
) -> float:
    """Expected free milli-GPU a pod drawn from `mix` could not use; a sharing pod cannot
    use a GPU that a class `apart` from its own shares (gpu_fit)."""
    # Per workload class: the free share of GPUs shut to its sharing pods, and the rest.
    views: dict[WorkloadName, tuple[int, Sequence[int]]] = {}
    total = 0.0
    for workload, (demand, cpu), weight in mix:
        if demand.milli >= WHOLE_GPU:  # a partly used GPU is lost to whole-GPU pods anyway
            total += weight * unusable(free, demand, cpu_room, cpu)
            continue
        view = views.get(workload)
        if view is None:
            shut = apart_devices(holders, apart.get(workload, NO_CLASSES))
            open_free = [f for i, f in enumerate(free) if i not in shut] if shut else free
            view = views[workload] = (sum(free) - sum(open_free), open_free)
        shut_free, open_free = view
        total += weight * (shut_free + unusable(open_free, demand, cpu_room, cpu))
    return total


def fragment_growth(
    node: NodeFeatures,
    pod: PodIntent,
    mix: DemandMix,
    policy: Policy,
    blocked: frozenset[int] = NO_DEVICES,
) -> float | None:
    """How much placing the pod (its GPUs and CPU) grows the node's expected fragment
    (None: its GPUs do not fit). A share it starts on a free GPU closes the rest of that
    GPU to the classes kept apart from its own."""
    devices = pick_devices(node.free, pod.demand, blocked)
    if devices is None:
        return None
    after = list(node.free)
    holders = list(node.holders)
    for device in devices:
        after[device] -= pod.demand.milli
        holders[device] = {**holders[device], pod.workload: pod.demand.milli}
    room = node.cpu_room
    room_after = max(0, room - pod.cpu_milli) if room >= 0 else NO_CPU_LIMIT
    return fragment(after, holders, mix, policy.apart, room_after) - fragment(
        node.free, node.holders, mix, policy.apart, room
    )


def applies(pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy) -> bool:
    return True


def score(pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy) -> float:
    strategy = policy.workloads[pod.workload].packing
    capacity = node.capacity_milli
    if strategy == "fragmentation":
        # A pod without GPUs is scored too: its CPU can leave a node's free GPUs without
        # the CPU the cluster's typical GPU pods need.
        if pod.demand.gpus and capacity <= 0:
            return 0.0
        mix = cluster.demand_mix()
        if not mix and pod.demand.gpus:
            mix = ((pod.workload, (pod.demand, pod.cpu_milli), 1.0),)
        growth = fragment_growth(node, pod, mix, policy, blocked_devices(pod, node, policy))
        # FGD's squashing: leaving the fragment as it was scores 0.5, filling a GPU's worth
        # of it 0.73, stranding a GPU 0.27, and several GPUs still tell apart.
        return 0.0 if growth is None else 1.0 / (1.0 + math.exp(growth / WHOLE_GPU))
    if capacity <= 0:
        return 0.0
    used_after = capacity - node.free_milli + pod.demand.total_milli
    if strategy == "pack":
        return most_allocated(used_after, capacity)
    replicas = cluster.replicas_of(pod.owner).get(node.name, 0) if pod.owner else 0
    return spread(used_after, capacity, replicas)
