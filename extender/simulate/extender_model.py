"""kube-scheduler with our extender, replayed: the server's own cache, filter and scores.

Nothing here re-implements a rule. The trace's nodes become Node objects in a
ClusterCache, each arriving pod becomes a Pod object, and the engine's filter_nodes and
score_nodes (what the `/filter` and `/prioritize` handlers call) decide; the pod is then
charged to the cache as the watch would report its binding. kube-scheduler's side is
modelled as it merges extenders (upstream `pkg/scheduler/schedule_one.go`,
`prioritizeNodes`): in-tree filters first, then our filter on the survivors; each
node's score is the in-tree plugin scores plus our 0..10 score x weight x 10
(MaxNodeScore / MaxExtenderPriority).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from extender.policy.compiled import ClassName, Policy, WorkloadName
from extender.policy.intent import WHOLE_GPU, WorkloadInputs, pod_intent, workload_from
from extender.policy.node_class import classify_node
from extender.rules.engine import MAX_SCORE, filter_and_score
from extender.simulate.cluster import BoolArray, Cluster, PodRequest
from extender.simulate.kube_scheduler import (
    DEFAULT_WEIGHTS,
    GPU,
    MAX_NODE_SCORE,
    InTreeWeights,
    device_plugin_gpus,
    in_tree_scores,
)
from extender.simulate.protocol import FloatArray, Placement, select_host
from extender.simulate.trace import IntArray
from extender.state.cache import ClusterCache
from extender.wire.types import (
    Container,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    Quantity,
    ResourceRequirements,
)

HOSTNAME_LABEL = "kubernetes.io/hostname"
EXTENDER_SCALE = MAX_NODE_SCORE // MAX_SCORE


@dataclass(frozen=True, slots=True)
class ExtenderProfile:
    """How the scheduler weighs us: the extender's `weight` and the in-tree scores kept.

    `exact` skips the wire's rounding to integers 0..10 (not possible in a real cluster):
    the difference to a rounded run is what the coarse score costs. `managed`: the
    extender's managedResources (cpu, memory or GPU); None when it lists none, so that
    every pod comes to it.
    """

    name: str
    weight: int = 5
    in_tree: InTreeWeights = DEFAULT_WEIGHTS
    exact: bool = False
    managed: frozenset[str] | None = None

    def interested(self, pod: PodRequest) -> bool:
        """Whether kube-scheduler calls the extender for this pod (`IsInterested`)."""
        if self.managed is None:
            return True
        asks = {GPU: pod.num_gpu > 0, "cpu": pod.cpu_milli > 0, "memory": pod.memory_mib > 0}
        return any(asks[name] for name in self.managed)


def _model_labels(model: str, policy: Policy) -> dict[str, str]:
    """The product label GFD would put on a node with this GPU model."""
    product_labels = policy.document.node_classification.product_labels
    return {product_labels[0]: model} if model and product_labels else {}


def model_class(model: str, policy: Policy) -> ClassName | None:
    """The class the cache gives a node with this GPU model (None: no class)."""
    return classify_node(_model_labels(model, policy), policy).name


def trace_workload(pod: PodRequest, policy: Policy) -> WorkloadName:
    """The workload class the cache gives a trace pod (its qos is its priorityClassName)."""
    inputs = WorkloadInputs(label=None, priority_class=pod.qos, owner_kinds=())
    return workload_from(inputs, policy)[0] or policy.default_workload


def trace_node(cluster: Cluster, index: int, policy: Policy) -> Node:
    """The Node object a trace node would be: GFD's product label, allocatable GPUs."""
    name = cluster.names[index]
    labels = {HOSTNAME_LABEL: name, **_model_labels(cluster.models[index], policy)}
    return Node(
        metadata=ObjectMeta(name=name, resourceVersion="1", labels=labels),
        status=NodeStatus(
            allocatable={
                "cpu": f"{int(cluster.cpu_capacity[index])}m",
                "memory": f"{int(cluster.memory_capacity[index])}Mi",
                policy.gpu_resource: int(cluster.gpu_count[index]),
            }
        ),
    )


