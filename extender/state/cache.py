"""The extender's own view of the cluster, kept current by watch events.

Verbs in cache mode get only node names, so every feature a rule reads is computed here
when a Node or Pod event arrives, never per request. Aggregates per topology domain and
per GPU class are maintained by deltas, so a rule's look-up is O(1).

A pod the watch has not confirmed yet is noted (`note_pending`), held in flight
(`hold_in_flight`) or assumed (`assume`): one record per pod, whose words and TTLs are
defined in extender/state/provisional.py. The pod the scheduler sent and our scores for
it, which bind reads, are kept apart, in extender/state/pending.py.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal, TypeVar

import msgspec

from extender.policy.compiled import ClassName, Policy, WorkloadName
from extender.policy.intent import (
    MAX_GPUS_PER_NODE,
    WHOLE_GPU,
    GpuDemand,
    WorkloadInputs,
    cpu_request,
    gpu_demand,
    workload_from,
    workload_inputs,
)
from extender.state.devices import charge, hold, place_anyway
from extender.state.features import HOSTNAME_KEY, NodeFeatures, features_of, node_features
from extender.state.provisional import (
    DEFAULT_TTL,
    NO_CLASSES,
    Provisional,
    ProvisionalPods,
    StageTtl,
)
from extender.state.rules_view import DemandMix, RuleMemos, ShapeLog, TypicalKey, TypicalPods
from extender.state.shapes import NodeShape, ShapeTable
from extender.wire.types import Node, Pod

FINISHED_PHASES = frozenset({"Succeeded", "Failed"})

Kind = Literal["nodes", "pods"]
_D = TypeVar("_D", GpuDemand, WorkloadInputs)


# gc=False: 100k+ records that never form cycles; the collector need not walk them.
class PodRecord(msgspec.Struct, gc=False):
    """A GPU pod the cache accounts for: pending, bound, or assumed bound by our bind.

    Only what accounting needs is kept (not the Pod object): a cluster's pods are the
    bulk of the cache. `inputs` lets a new policy re-derive the workload class.
    """

    uid: str
    namespace: str
    name: str
    node: str  # "" while pending
    workload: WorkloadName
    demand: GpuDemand
    inputs: WorkloadInputs
    devices: tuple[int, ...] = ()
    # The GPUs our bind named on the pod (annotation <prefix>gpu-devices), if any.
    pinned: tuple[int, ...] = ()
    cpu_milli: int = 0  # its CPU request, charged to its node

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


_MAX_CPU_VALUES = 4096


class _Interned:
    """One shared instance per distinct value: pods of one template repeat theirs.

    Held weakly, keyed by the value's fields: a value no pod holds any more is dropped, so
    a stream of one-off pods (a fuzzer, a buggy caller) does not grow the table for good.
    """

    def __init__(self) -> None:
        self._values: weakref.WeakValueDictionary[Hashable, Any] = weakref.WeakValueDictionary()

    def __call__(self, value: _D) -> _D:
        key = (type(value), *(getattr(value, f.name) for f in fields(value)))
        found: _D | None = self._values.get(key)
        if found is None:
            self._values[key] = found = value
        return found


@dataclass(slots=True)
class DomainUsage:
    """GPU capacity of a topology domain and the milli-GPUs each workload class holds."""

    capacity: int = 0
    held: dict[WorkloadName, int] = field(default_factory=dict)
    nodes: int = 0


@dataclass(slots=True)
class ClassUsage:
    capacity: int = 0
    free: int = 0
    nodes: int = 0
    # Milli-GPUs of pods our filter let onto this class that are not bound yet.
    in_flight: int = 0


@dataclass(slots=True)
class Expired:
    """What `ClusterCache.expire` undid: assumptions (their pods), holds, noted pods."""

    assumed: list[PodRecord] = field(default_factory=list)
    held: int = 0
    noted: int = 0


_EMPTY_DOMAIN = DomainUsage()
_NO_REPLICAS: Mapping[str, int] = MappingProxyType({})


class ClusterCache:
    """Nodes, GPU pods and derived features; fed by watch events (or tests)."""

    def __init__(
        self,
        policy: Policy,
        *,
        ttl: StageTtl = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._provisional = ProvisionalPods(ttl, clock)
        self._nodes: dict[str, NodeFeatures] = {}
        self._pods: dict[str, PodRecord] = {}
        # node -> uids of its pods (a dict as an ordered set: half a set's size).
        self._pods_on: dict[str, dict[str, None]] = {}
        # controller -> node -> how many of its pods run there (`packing: spread` reads it).
        self._replicas: dict[str, dict[str, int]] = {}
        self._domains: dict[str, dict[str, DomainUsage]] = {}
        self._classes: dict[ClassName, ClassUsage] = {}
        self._shapes = ShapeTable()
        self._shape_by_name: dict[str, NodeShape] = {}
        # The rules' scratch (extender/state/rules_view.py).
        self._shape_log = ShapeLog()
        self._typical_pods = TypicalPods()
        self._memos = RuleMemos()
        # Scratch for the rules engine: the nodes of its last requests grouped by shape.
        self.grouping_memo: object = None
        self._interned = _Interned()
        self._cpu_values: dict[int, int] = {}
        self._device_tuples: dict[tuple[int, ...], tuple[int, ...]] = {}
        # CPU of pods without GPUs, which the rules read only as CPU taken on their node.
        self._cpu_pods: dict[str, tuple[str, int]] = {}  # uid -> (node, millicores)
        self._cpu_on: dict[str, int] = {}  # node -> millicores those pods request
        # False after a policy that reads other node inputs, until the nodes are relisted.
        self._node_facts_current = True
        self.nodes_synced = False
        self.pods_synced = False

    @classmethod
    def of(cls, policy: Policy, nodes: Iterable[Node], pods: Iterable[Pod]) -> ClusterCache:
        """A synced cache holding exactly these objects (one listing, no watch)."""
        cache = cls(policy)
        cache.replace_nodes(nodes)
        cache.replace_pods(pods)
        return cache

    # ---- reading -------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def ready(self) -> bool:
        return self.nodes_synced and self.pods_synced

    def node(self, name: str) -> NodeFeatures | None:
        return self._nodes.get(name)

    @property
    def node_lookup(self) -> Callable[[str], NodeFeatures | None]:
        """`node` without a Python frame per call (the verbs look up thousands per request)."""
        return self._nodes.get

    @property
    def shape_lookup(self) -> Callable[[str], NodeShape | None]:
        """Node name -> its current shape, one C-level call per node (the engine groups by it)."""
        return self._shape_by_name.get

    def nodes(self) -> Iterator[NodeFeatures]:
        return iter(self._nodes.values())

    def cached_version(self, name: str, resource_version: str) -> NodeFeatures | None:
        """The cached features of this exact version of a node, if the cache has it."""
        cached = self._nodes.get(name)
        if cached is not None and resource_version and cached.resource_version == resource_version:
            return cached
        return None

    def features_from(self, node: Node) -> NodeFeatures:
        """Features for a Node object sent in a request (nodeCacheCapable: false).

        The cached features serve when they were built from the same resourceVersion;
        otherwise the request's object wins and our cached pods are charged to it.
        """
        cached = self._nodes.get(node.metadata.name)
        if cached is not None and cached.resource_version == node.metadata.resourceVersion:
            return cached
        features = self._with_cpu_pods(node_features(node, self._policy))
        for record in self.pods_on(node.metadata.name):
            _take(features, record, self._devices_for(features, record), +1)
            _add(features.held, record.workload, record.demand.total_milli)
        features.shape = self._shapes.shape_of(features, self._policy)
        return features

    def pod(self, uid: str) -> PodRecord | None:
        return self._pods.get(uid)

    def pods(self) -> Iterator[PodRecord]:
        return iter(self._pods.values())

    def pods_on(self, node: str) -> list[PodRecord]:
        return [self._pods[uid] for uid in self._pods_on.get(node, ())]

    def domain(self, key: str, value: str) -> DomainUsage:
        return self._domains.get(key, {}).get(value, _EMPTY_DOMAIN)

    def replicas_of(self, owner: str) -> Mapping[str, int]:
        """Node -> how many GPU pods of this controller run (or are assumed) there, for
        controllers of workload classes that spread."""
        return self._replicas.get(owner, _NO_REPLICAS)

    def class_usage(self, name: ClassName) -> ClassUsage:
        return self._classes.get(name) or ClassUsage()

    def demand_mix(self) -> DemandMix:
        """The (workload class, GPU demand, CPU request) shapes of the cluster's GPU pods
        (bound and pending), most common first, with their share of pods: the workload
        that fragmentation-aware packing keeps room for (`TypicalPods`)."""
        mix, retaken = self._typical_pods.mix()
        if retaken:
            self._aggregates_changed()
        return mix

    @property
    def shape_generation(self) -> int:
        """Changes whenever a node's shape may have: equal generations, equal shapes."""
        return self._shape_log.generation

    def shape_changes_since(self, generation: int) -> Sequence[str] | None:
        """The nodes whose shape changed after `generation` (a name may repeat), or None
        when that is no longer known (too long ago, or a change to every node)."""
        return self._shape_log.since(generation)

    def rule_memo(self, key: Hashable) -> dict[Hashable, object]:
        """A scratch dict for the rules engine, emptied whenever something a rule reads
        beyond a node's shape changes: the class usage headroom rules read, the usage of
        domains shared by several nodes, in-flight holds, the policy. Keyed by node shape,
        it lets equal pods (replicas, jobs, a trace's repeats) reuse verdicts across calls.
        """
        # The demand mix is retaken lazily; settle it before a request starts, so that all
        # of one request's scores read the same mix.
        self.demand_mix()
        return self._memos.of(key)

    def _aggregates_changed(self, features: NodeFeatures | None = None) -> None:
        """A cluster-wide fact rules read changed (None: not tied to one node's domains)."""
        if not self._memos:
            return
        if features is None or self._policy.headroom or _in_shared_domain(features):
            self._memos.clear()

    # ---- pods between filter and bind (extender/state/provisional.py) --------------------

    def note_pending(self, pod: Pod) -> None:
        """Remember a pod seen in a filter call, so a bind can charge it before the watch.

        Until the watch reports it too, it is only noted: forgotten when its stage runs
        out, and at most MAX_NOTED are kept, the oldest forgotten first.
        """
        uid = pod.metadata.uid
        if uid and uid not in self._pods and not pod.spec.nodeName:
            self.upsert_pod(pod)
            if uid in self._pods:
                self._provisional.enter(uid, "noted", unwatched=True)
                while self._provisional.unwatched > MAX_NOTED:
                    oldest = self._provisional.oldest_unwatched()
                    if oldest is None:
                        break
                    self.delete_pod(oldest)

    def hold_in_flight(self, uid: str, classes: frozenset[ClassName], milli: int) -> None:
        """Hold a pod's GPUs against classes it may land in, until it is bound.

        The scheduler binds asynchronously: the next pod's filter can come before this
        pod's bind (protocol pitfall P7). Its own count of GPUs covers nodes, but not a
        class-wide reserve, which only we know; so the reserve counts pods in flight.
        """
        self.release_in_flight(uid)
        record = self._provisional.get(uid)
        if not classes or milli <= 0 or not uid or (record and record.stage == "assumed"):
            return  # an assumed pod is charged to its node already
        record = self._provisional.enter(uid, "held")
        record.holds, record.milli = classes, milli
        self._aggregates_changed()
        for name in classes:
            self._classes.setdefault(name, ClassUsage()).in_flight += milli

    def release_in_flight(self, uid: str) -> None:
        """End a pod's hold (its bind came, or it went elsewhere): noted again if only a
        filter told us of it."""
        record = self._provisional.get(uid)
        if record is None or not record.holds:
            return
        self._release(record)
        if record.stage == "held":
            self._back_to_noted(uid, record.unwatched)

    def in_flight_of(self, uid: str, name: ClassName) -> int:
        """Milli-GPUs a pod itself holds in flight against a class (0 if none)."""
        record = self._provisional.get(uid)
        return record.milli if record is not None and name in record.holds else 0

    def assume(self, uid: str, node: str, pod: Pod | None = None) -> PodRecord | None:
        """Charge a pod to `node` now, until the watch confirms the binding or the TTL ends.

        A GPU pod must have been noted (by a filter call); `pod`, when it asks for no GPUs,
        is charged as the CPU it requests, which the watch's event for it charges the same
        and its deletion or a relist ends.
        """
        self.release_in_flight(uid)  # now charged to its node instead
        record = self._pods.get(uid)
        if record is None:
            if pod is not None and gpu_demand(pod, self._policy)[0].gpus == 0:
                self._charge_cpu_pod(uid, node, cpu_request(pod))
            return None
        if record.node == node and not self.is_assumed(uid):
            return record  # the watch already confirmed it
        self._detach(record)
        record.node = sys.intern(node)
        self._provisional.enter(uid, "assumed")
        self._attach(record)
        return record

    def is_assumed(self, uid: str) -> bool:
        """Whether only our bind says where the pod runs (the watch has not confirmed it)."""
        record = self._provisional.get(uid)
        return record is not None and record.stage == "assumed"

    def forget_assumed(self, uid: str) -> None:
        """Undo an assumption whose binding failed: the pod is pending again."""
        self._charge_cpu_pod(uid, "", 0)
        record = self._pods.get(uid)
        provisional = self._provisional.get(uid)
        if record is None or provisional is None or provisional.stage != "assumed":
            return
        self._detach(record)
        record.node = ""
        self._back_to_noted(uid, provisional.unwatched)

    def expire(self) -> Expired:
        """Undo every stage that ran out (extender/state/provisional.py)."""
        expired = Expired()
        for uid in self._provisional.due():
            provisional = self._provisional.get(uid)
            if provisional is None:  # ended while undoing an earlier one
                continue
            stage, unwatched = provisional.stage, provisional.unwatched
            if stage == "assumed":
                record = self._pods.get(uid)
                if record is not None:
                    expired.assumed.append(record)
                self.forget_assumed(uid)
            elif stage == "held":
                expired.held += 1
            else:
                expired.noted += 1
            if unwatched:
                self.delete_pod(uid)  # a pod only a filter told of goes with its stage
            else:
                self._end_provisional(uid)
        return expired

    def _back_to_noted(self, uid: str, unwatched: bool) -> None:
        if unwatched:
            self._provisional.enter(uid, "noted", unwatched=True)
        else:
            self._provisional.end(uid)

    def _release(self, record: Provisional) -> None:
        if not record.holds:
            return
        self._aggregates_changed()
        for name in record.holds:
            usage = self._classes.get(name)
            if usage is not None:
                usage.in_flight -= record.milli
        record.holds, record.milli = NO_CLASSES, 0

    def _end_provisional(self, uid: str) -> None:
        record = self._provisional.end(uid)
        if record is not None:
            self._release(record)

    def counts(self) -> dict[str, int]:
        bound = sum(len(uids) for uids in self._pods_on.values())
        return {
            "nodes": len(self._nodes),
            "pods": len(self._pods),
            "pods_bound": bound,
            "pods_pending": len(self._pods) - bound,
            "pods_assumed": self._provisional.count("assumed"),
        }

    # ---- nodes ---------------------------------------------------------------------------

    def upsert_node(self, node: Node) -> None:
        name = node.metadata.name
        if not name:
            return
        known = self._nodes.get(name)
        version = node.metadata.resourceVersion
        unchanged = known is not None and version and known.resource_version == version
        if unchanged and self._node_facts_current:
            return  # a relist returns every node; most have not changed
        self._set_node(node_features(node, self._policy))

    def _set_node(self, features: NodeFeatures) -> None:
        name = features.name
        pods = self.pods_on(name)
        if name in self._nodes:
            for record in pods:
                self._detach(record)
            self._remove_node_totals(self._nodes[name])
        self._nodes[name] = self._with_cpu_pods(features)
        self._add_node_totals(features)
        for record in pods:
            self._attach(record)
        self._reshape(features)

    def delete_node(self, name: str) -> None:
        features = self._nodes.get(name)
        if features is None:
            return
        pods = self.pods_on(name)
        for record in pods:
            self._detach(record)
        self._remove_node_totals(features)
        del self._nodes[name]
        del self._shape_by_name[name]
        self._shape_changed(name)
        # Its pods stay bound to the name (as for a pod seen before its node), so they are
        # charged again if the node comes back before their own delete events.
        for record in pods:
            self._attach(record)

    def replace_nodes(self, nodes: Iterable[Node]) -> None:
        """A full list (first sync or relist after 410): the cache then holds exactly these."""
        listed = set()
        for node in nodes:
            self.upsert_node(node)
            listed.add(node.metadata.name)
        self.retain_nodes(listed)

    def retain_nodes(self, listed: set[str]) -> None:
        """End of a list whose nodes were upserted: forget the rest; the nodes are synced."""
        for name in [n for n in self._nodes if n not in listed]:
            self.delete_node(name)
        self._node_facts_current = True
        self.nodes_synced = True

    # ---- pods ----------------------------------------------------------------------------

    def upsert_pod(self, pod: Pod) -> None:
        """Account for a pod's GPUs on its node; finished or GPU-less pods are forgotten."""
        uid = pod.metadata.uid
        if not uid:
            return
        self._provisional.watched(uid)  # the watch (or a list) knows it: it is real
        demand, _problems = gpu_demand(pod, self._policy)
        cpu = cpu_request(pod)
        if demand.gpus == 0 or pod.status.phase in FINISHED_PHASES:
            self.delete_pod(uid)
            if demand.gpus == 0 and pod.status.phase not in FINISHED_PHASES:
                self._charge_cpu_pod(uid, pod.spec.nodeName, cpu)
            return
        if uid in self._cpu_pods:  # assumed at bind as a pod without GPUs: it has some
            self._charge_cpu_pod(uid, "", 0)
        inputs = self._interned(workload_inputs(pod, self._policy))
        workload = workload_from(inputs, self._policy)[0] or self._policy.default_workload
        demand = self._interned(demand)
        # One int object per distinct request (ints above 256 are not shared by Python).
        cpu = self._cpu_values.setdefault(cpu, cpu)
        if len(self._cpu_values) > _MAX_CPU_VALUES:
            self._cpu_values.clear()
        pinned = _pinned_devices(pod, self._policy, demand)
        record = self._pods.get(uid)
        node = pod.spec.nodeName
        assumed = self.is_assumed(uid)
        if node:  # bound: confirmed, and charged to its node from here on
            self._end_provisional(uid)
        if record is not None:
            if not node and assumed:
                node = record.node  # our bind is ahead of the watch: keep the assumption
            unchanged = (record.node, record.workload, record.demand, record.pinned) == (
                node,
                workload,
                demand,
                pinned,
            ) and (record.cpu_milli, record.inputs.controller) == (cpu, inputs.controller)
            if unchanged:
                record.inputs = inputs
                return
            self._detach(record)
        previous = record
        record = PodRecord(
            uid=uid,
            namespace=sys.intern(pod.metadata.namespace),
            name=pod.metadata.name,
            node=sys.intern(node),
            workload=workload,
            demand=demand,
            inputs=inputs,
            pinned=pinned,
            cpu_milli=cpu,
        )
        if previous is None or _typical_key(previous) != _typical_key(record):
            # Only a change of shape changes the mix: a pod noted by a filter and then
            # bound counts once, whichever way the binding was learnt.
            if previous is not None:
                self._typical_pods.count(_typical_key(previous), -1)
            self._typical_pods.count(_typical_key(record), +1)
        self._pods[uid] = record
        self._attach(record)

    def delete_pod(self, uid: str) -> None:
        self._end_provisional(uid)
        self._charge_cpu_pod(uid, "", 0)
        record = self._pods.pop(uid, None)
        if record is not None:
            self._typical_pods.count(_typical_key(record), -1)
            self._detach(record)

    def replace_pods(self, pods: Iterable[Pod]) -> None:
        listed = set()
        for pod in pods:
            self.upsert_pod(pod)
            listed.add(pod.metadata.uid)
        self.retain_pods(listed)

    def retain_pods(self, listed: set[str]) -> None:
        """End of a list whose pods were upserted: forget the rest; the pods are synced."""
        for uid in [u for u in (*self._pods, *self._cpu_pods) if u not in listed]:
            self.delete_pod(uid)
        self.pods_synced = True

    def _charge_cpu_pod(self, uid: str, node: str, cpu: int) -> None:
        """Account a pod without GPUs as the CPU it takes on its node (none: forget it)."""
        old = self._cpu_pods.pop(uid, None)
        if old is not None:
            self._take_cpu(old[0], -old[1])
        if node and cpu > 0:
            self._cpu_pods[uid] = (sys.intern(node), cpu)
            self._take_cpu(node, cpu)

    def _take_cpu(self, node: str, cpu: int) -> None:
        left = self._cpu_on.get(node, 0) + cpu
        if left:
            self._cpu_on[node] = left
        else:
            self._cpu_on.pop(node, None)
        features = self._nodes.get(node)
        if features is not None:
            features.cpu_free -= cpu
            self._reshape(features)

    # ---- policy --------------------------------------------------------------------------

    def set_policy(self, policy: Policy) -> frozenset[Kind]:
        """Recompute every feature under a new policy (class rules, keys, topology keys).

        Returns the kinds whose kept facts the new policy cannot be applied to (it reads
        other labels or resources): they are marked not synced and must be listed again.
        """
        previous, self._policy = self._policy, policy
        self._memos.clear()
        relist: set[Kind] = set()
        if policy.node_inputs != previous.node_inputs:
            relist.add("nodes")
        if policy.pod_inputs != previous.pod_inputs:
            relist.add("pods")
        facts = [features.facts for features in self._nodes.values()]
        records = list(self._pods.values())
        self._nodes.clear()
        self._shape_by_name.clear()
        self._shape_changed(None)
        self._pods_on.clear()
        self._replicas.clear()
        self._domains.clear()
        self._classes.clear()
        # Class names may have changed, and the usage they were counted in is gone; holds
        # are short-lived anyway.
        for uid, provisional in self._provisional.held():
            provisional.holds, provisional.milli = NO_CLASSES, 0
            if provisional.stage == "held":
                self._back_to_noted(uid, provisional.unwatched)
        for fact in facts:
            features = self._with_cpu_pods(features_of(fact, policy))
            self._nodes[fact.name] = features
            self._add_node_totals(features)
            self._reshape(features)
        for record in records:
            record.workload = workload_from(record.inputs, policy)[0] or policy.default_workload
            record.devices = ()
            self._attach(record)
        # The typical pods carry their workload class, which the new policy may change.
        self._typical_pods.recount([_typical_key(record) for record in records])
        if "nodes" in relist:
            self.nodes_synced = self._node_facts_current = False
        if "pods" in relist:
            self.pods_synced = False
        return frozenset(relist)

    # ---- accounting ----------------------------------------------------------------------

    def _attach(self, record: PodRecord) -> None:
        if not record.node:
            return
        self._pods_on.setdefault(record.node, {})[record.uid] = None
        if self._spreads(record):
            on = self._replicas.setdefault(record.inputs.controller, {})
            on[record.node] = on.get(record.node, 0) + 1
        features = self._nodes.get(record.node)
        if features is None:
            return  # charged when the node arrives
        free_before = features.free_milli
        devices = self._devices_for(features, record)
        # Few distinct tuples (subsets of a node's GPU indices): a plain table is bounded.
        record.devices = self._device_tuples.setdefault(devices, devices)
        _take(features, record, record.devices, +1)
        self._account(features, record, +1, features.free_milli - free_before)
        self._reshape(features)

    def _detach(self, record: PodRecord) -> None:
        if not record.node:
            return
        on_node = self._pods_on.get(record.node)
        if on_node is not None:
            on_node.pop(record.uid, None)
            if not on_node:
                del self._pods_on[record.node]
        if self._spreads(record):
            _count_down(self._replicas, record.inputs.controller, record.node)
        features = self._nodes.get(record.node)
        if features is None:
            return  # never charged: the node was not known
        # A pod on a node without GPUs holds no devices but was still counted in `held`.
        free_before = features.free_milli
        _take(features, record, record.devices, -1)
        record.devices = ()
        self._account(features, record, -1, features.free_milli - free_before)
        self._reshape(features)

    def _spreads(self, record: PodRecord) -> bool:
        """Whether `packing: spread` counts the pod among its controller's replicas."""
        return bool(record.inputs.controller) and (
            self._policy.workloads[record.workload].packing == "spread"
        )

    def _with_cpu_pods(self, features: NodeFeatures) -> NodeFeatures:
        """Fresh features of a node, less the CPU of its pods without GPUs."""
        features.cpu_free -= self._cpu_on.get(features.name, 0)
        return features

    def _devices_for(self, features: NodeFeatures, record: PodRecord) -> tuple[int, ...]:
        """The GPUs a bound pod holds: those our bind named on it while they have room;
        else as our filter would choose them (never one shared with a workload class it
        is kept apart from), else wherever it fits."""
        pinned, milli = record.pinned, record.demand.milli
        if pinned and all(i < len(features.free) and features.free[i] >= milli for i in pinned):
            return pinned
        apart = self._policy.apart.get(record.workload, frozenset())
        return place_anyway(features.free, record.demand, features.apart_devices(apart))

    def _reshape(self, features: NodeFeatures) -> None:
        shape = self._shapes.shape_of(features, self._policy)
        features.shape = self._shape_by_name[features.name] = shape
        self._shape_changed(features.name)

    def _shape_changed(self, name: str | None) -> None:
        self._shape_log.changed(name)

    def _account(
        self, features: NodeFeatures, record: PodRecord, sign: int, free_delta: int
    ) -> None:
        total = sign * record.demand.total_milli
        self._aggregates_changed(features)
        _add(features.held, record.workload, total)
        for key, value in features.domains.items():
            _add(self._domains[key][value].held, record.workload, total)
        if features.gpu_class.name is not None:
            self._classes[features.gpu_class.name].free += free_delta

    def _add_node_totals(self, features: NodeFeatures) -> None:
        self._aggregates_changed(features)
        for key, value in features.domains.items():
            domain = self._domains.setdefault(key, {}).setdefault(value, DomainUsage())
            domain.capacity += features.capacity_milli
            domain.nodes += 1
        if features.gpu_class.name is not None:
            usage = self._classes.setdefault(features.gpu_class.name, ClassUsage())
            usage.capacity += features.capacity_milli
            usage.free += features.free_milli
            usage.nodes += 1

    def _remove_node_totals(self, features: NodeFeatures) -> None:
        self._aggregates_changed(features)
        for key, value in features.domains.items():
            domains = self._domains[key]
            domain = domains[value]
            domain.capacity -= features.capacity_milli
            domain.nodes -= 1
            if domain.nodes == 0:  # not capacity: nodes without GPUs are members too
                del domains[value]
        if features.gpu_class.name is not None:
            usage = self._classes[features.gpu_class.name]
            usage.capacity -= features.capacity_milli
            usage.free -= features.free_milli
            usage.nodes -= 1
            if usage.nodes == 0 and usage.in_flight == 0:
                del self._classes[features.gpu_class.name]


