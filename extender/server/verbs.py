"""What filter, prioritize and bind do, apart from HTTP: decode the request, read and
change the state (the cache, the pending placements), count, record, encode the answer.

- filter notes the pod in the cache (it counts among the typical pods of fragmentation
  until it is bound or forgotten) and in the pending placements, and holds the headroom
  of the reserved classes it may land in until its bind arrives; before it says that no
  node fits a GPU pod, it makes sure its view of the few nodes asked about is the API
  server's (`Verbs._catch_up`);
- prioritize keeps its scores in the pending placements, for bind's decision record;
- bind takes the pod filter saw (or reads it), re-checks it against the rules, charges it
  to the node before the API call and writes the Binding with the decision record.

server/app.py routes HTTP requests here and turns what comes back into responses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

import msgspec

from extender.errors import ExtenderError, KubeError, NotReady
from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent, pod_intent
from extender.policy.store import PolicyStore
from extender.rules import premium_headroom
from extender.rules.engine import MAX_SCORE, ShapeOf, filter_nodes, score_nodes
from extender.rules.notes import NOT_SCORED, NOT_SEEN, Ranking, decision_record
from extender.server.events import record_scored, record_unschedulable
from extender.server.metrics import Metrics
from extender.state.cache import ClusterCache, devices_annotation
from extender.state.events import EventRecorder
from extender.state.features import NodeFeatures
from extender.state.pending import Pending, PendingPlacements
from extender.wire import (
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
    Node,
    NodeList,
    Pod,
    decode_extender_args,
    decode_node,
    decode_node_identity,
    encode_binding_result,
    encode_filter_result,
    encode_priorities,
)

log = logging.getLogger(__name__)


class Binder(Protocol):
    """Creates the pods/binding of a pod to a node; raises KubeError on failure."""

    async def __call__(
        self, *, namespace: str, name: str, uid: str, node: str, annotations: dict[str, str]
    ) -> None: ...


class PodReader(Protocol):
    """Reads a pod as the API server has it now; raises KubeError on failure (404 too)."""

    async def __call__(self, *, namespace: str, name: str) -> Pod: ...


class NodeReader(Protocol):
    """Reads a node as the API server has it now; raises KubeError on failure."""

    async def __call__(self, *, name: str) -> Node: ...


def require_ready(cache: ClusterCache) -> None:
    if not cache.ready:
        raise NotReady(
            f"cluster cache not synced yet (nodes {'synced' if cache.nodes_synced else 'listing'}, "
            f"pods {'synced' if cache.pods_synced else 'listing'})"
        )


class Resolved:
    """One filter/prioritize request, resolved against the current policy and cache."""

    def __init__(self, body: bytes, store: PolicyStore, cache: ClusterCache) -> None:
        self.cache = cache
        self.policy = store.current
        args = decode_extender_args(body)
        assert args.Pod is not None  # checked by decode_extender_args
        self.pod = args.Pod
        self.intent: PodIntent = pod_intent(args.Pod, self.policy)
        self.raw_nodes: dict[str, msgspec.Raw] = {}
        if args.NodeNames is not None:
            self.full_nodes = False
            self.names = args.NodeNames
            self.lookup: Callable[[str], NodeFeatures | None] = self.cache.node_lookup
            self.shape_of: ShapeOf | None = self.cache.shape_lookup
        else:
            assert args.Nodes is not None
            assert args.Nodes.items is not None
            self.full_nodes = True
            features: dict[str, NodeFeatures] = {}
            for i, raw in enumerate(args.Nodes.items):
                name, version = decode_node_identity(raw, i)
                if name in features:
                    continue
                self.raw_nodes[name] = raw
                # The scheduler's informer and our watch usually hold the same version: then
                # the cached features serve and the 5-20 KB object is never fully decoded.
                cached = self.cache.cached_version(name, version)
                features[name] = cached or self.cache.features_from(decode_node(raw, i))
            self.names = list(self.raw_nodes)
            self.lookup = features.get
            self.shape_of = None


_ALREADY_THERE = "already bound to that node"
# Turns of the event loop a filter that admits no node yields first: enough for a watch
# event already in the socket to be read, decoded and applied.
_SETTLE_TURNS = 8
# After those turns, a filter that admits no node of at most this many reads them from the
# API server (within this time, at most this many reads a second across all filters).
_CATCH_UP_NODES = 16
_CATCH_UP_SECONDS = 1.0
_CATCH_UP_READS_PER_SECOND = 32.0


class Verbs:
    """The three verbs over one server's state."""

    def __init__(
        self,
        store: PolicyStore,
        cache: ClusterCache,
        metrics: Metrics,
        *,
        binder: Binder,
        pod_reader: PodReader,
        scheduler_names: frozenset[str],
        pending: PendingPlacements,
        node_reader: NodeReader | None = None,
        events: EventRecorder | None = None,
        scored_events: bool = False,
    ) -> None:
        self.store, self.cache, self.metrics = store, cache, metrics
        self.binder, self.pod_reader = binder, pod_reader
        self.node_reader = node_reader
        self._read_budget = ReadBudget(_CATCH_UP_READS_PER_SECOND)
        self.scheduler_names = scheduler_names
        self.pending = pending
        self.events, self.scored_events = events, scored_events

    async def filter(self, body: bytes) -> bytes:
        req = Resolved(body, self.store, self.cache)
        cache = self.cache
        try:
            require_ready(cache)
        except NotReady as exc:
            # The protocol's Error field: the scheduler retries (or skips us if ignorable).
            return encode_filter_result(ExtenderFilterResult(None, None, {}, {}, str(exc)))
        cache.note_pending(req.pod)
        self.pending.saw(req.pod)
        result = filter_nodes(req.intent, req.names, req.lookup, cache, req.policy, req.shape_of)
        if not result.passed_count and req.intent.wants_gpus:
            # kube-scheduler retries a pod we turned away when a node changes, often before
            # our watch has applied that change; a pod turned away again waits for the
            # next change in the cluster (up to 5 minutes in a quiet one). So before
            # saying that no node fits, let the loop apply watch events already received.
            generation = cache.shape_generation
            for _ in range(_SETTLE_TURNS):
                await asyncio.sleep(0)
            if cache.shape_generation == generation and not req.full_nodes:
                await self._catch_up(req.names)
            if cache.shape_generation != generation:
                result = filter_nodes(
                    req.intent, req.names, req.lookup, cache, req.policy, req.shape_of
                )
        if req.intent.demand.gpus and premium_headroom.applies(req.intent, [], req.policy):
            # Until its bind arrives, the pod counts against the reserved classes it may
            # land in.
            classes = premium_headroom.reserved_classes(
                req.intent, result.passed_groups, req.policy
            )
            cache.hold_in_flight(req.intent.uid, classes, req.intent.demand.total_milli)
        decisions = self.metrics.decisions
        passed = result.passed_count
        if passed:
            decisions.labels("passed", "").inc(passed)
        reject_counts = result.reject_counts
        # One increment per (outcome, rule), not per node: thousands of rejects per request.
        for reject, count in reject_counts.items():
            outcome = "failed" if reject.resolvable else "unresolvable"
            decisions.labels(outcome, reject.rule).inc(count)
        if self.events is not None and not passed:
            record_unschedulable(self.events, req.intent, reject_counts)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "filter",
                extra={
                    "pod": req.intent.key,
                    "passed": passed,
                    "rejected": result.rejects,
                },
            )
        if not req.full_nodes:
            return result.encoded()
        answer = ExtenderFilterResult(
            NodeNames=None,
            Nodes=NodeList(items=[req.raw_nodes[n] for n in result.passed]),
            FailedNodes=result.failed,
            FailedAndUnresolvableNodes=result.unresolvable,
        )
        return encode_filter_result(answer)

    async def _catch_up(self, names: list[str]) -> None:
        """Reads these nodes from the API server and applies the ones our watch has not
        brought yet: the watch may lag by more than a few loop turns (a busy API server, a
        slow decode), and a label just added must not be answered with "no node fits".
        Bounded: only a few nodes, only within the read budget, only for so long; a failed
        read leaves the watch to catch up as before."""
        reader = self.node_reader
        if reader is None or len(names) > _CATCH_UP_NODES:
            return
        if not self._read_budget.take(len(names)):
            return
        # One at a time, on one pooled connection: reads made at once each open a TLS
        # connection of their own, and under `make fuzz` the connections opened and
        # closed grew RSS (docs/reliability.md).
        fresh: list[Node | ExtenderError] = []
        try:
            async with asyncio.timeout(_CATCH_UP_SECONDS):
                for name in names:
                    try:
                        fresh.append(await reader(name=name))
                    except ExtenderError as exc:  # KubeError, or WireError: not a Node
                        fresh.append(exc)
        except TimeoutError:
            log.debug("filter: reading rejected nodes took too long")
            return
        for node in fresh:
            if isinstance(node, KubeError) and node.status == 403:
                # An older ClusterRole without `get nodes`: stop asking.
                self.node_reader = None
                log.warning(
                    "filter: may not read nodes (RBAC: get nodes); answering from the watch "
                    "alone from now on",
                    extra={"error": str(node)},
                )
            elif isinstance(node, ExtenderError):  # gone (404), refused, not a Node
                log.debug("filter: reading a rejected node failed", extra={"error": str(node)})
            else:
                known = self.cache.node(node.metadata.name)
                if known is None or known.resource_version != node.metadata.resourceVersion:
                    self.cache.upsert_node(node)

    def prioritize(self, body: bytes) -> bytes:
        req = Resolved(body, self.store, self.cache)
        require_ready(req.cache)
        names, scores = score_nodes(
            req.intent, req.names, req.lookup, req.cache, req.policy, req.shape_of
        )
        self.pending.scored(req.pod, names, scores, req.policy.digest)
        if self.events is not None and self.scored_events:
            record_scored(self.events, req.intent, names, scores, req.lookup, req.policy)
        if log.isEnabledFor(logging.DEBUG):
            scored = dict(zip(names, scores, strict=True))
            log.debug("prioritize", extra={"pod": req.intent.key, "scores": scored})
        return encode_priorities(names, scores)

    def refused(self, args: ExtenderBindingArgs) -> None:
        """A bind the transport may not ask for (server/app.py says why to the caller)."""
        self.metrics.binds.labels("refused").inc()
        log.warning("bind refused", extra={"pod": f"{args.PodNamespace}/{args.PodName}"})

    async def bind(self, args: ExtenderBindingArgs) -> bytes:
        cache = self.cache
        what = f"bind {args.PodNamespace}/{args.PodName} to {args.Node}"
        # The pod as our filter got it: its spec cannot have changed since, and the Binding
        # carries its uid, so the API server refuses it if the pod was replaced. Else, read it.
        placement = self.pending.take(args.PodUID)
        if placement is not None and _same_pod(placement.pod, args):
            pod = placement.pod
        else:
            placement = None
            try:
                pod = await self.pod_reader(namespace=args.PodNamespace, name=args.PodName)
            except KubeError as exc:
                return self._bind_answer(args, "error", f"{what}: {exc}")
        policy = self.store.current
        intent = pod_intent(pod, policy)
        refusal = self._pod_refusal(args, pod, intent, policy)
        if refusal == _ALREADY_THERE:  # a retried bind that already happened
            return self._bind_answer(args, "bound")
        if refusal is not None:
            return self._bind_answer(args, "refused", f"{what}: refused: {refusal}")
        # Charge the pod before the API call: the next pod's filter may run while we wait.
        assumed = cache.assume(args.PodUID, args.Node, pod)
        # The GPU a sharing pod was charged to, and our decision record, go on the pod with
        # the binding (no extra call).
        annotations = devices_annotation(assumed, policy) if assumed else {}
        annotations.update(_decision(intent, args.Node, placement, cache, policy))
        try:
            await self.binder(
                namespace=args.PodNamespace,
                name=args.PodName,
                uid=args.PodUID,
                node=args.Node,
                annotations=annotations,
            )
        except KubeError as exc:
            if assumed is not None:
                cache.forget_assumed(args.PodUID)
            return self._bind_answer(args, "error", str(exc))
        except BaseException:
            # Any other failure (a 500, a cancelled request) must not leave the node charged.
            if assumed is not None:
                cache.forget_assumed(args.PodUID)
            raise
        return self._bind_answer(args, "bound")

    def _bind_answer(self, args: ExtenderBindingArgs, outcome: str, error: str = "") -> bytes:
        """The protocol's answer: an empty Error, or the reason the scheduler logs."""
        self.metrics.binds.labels(outcome).inc()
        if error:
            log.warning(
                "bind failed", extra={"pod": f"{args.PodNamespace}/{args.PodName}", "error": error}
            )
        return encode_binding_result(ExtenderBindingResult(Error=error))

    def _pod_refusal(
        self, args: ExtenderBindingArgs, pod: Pod, intent: PodIntent, policy: Policy
    ) -> str | None:
        """Why the pod may not be bound to the node now (None: it may)."""
        served = self.scheduler_names
        if pod.metadata.uid != args.PodUID:
            return f"the pod is now uid {pod.metadata.uid!r}, not {args.PodUID!r} (it was replaced)"
        scheduler = pod.spec.schedulerName or "default-scheduler"
        if scheduler not in served:
            return (
                f"the pod's schedulerName is {scheduler!r}; this extender binds only for "
                f"{', '.join(sorted(served))} (--scheduler-name)"
            )
        if pod.spec.nodeName:
            if pod.spec.nodeName == args.Node:
                return _ALREADY_THERE
            return f"the pod is already bound to {pod.spec.nodeName}"
        cache = self.cache
        result = filter_nodes(
            intent, [args.Node], cache.node_lookup, cache, policy, cache.shape_lookup
        )
        if result.passed:
            return None
        reason = result.failed.get(args.Node) or result.unresolvable.get(args.Node)
        return f"our filter rejects node {args.Node} for this pod now: {reason}"