def trace_pod(pod: PodRequest, uid: str, policy: Policy, node: str = "") -> Pod:
    """The Pod object a trace pod would be: its CPU and memory requests, qos as its
    priorityClassName, its GPU share as our gpu-milli annotation, its gpu_spec models as
    required classes."""
    keys = policy.keys
    annotations: dict[str, str] = {}
    if pod.num_gpu == 1 and pod.gpu_milli < WHOLE_GPU:
        annotations[keys.pod_gpu_milli] = str(pod.gpu_milli)
    if pod.gpu_spec:
        classes = {model_class(model, policy) for model in pod.gpu_spec}
        annotations[keys.pod_required_classes] = ",".join(sorted(c for c in classes if c))
    limits: dict[str, Quantity] = {policy.gpu_resource: pod.num_gpu} if pod.num_gpu else {}
    requests: dict[str, Quantity] = {"cpu": f"{pod.cpu_milli}m", "memory": f"{pod.memory_mib}Mi"}
    return Pod(
        metadata=ObjectMeta(name=uid, namespace="trace", uid=uid, annotations=annotations),
        spec=PodSpec(
            nodeName=node,
            priorityClassName=pod.qos,
            containers=[
                Container(
                    name="main", resources=ResourceRequirements(requests=requests, limits=limits)
                )
            ],
        ),
        status=PodStatus(phase="Running" if node else "Pending"),
    )


class ExtenderScheduler:
    """The scheduler profile `profile` calling our extender with `policy`."""

    def __init__(self, cluster: Cluster, policy: Policy, profile: ExtenderProfile) -> None:
        self.name = profile.name
        self.policy = policy
        self.profile = profile
        self.cache = ClusterCache(policy)
        for index in range(len(cluster)):
            self.cache.upsert_node(trace_node(cluster, index, policy))
        self.cache.retain_nodes(set(cluster.names))
        self.cache.retain_pods(set())
        self._names = np.array(cluster.names, dtype=object)
        self._node_order: IntArray = np.arange(len(cluster), dtype=np.int64)
        self._index = {name: i for i, name in enumerate(cluster.names)}
        self._uids = (f"pod-{i}" for i in itertools.count())

    def decide(
        self, cluster: Cluster, pod: PodRequest, feasible: BoolArray, rng: np.random.Generator
    ) -> Placement | None:
        uid = next(self._uids)
        nodes, scores = self.totals(cluster, pod, uid, feasible)
        if len(nodes) == 0:
            self.cache.delete_pod(uid)  # it fails and is dropped: the watch's DELETED event
            return None
        # kube-scheduler (v1.36 `prioritizeNodes`) draws a random tie-breaker only for nodes
        # an interested extender scored: a pod the extender's managedResources keep from it
        # goes to the first of its best nodes in the scheduler's node order (found by make
        # sim-to-real).
        ties = None if self.profile.interested(pod) else self._node_order
        node = select_host(nodes, scores, rng, ties)
        # What the watch would deliver once the pod is bound; the cache charges the GPUs our
        # filter counted on (never one shared with a workload kept apart), which our bind
        # names to the device plugin.
        self.cache.upsert_pod(trace_pod(pod, uid, self.policy, node=cluster.names[node]))
        record = self.cache.pod(uid)
        gpus = record.devices if record is not None else device_plugin_gpus(cluster, pod, node)
        return Placement(node, gpus, token=uid)

    def totals(
        self, cluster: Cluster, pod: PodRequest, uid: str, feasible: BoolArray
    ) -> tuple[IntArray, FloatArray]:
        """The nodes our filter passes and kube-scheduler's total score for each.

        Like `/filter`, it notes the pod in the cache first (ClusterCache.note_pending), so
        the pod counts among the typical pods it is scored with, as in the server.
        """
        if not self.profile.interested(pod):
            nodes = np.flatnonzero(feasible).astype(np.int64)
            in_tree = in_tree_scores(cluster, pod, nodes, self.profile.in_tree)
            return nodes, in_tree.astype(np.float64)
        candidate = trace_pod(pod, uid, self.policy)
        self.cache.note_pending(candidate)
        passed, ours = self.filter_and_score(candidate, self._names[feasible].tolist())
        nodes = np.fromiter(map(self._index.__getitem__, passed), np.int64, len(passed))
        scores = in_tree_scores(cluster, pod, nodes, self.profile.in_tree) + (
            np.asarray(ours, dtype=np.float64) * self.profile.weight * EXTENDER_SCALE
        )
        return nodes, scores

    def index_of(self, name: str) -> int:
        return self._index[name]

    def release(self, cluster: Cluster, pod: PodRequest, placement: Placement) -> None:
        """The pod left: what the watch's DELETED event does."""
        if isinstance(placement.token, str):
            self.cache.delete_pod(placement.token)

    def filter_and_score(
        self, pod: Pod, candidates: list[str]
    ) -> tuple[list[str], list[int] | list[float]]:
        """Our filter over the nodes the in-tree filters left, then our scores of those that
        passed: what `/filter` then `/prioritize` would answer."""
        cache = self.cache
        result, scores = filter_and_score(
            pod_intent(pod, self.policy),
            candidates,
            cache.node_lookup,
            cache,
            self.policy,
            cache.shape_lookup,
            exact=self.profile.exact,
        )
        return result.passed, scores