MAX_NOTED = 1024
"""Pods only a filter call told us of, at most: the oldest is forgotten first. A scheduler
binds within seconds of its filter, so this many in flight means a caller filtering pods
no API server holds; without a bound, memory would grow with its rate times the TTL."""


def _typical_key(record: PodRecord) -> TypicalKey:
    return record.workload, (record.demand, record.cpu_milli)


def _pinned_devices(pod: Pod, policy: Policy, demand: GpuDemand) -> tuple[int, ...]:
    """GPU indices our bind named on a pod ("0" or "2,3"); () when absent or not one index
    per GPU the pod asks for (then the cache chooses, as for any pod)."""
    raw = (pod.metadata.annotations or {}).get(policy.keys.pod_gpu_devices)
    if not raw or demand.gpus == 0:
        return ()
    try:
        indices = tuple(sorted({int(part) for part in raw.split(",")}))
    except ValueError:
        return ()
    if len(indices) != demand.gpus or indices[0] < 0 or indices[-1] >= MAX_GPUS_PER_NODE:
        return ()
    return indices


def devices_annotation(record: PodRecord, policy: Policy) -> dict[str, str]:
    """What our bind writes on a GPU-sharing pod: the GPU the cache charged it to, for the
    device plugin (and for the cache after a restart); nothing for whole-GPU pods."""
    if not record.devices or record.demand.milli >= WHOLE_GPU:
        return {}
    return {policy.keys.pod_gpu_devices: ",".join(map(str, record.devices))}


def _take(features: NodeFeatures, record: PodRecord, devices: tuple[int, ...], sign: int) -> None:
    """Charge (+1) or give back (-1) a pod's GPU shares, their holders and its CPU."""
    charge(features.free, devices, record.demand.milli, sign)
    hold(features.holders, devices, record.workload, record.demand.milli, sign)
    features.cpu_free -= sign * record.cpu_milli


def _in_shared_domain(features: NodeFeatures) -> bool:
    """Whether the node belongs to a topology domain other nodes share (zone, rack...).

    Its own hostname domain, or a domain it alone makes up because it lacks the label, is
    described by the node's own usage, which its shape holds already.
    """
    return any(k != HOSTNAME_KEY and k in features.labels for k in features.domains)


def _count_down(replicas: dict[str, dict[str, int]], owner: str, node: str) -> None:
    on = replicas.get(owner)
    if on is None or node not in on:
        return
    on[node] -= 1
    if on[node] <= 0:
        del on[node]
        if not on:
            del replicas[owner]


def _add(counts: dict[WorkloadName, int], workload: WorkloadName, amount: int) -> None:
    value = counts.get(workload, 0) + amount
    if value:
        counts[workload] = value
    else:
        counts.pop(workload, None)