def _same_pod(pod: Pod, args: ExtenderBindingArgs) -> bool:
    meta = pod.metadata
    return (meta.uid, meta.name, meta.namespace or "default") == (
        args.PodUID,
        args.PodName,
        args.PodNamespace or "default",
    )


def _decision(
    intent: PodIntent, node: str, placement: Pending | None, cache: ClusterCache, policy: Policy
) -> dict[str, str]:
    """The decision record for a GPU pod (rules.notes.decision_record); {} for others."""
    if not intent.demand.gpus:
        return {}
    scored = placement.scored if placement is not None else None
    if scored is None:
        why = NOT_SEEN if placement is None else NOT_SCORED
        return decision_record(intent, cache.node(node), why, policy, MAX_SCORE)
    best = scored.best
    ranking = Ranking(scored.of(node), best, scored.count(best), scored.candidates)
    # The policy that scored it (a reload may have come between prioritize and bind).
    return decision_record(
        intent, cache.node(node), ranking, policy, MAX_SCORE, scored.policy_digest
    )


class ReadBudget:
    """A token bucket: at most `rate` takes a second, in bursts of at most `rate`."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.clock = rate, clock
        self.tokens = rate
        self.at = clock()

    def take(self, count: int) -> bool:
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if count > self.tokens:
            return False
        self.tokens -= count
        return True


async def no_binder(**_: object) -> None:
    raise KubeError("bind is not enabled: the extender runs without API credentials to bind")


async def no_pod_reader(**_: str) -> Pod:
    raise KubeError("bind is not enabled: the extender runs without API credentials to bind")
