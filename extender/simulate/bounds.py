"""FGD held to our placement wishes: what separation and class preference cost the best packer.

`fgd-separated` runs the validated FGD policy (node-order ties, CPU-aware fragmentation)
but only on the nodes our policy would want, in tiers: a pod goes to the first tier with a
feasible node, FGD choosing inside it.

1. nodes of a preferred class of the pod's workload holding no GPU of a workload it avoids;
2. nodes of a preferred class;
3. nodes holding no GPU of a workload it avoids;
4. any feasible node.

No score-merging scheduler can keep these wishes more strictly, and FGD is the best packer
we know on these traces, so its unallocated GPU share is the figure to hold our models
against once the separation and preferred-class goals are met: it measures what the
wishes themselves cost in allocation.
"""

from __future__ import annotations

import numpy as np

from extender.policy.compiled import Policy, WorkloadName
from extender.simulate.cluster import BoolArray, Cluster, PodRequest
from extender.simulate.extender_model import model_class, trace_workload
from extender.simulate.protocol import Placement, Scheduler
from extender.simulate.trace import IntArray


class WishTiers:
    """Wraps a scheduler; narrows each GPU pod's feasible nodes to its best wish tier."""

    def __init__(self, inner: Scheduler, cluster: Cluster, policy: Policy) -> None:
        self.inner = inner
        self.policy = policy
        node_class = np.array([model_class(m, policy) or "" for m in cluster.models])
        self._preferred: dict[WorkloadName, BoolArray] = {
            name: np.isin(node_class, sorted(rules.preferred_classes))
            for name, rules in policy.workloads.items()
        }
        self._avoids = {
            name: tuple(sorted(rules.separation.avoid)) for name, rules in policy.workloads.items()
        }
        self._milli: dict[WorkloadName, IntArray] = {
            name: np.zeros(len(cluster), dtype=np.int64) for name in policy.workloads
        }

    @property
    def name(self) -> str:
        return f"{self.inner.name}+wishes"

    def decide(
        self, cluster: Cluster, pod: PodRequest, feasible: BoolArray, rng: np.random.Generator
    ) -> Placement | None:
        if pod.num_gpu == 0:
            return self.inner.decide(cluster, pod, feasible, rng)
        workload = trace_workload(pod, self.policy)
        preferred = self._preferred[workload]
        clear = np.ones(len(cluster), dtype=bool)
        for avoided in self._avoids[workload]:
            clear &= self._milli[avoided] == 0
        narrowed = feasible
        for tier in (preferred & clear, preferred, clear):
            if (feasible & tier).any():
                narrowed = feasible & tier
                break
        choice = self.inner.decide(cluster, pod, narrowed, rng)
        if choice is not None:
            self._milli[workload][choice.node] += pod.total_gpu_milli
        return choice

    def release(self, cluster: Cluster, pod: PodRequest, placement: Placement) -> None:
        workload = trace_workload(pod, self.policy)
        if pod.num_gpu:
            self._milli[workload][placement.node] -= pod.total_gpu_milli
        release = getattr(self.inner, "release", None)
        if release is not None:
            release(cluster, pod, placement)
