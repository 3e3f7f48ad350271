"""FGD held to our wishes at the policy's own price: the bound our models are held against.

`fgd+wishes` runs the validated FGD measure (CPU-aware expected fragmentation, integer
sigmoid scores, ties to a seeded node order; `reference.py`) with what our policy asks:

1. Preferred classes as tiers: a GPU pod goes to a node of one of its workload's preferred
   classes whenever one fits (the strictest reading of a preference).
2. Separation at GPU level, hard: a GPU-sharing pod never shares a GPU with pods of a
   workload class it avoids, or that avoids it (as `rules/gpu_fit.py`).
3. Separation at node level at the policy's price. Our score is the weighted mean of its
   components; with packing `fragmentation` (FGD's sigmoid of the fragment growth), one
   GPU of growth moves the packing component by 1/4 near zero. So losing separation (its
   component falling from 1 to s, the very function of `rules/separation.py`) is worth
   `4 * w_separation / w_packing * (1 - s)` GPUs of fragment: FGD pays exactly that (no
   0..10 rounding, no in-tree scores). Mode
   `hard` refuses such nodes, as our filter does; weight 0 makes co-location on a node
   free (GPUs stay separate); mode `off` ignores separation.
4. Fragmentation with the typical pods in their workload classes, as `rules/packing.py`
   measures it: a pod may not share a GPU that a class kept apart from its own shares, so
   a share started on a free GPU closes the rest of it to those classes.

Sweeping the separation weight traces a frontier of unallocated GPUs against co-location
(`simulate --frontier`); a scheduler that merges scores through kube-scheduler cannot keep
the same wishes at a lower cost in GPUs than this one pays, unless it packs better than FGD.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from extender.policy.compiled import Policy, WorkloadName
from extender.simulate.cluster import BoolArray, Cluster, PodRequest
from extender.simulate.extender_model import model_class, trace_workload
from extender.simulate.fragmentation import FloatArray, FragmentationModel, typical_pods
from extender.simulate.protocol import Placement
from extender.simulate.reference import first_whole_gpus
from extender.simulate.trace import IntArray, PodTable

MAX_SCORE = 100


def separation_price(policy: Policy, workload: WorkloadName) -> float:
    """What node-level co-location costs this workload class, in GPUs of fragment growth
    per unit of separation score lost (inf: hard; 0: free)."""
    if not policy.apart.get(workload):
        return 0.0
    hard = any(
        rules.separation.mode == "hard" and (name == workload or workload in rules.separation.avoid)
        for name, rules in policy.workloads.items()
        if rules.separation.avoid
    )
    if hard or (policy.weights.separation > 0 and policy.weights.packing <= 0):
        return math.inf
    if policy.weights.separation <= 0:
        return 0.0
    return 4.0 * policy.weights.separation / policy.weights.packing


def with_separation_weight(policy: Policy, weight: float | None) -> Policy:
    """The policy with its separation weight set (None: every separation made hard)."""
    if weight is not None:
        return replace(policy, weights=replace(policy.weights, separation=weight))
    workloads = {
        name: replace(rules, separation=replace(rules.separation, mode="hard"))
        if rules.separation.avoid and rules.separation.mode != "off"
        else rules
        for name, rules in policy.workloads.items()
    }
    return replace(policy, workloads=workloads)


class FgdWishes:
    """FGD within the policy's preferred classes, paying the policy's separation price."""

    name = "fgd+wishes"

    def __init__(
        self, cluster: Cluster, trace: PodTable, policy: Policy, tie_rank: IntArray
    ) -> None:
        self.policy = policy
        self.tie_rank = tie_rank
        workloads = np.array([trace_workload_of(q, policy) for q in trace.qos], dtype=object)
        # Each class's typical pods, weighted by the class's share of the trace's pods.
        self.models: dict[WorkloadName, FragmentationModel] = {}
        for name in policy.workloads:
            own = np.flatnonzero(workloads == name)
            if len(own):
                typical = typical_pods(trace.take(own))
                share = typical.weight * (len(own) / len(trace))
                self.models[name] = FragmentationModel(replace(typical, weight=share), cluster)
        node_class = np.array([model_class(m, policy) or "" for m in cluster.models])
        self.preferred: dict[WorkloadName, BoolArray] = {
            name: np.isin(node_class, sorted(rules.preferred_classes))
            for name, rules in policy.workloads.items()
        }
        self.price = {name: separation_price(policy, name) for name in policy.workloads}
        # Milli-GPU each workload class holds, per node and GPU.
        self.held: dict[WorkloadName, IntArray] = {
            name: np.zeros(cluster.gpu_free.shape, dtype=np.int64) for name in policy.workloads
        }

    def decide(
        self, cluster: Cluster, pod: PodRequest, feasible: BoolArray, rng: np.random.Generator
    ) -> Placement | None:
        nodes = np.flatnonzero(feasible)
        workload = trace_workload(pod, self.policy)
        if pod.num_gpu == 0:
            before, after = self._fragment_after(cluster, nodes, pod, workload)
            return Placement(self._best(nodes, _scores(after[:, 0] - before)))
        price = self.price[workload]
        avoided = self._held_by(self.policy.apart.get(workload, frozenset()))
        if math.isinf(price):  # hard: as our filter, refuse nodes with avoided pods
            nodes = nodes[avoided[nodes].sum(axis=1) == 0]
            if len(nodes) == 0:
                return None
        preferred = self.preferred[workload][nodes]
        if preferred.any():
            nodes = nodes[preferred]
        before, after = self._fragment_after(cluster, nodes, pod, workload)
        growth = after - before[:, None]  # (nodes, GPU choices), NaN where it does not fit
        if pod.is_sharing:  # never a GPU shared with a class kept apart (rules/gpu_fit.py)
            growth = np.where(avoided[nodes] > 0, np.nan, growth)
        open_gpu = ~np.isnan(growth)
        fits = open_gpu.any(axis=1)
        if not fits.any():
            return None  # only GPUs shared with avoided pods have room
        nodes, growth = nodes[fits], growth[fits]
        gpu = np.argmin(np.where(np.isnan(growth), np.inf, growth), axis=1)
        cost = growth[np.arange(len(nodes)), gpu]
        if 0 < price < math.inf:
            cost = cost + price * WHOLE * (1.0 - _separation(avoided[nodes], cluster, nodes))
        best = self._best(nodes, _scores(cost))
        if pod.is_sharing:
            gpus: tuple[int, ...] = (int(gpu[np.flatnonzero(nodes == best)[0]]),)
        else:
            gpus = first_whole_gpus(cluster, best, pod.num_gpu)
        for g in gpus:
            self.held[workload][best, g] += pod.gpu_milli
        return Placement(best, gpus)

    def _held_by(self, workloads: frozenset[WorkloadName]) -> IntArray:
        """Milli-GPU these workload classes hold, per node and GPU."""
        held = np.zeros_like(next(iter(self.held.values())))
        for name in workloads:
            held += self.held[name]
        return held

    def _fragment_after(
        self, cluster: Cluster, nodes: IntArray, pod: PodRequest, workload: WorkloadName
    ) -> tuple[FloatArray, FloatArray]:
        """`FragmentationModel.fragment_after` summed over the workload classes' typical
        pods, each barred from GPUs the classes kept apart from it share."""
        before: FloatArray = np.zeros(len(nodes))
        after: FloatArray | None = None
        for name, model in self.models.items():
            apart = self.policy.apart.get(name, frozenset())
            shut = self._held_by(apart)[nodes] > 0 if apart else None
            closes = pod.is_sharing and workload in apart
            b, a = model.fragment_after(
                cluster, nodes, pod.cpu_milli, pod.gpu_milli, pod.num_gpu, shut, closes
            )
            before = before + b
            after = a if after is None else after + a
        assert after is not None, "a trace has pods, so some class has typical pods"
        return before, after

    def release(self, cluster: Cluster, pod: PodRequest, placement: Placement) -> None:
        if pod.num_gpu:
            workload = trace_workload(pod, self.policy)
            for g in placement.gpus:
                self.held[workload][placement.node, g] -= pod.gpu_milli

    def _best(self, nodes: IntArray, scores: IntArray) -> int:
        top = nodes[scores == scores.max()]
        return int(top[np.argmin(self.tie_rank[top])])


WHOLE = 1000.0


def _scores(growth_milli: FloatArray) -> IntArray:
    """FGD's integer score of a fragment growth (milli-GPU): 100 x sigmoid(-growth/1000)."""
    scores: IntArray = np.trunc(MAX_SCORE / (1.0 + np.exp(growth_milli / WHOLE))).astype(np.int64)
    return scores


def _separation(avoided: IntArray, cluster: Cluster, nodes: IntArray) -> FloatArray:
    """rules/separation.py's score per node: 1 without avoided pods, else at most 0.5."""
    held = avoided.sum(axis=1)
    capacity = np.maximum(cluster.gpu_count[nodes] * 1000, 1)
    score: FloatArray = np.where(held > 0, 0.5 * np.clip(1.0 - held / capacity, 0.0, 1.0), 1.0)
    return score


def trace_workload_of(qos: str, policy: Policy) -> WorkloadName:
    """The workload class of a trace pod with this qos."""
    return trace_workload(PodRequest(0, 0, qos=qos), policy)
