"""A model of the default kube-scheduler's own scoring for the trace's pods.

The in-tree score plugins that tell these pods' nodes apart (upstream v1.36,
`pkg/scheduler/framework/plugins/noderesources`), with their default weights:

- NodeResourcesFit, strategy LeastAllocated over cpu and memory (weight 1 each): per
  resource `(allocatable - requested) * 100 / allocatable`, then the weighted mean;
- NodeResourcesBalancedAllocation over cpu and memory: `(1 - std of the requested
  fractions) * 100`.

Requested includes the incoming pod; a container without a CPU or memory request counts as
100m / 200 MiB (the scheduler's non-zero defaults). Both plugins have weight 1 in the
default profile; the other default score plugins (taints, affinity, topology spread,
image locality) give every trace node the same score, so they are left out. Scores are
integers, as in Go. GPUs are not scored by default: `nvidia.com/gpu` is an extended
resource, absent from the default scoring resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from extender.policy.intent import WHOLE_GPU, GpuDemand
from extender.simulate.cluster import Cluster, PodRequest
from extender.simulate.protocol import NodeScorer
from extender.simulate.trace import IntArray
from extender.state.devices import pick_devices

MAX_NODE_SCORE = 100
NON_ZERO_CPU_MILLI = 100
NON_ZERO_MEMORY_MIB = 200


FitStrategy = Literal["LeastAllocated", "MostAllocated"]
GPU = "gpu"
"""Stands for the policy's GPU resource in a profile's scoring resources."""


@dataclass(frozen=True, slots=True)
class InTreeWeights:
    """Score-plugin weights of a scheduler profile (0 disables a plugin's score), and how
    NodeResourcesFit scores: its strategy over (resource, weight) pairs."""

    fit: int = 1
    fit_strategy: FitStrategy = "LeastAllocated"
    fit_resources: tuple[tuple[str, int], ...] = (("cpu", 1), ("memory", 1))
    balanced_allocation: int = 1


DEFAULT_WEIGHTS = InTreeWeights()


def _used_and_capacity(
    cluster: Cluster, pod: PodRequest, nodes: IntArray, resource: str
) -> tuple[IntArray, IntArray]:
    """A resource's request on each node once the pod is there, and the node's allocatable."""
    if resource == "cpu":
        capacity = cluster.cpu_capacity[nodes]
        return capacity - cluster.cpu_free[nodes] + max(pod.cpu_milli, NON_ZERO_CPU_MILLI), capacity
    if resource == "memory":
        capacity = cluster.memory_capacity[nodes]
        used = capacity - cluster.memory_free[nodes] + max(pod.memory_mib, NON_ZERO_MEMORY_MIB)
        return used, capacity
    if cluster.whole_units:  # `nvidia.com/gpu` in whole units, as the real scheduler counts
        capacity = cluster.gpu_count[nodes]
        return capacity - cluster.gpu_units_free[nodes] + pod.num_gpu, capacity
    # The GPU resource, in milli-GPU, as a sharing-aware device plugin would advertise it.
    capacity = cluster.gpu_count[nodes] * WHOLE_GPU
    used = capacity - cluster.gpu_free_total[nodes] + pod.total_gpu_milli
    return used, capacity


def resource_fit(
    cluster: Cluster,
    pod: PodRequest,
    nodes: IntArray,
    strategy: FitStrategy = "LeastAllocated",
    resources: tuple[tuple[str, int], ...] = DEFAULT_WEIGHTS.fit_resources,
) -> IntArray:
    """NodeResourcesFit's score: LeastAllocated prefers the emptiest nodes (spreads),
    MostAllocated the fullest (packs); weighted mean over the resources.

    As upstream (`resource_allocation.go`), a resource a node has none of is left out of
    its mean, and so is the GPU (an extended resource) for a pod that asks for none: with
    the GPU as the only scored resource, pods without GPUs score 0 everywhere and land at
    random among the nodes that fit (found by `make sim-to-real`).
    """
    total = np.zeros(len(nodes), dtype=np.int64)
    weights = np.zeros(len(nodes), dtype=np.int64)
    for resource, weight in resources:
        if resource == GPU and pod.num_gpu == 0:
            continue
        used, capacity = _used_and_capacity(cluster, pod, nodes, resource)
        safe = np.maximum(capacity, 1)
        if strategy == "LeastAllocated":  # over capacity (non-zero defaults): 0
            part = np.where(used <= capacity, (capacity - used) * MAX_NODE_SCORE // safe, 0)
        else:  # over capacity counts as full
            part = np.minimum(used, capacity) * MAX_NODE_SCORE // safe
        total += np.where(capacity > 0, weight * part, 0)
        weights += np.where(capacity > 0, weight, 0)
    scores: IntArray = total // np.maximum(weights, 1)
    return scores


def least_allocated(cluster: Cluster, pod: PodRequest, nodes: IntArray) -> IntArray:
    """NodeResourcesFit with the default LeastAllocated strategy over cpu and memory."""
    return resource_fit(cluster, pod, nodes)


def balanced_allocation(cluster: Cluster, pod: PodRequest, nodes: IntArray) -> IntArray:
    """NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory fill evenly."""
    cpu_used, cpu_capacity = _used_and_capacity(cluster, pod, nodes, "cpu")
    memory_used, memory_capacity = _used_and_capacity(cluster, pod, nodes, "memory")
    cpu_fraction = np.minimum(cpu_used / np.maximum(cpu_capacity, 1), 1.0)
    memory_fraction = np.minimum(memory_used / np.maximum(memory_capacity, 1), 1.0)
    std = np.abs(cpu_fraction - memory_fraction) / 2
    scores: IntArray = ((1.0 - std) * MAX_NODE_SCORE).astype(np.int64)
    return scores


def in_tree_scores(
    cluster: Cluster, pod: PodRequest, nodes: IntArray, weights: InTreeWeights
) -> IntArray:
    """The profile's in-tree score for each node: plugin scores (0..100) times weights."""
    total = np.zeros(len(nodes), dtype=np.int64)
    if weights.fit:
        fit = resource_fit(cluster, pod, nodes, weights.fit_strategy, weights.fit_resources)
        total += weights.fit * fit
    if weights.balanced_allocation:
        total += weights.balanced_allocation * balanced_allocation(cluster, pod, nodes)
    return total


def device_plugin_gpus(cluster: Cluster, pod: PodRequest, node: int) -> tuple[int, ...]:
    """The GPUs a pod gets on its node: the extender cache's model of the device plugin
    (whole GPUs first-free; a shared GPU best-fit), so both sides agree on where it is."""
    if pod.num_gpu == 0:
        return ()
    free = cluster.gpu_free[node, : int(cluster.gpu_count[node])].tolist()
    chosen = pick_devices(free, GpuDemand(pod.num_gpu, pod.gpu_milli))
    if chosen is None:  # feasible() said it fits: a disagreement is a bug
        raise AssertionError(f"pod {pod} was found feasible on node {node} but fits no GPUs")
    return chosen


class DefaultScheduler(NodeScorer):
    """`default`: the default profile's scores; ties broken at random, as upstream does."""

    name = "default"

    def __init__(self, weights: InTreeWeights = DEFAULT_WEIGHTS) -> None:
        super().__init__(tie_rank=None)
        self.weights = weights

    def score(
        self, cluster: Cluster, pod: PodRequest, nodes: IntArray, rng: np.random.Generator
    ) -> IntArray:
        return in_tree_scores(cluster, pod, nodes, self.weights)

    def pick_gpus(
        self, cluster: Cluster, pod: PodRequest, node: int, rng: np.random.Generator
    ) -> tuple[int, ...]:
        return device_plugin_gpus(cluster, pod, node)
