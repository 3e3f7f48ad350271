"""The aiohttp application: extender verbs, probes, metrics and read-only debug views."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import orjson
from aiohttp import web

from extender.doctor.cluster import ClusterListing, report_of
from extender.doctor.findings import report_table
from extender.errors import (
    ExtenderError,
    KubeError,
    NotReady,
    OverBudget,
    Overloaded,
    SlowClient,
)
from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent, pod_intent
from extender.policy.store import PolicyStore
from extender.rules import premium_headroom
from extender.rules.engine import MAX_SCORE, ShapeOf, explain_nodes, filter_nodes, score_nodes
from extender.rules.notes import NOT_SCORED, NOT_SEEN, Ranking, decision_record
from extender.server.admission import ADMISSION, Admission, admission_routes
from extender.server.events import record_scored, record_unschedulable
from extender.server.explain import explanation_json
from extender.server.metrics import Metrics
from extender.state.cache import ClusterCache, devices_annotation
from extender.state.events import EventRecorder
from extender.state.features import NodeFeatures
from extender.state.pending import Pending, PendingPlacements
from extender.wire import (
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
    NodeList,
    Pod,
    decode_binding_args,
    decode_extender_args,
    decode_node,
    decode_node_identity,
    decode_pod_manifest,
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


class DoctorSource(Protocol):
    """Lists the cluster once for the doctor (nodes, pods, node templates)."""

    async def __call__(self) -> ClusterListing: ...


class PodReader(Protocol):
    """Reads a pod as the API server has it now; raises KubeError on failure (404 too)."""

    async def __call__(self, *, namespace: str, name: str) -> Pod: ...


# Full Node objects are 5-20 KB each; 128 MiB covers 5,000 nodes of up to ~25 KB in
# nodeCacheCapable: false.
DEFAULT_MAX_BODY = 128 << 20
# Below kube-scheduler's default extender httpTimeout (5 s): we answer, with a reason,
# before the scheduler gives up on us.
DEFAULT_BUDGET_SECONDS = 4.5
# The scheduler calls filter and prioritize one pod at a time and binds concurrently;
# more than this in flight means something other than one scheduler is calling.
DEFAULT_MAX_CONCURRENT = 64
# The profile our second-scheduler manifests run; the bind verb places only pods of the
# schedulers named on the command line (--scheduler-name), this one by default.
DEFAULT_SCHEDULER_NAMES = frozenset({"gpu-scheduler"})

STORE = web.AppKey("store", PolicyStore)
CACHE = web.AppKey("cache", ClusterCache)
METRICS = web.AppKey("metrics", Metrics)
BINDER = web.AppKey[Binder]("binder")
POD_READER = web.AppKey[PodReader]("pod_reader")
DOCTOR_SOURCE = web.AppKey[DoctorSource]("doctor_source")
DOCTOR_RUNNING = web.AppKey("doctor_running", asyncio.Lock)
DOCTOR_WORKER = web.AppKey[Executor | None]("doctor_worker")
SCHEDULER_NAMES = web.AppKey("scheduler_names", frozenset)
EVENTS = web.AppKey[EventRecorder | None]("events")
SCORED_EVENTS = web.AppKey("scored_events", bool)
PENDING = web.AppKey("pending", PendingPlacements)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may cost the server."""

    max_body_bytes: int = DEFAULT_MAX_BODY
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    """Requests to the verbs and /debug/explain in flight at once; the rest wait for a slot."""
    budget_seconds: float = DEFAULT_BUDGET_SECONDS
    """From the first byte of the handler to the answer: waiting for a slot, reading the
    body (a client that trickles it is cut off), deciding, calling the API to bind."""


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def _error(status: int, error: str, message: str) -> web.Response:
    return _json(orjson.dumps({"error": error, "message": message}), status)


@web.middleware
async def errors_and_metrics(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Time every request, and turn every failure into a JSON answer (never a traceback)."""
    verb = request.match_info.route.name or "unmatched"
    metrics = request.app[METRICS]
    started = time.perf_counter()
    try:
        response = await handler(request)
    except ExtenderError as exc:
        response = _json(orjson.dumps(exc.as_dict()), exc.http_status)
    except web.HTTPException as exc:
        # 404, 405 and 413 (body over the limit) from aiohttp itself.
        response = _error(exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason)
        if "Allow" in exc.headers:  # a 405 must say which methods are allowed
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("unexpected error", extra={"verb": verb})
        response = _error(500, "InternalError", "internal error; see the extender's log")
    metrics.requests.labels(verb, str(response.status)).inc()
    metrics.latency.labels(verb).observe(time.perf_counter() - started)
    return response


_LIMITED = frozenset({"filter", "prioritize", "bind", "debug_explain", "mutate"})
_PHASE = web.RequestKey("phase", str)


def limits_middleware(limits: Limits) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Bound the verbs' concurrency and time: an answer with a reason, never a hang."""
    slots = asyncio.Semaphore(limits.max_concurrent)

    @web.middleware
    async def bounded(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.match_info.route.name not in _LIMITED:
            return await handler(request)
        budget = limits.budget_seconds
        try:
            async with asyncio.timeout(budget):
                request[_PHASE] = "waiting for a free request slot"
                async with slots:
                    request[_PHASE] = "reading the request body"
                    return await handler(request)
        except TimeoutError:
            phase = request.get(_PHASE, "")
            message = f"no answer within the {budget:g} s request budget (still {phase})"
            if phase.startswith("waiting"):
                raise Overloaded(f"{message}: {limits.max_concurrent} requests in flight") from None
            if phase.startswith("reading"):
                raise SlowClient(message) from None
            raise OverBudget(message) from None

    return bounded


def _require_ready(cache: ClusterCache) -> None:
    if not cache.ready:
        raise NotReady(
            f"cluster cache not synced yet (nodes {'synced' if cache.nodes_synced else 'listing'}, "
            f"pods {'synced' if cache.pods_synced else 'listing'})"
        )


async def _read(request: web.Request) -> bytes:
    """The body; over the size limit aiohttp raises 413, which the middleware reports."""
    body = await request.read()
    request[_PHASE] = "deciding"
    return body


class _Request:
    """One filter/prioritize request, resolved against the current policy and cache."""

    def __init__(self, request: web.Request, body: bytes) -> None:
        self.cache = request.app[CACHE]
        self.policy = request.app[STORE].current
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


async def filter_handler(request: web.Request) -> web.Response:
    req = _Request(request, await _read(request))
    cache = request.app[CACHE]
    try:
        _require_ready(cache)
    except NotReady as exc:
        # The protocol's Error field: the scheduler retries (or skips us if ignorable).
        return _json(encode_filter_result(ExtenderFilterResult(None, None, {}, {}, str(exc))))
    cache.note_pending(req.pod)
    request.app[PENDING].saw(req.pod)
    result = filter_nodes(req.intent, req.names, req.lookup, cache, req.policy, req.shape_of)
    if req.intent.demand.gpus and premium_headroom.applies(req.intent, [], req.policy):
        # Until its bind arrives, the pod counts against the reserved classes it may land in.
        classes = premium_headroom.reserved_classes(req.intent, result.passed_groups, req.policy)
        cache.hold_in_flight(req.intent.uid, classes, req.intent.demand.total_milli)
    decisions = request.app[METRICS].decisions
    if result.passed:
        decisions.labels("passed", "").inc(len(result.passed))
    reject_counts = result.reject_counts
    # One increment per (outcome, rule), not per node: thousands of rejects per request.
    for reject, count in reject_counts.items():
        decisions.labels("failed" if reject.resolvable else "unresolvable", reject.rule).inc(count)
    recorder = request.app[EVENTS]
    if recorder is not None and not result.passed:
        record_unschedulable(recorder, req.intent, reject_counts)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "filter",
            extra={"pod": req.intent.key, "passed": len(result.passed), "rejected": result.rejects},
        )
    if req.full_nodes:
        answer = ExtenderFilterResult(
            NodeNames=None,
            Nodes=NodeList(items=[req.raw_nodes[n] for n in result.passed]),
            FailedNodes=result.failed,
            FailedAndUnresolvableNodes=result.unresolvable,
        )
    else:
        answer = ExtenderFilterResult(
            NodeNames=result.passed,
            Nodes=None,
            FailedNodes=result.failed,
            FailedAndUnresolvableNodes=result.unresolvable,
        )
    return _json(encode_filter_result(answer))


async def prioritize_handler(request: web.Request) -> web.Response:
    req = _Request(request, await _read(request))
    _require_ready(req.cache)
    names, scores = score_nodes(
        req.intent, req.names, req.lookup, req.cache, req.policy, req.shape_of
    )
    request.app[PENDING].scored(req.pod, names, scores, req.policy.digest)
    recorder = request.app[EVENTS]
    if recorder is not None and request.app[SCORED_EVENTS]:
        record_scored(recorder, req.intent, names, scores, req.lookup, req.policy)
    if log.isEnabledFor(logging.DEBUG):
        scored = dict(zip(names, scores, strict=True))
        log.debug("prioritize", extra={"pod": req.intent.key, "scores": scored})
    return _json(encode_priorities(names, scores))


def bind_refusal(transport: asyncio.BaseTransport | None) -> str | None:
    """Why this connection may not bind, or None when it may.

    Whoever reaches /bind could place any pod on any node, past the scheduler. Only the
    scheduler may: as a sidecar it calls over loopback; through a Service it must present
    a client certificate our CA verified (--client-ca: the TLS handshake already refused
    anything else, so a certificate here is a verified one).
    """
    if transport is None:
        return "the connection is gone"
    if transport.get_extra_info("peercert"):
        return None
    peer = transport.get_extra_info("peername")
    host = peer[0] if isinstance(peer, tuple) and peer else None
    if host is not None and _is_loopback(host):
        return None
    return (
        f"bind refused: caller {host or 'unknown'} is not on loopback and presented no client "
        "certificate (serve with --client-ca so the scheduler authenticates)"
    )


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


async def bind_handler(request: web.Request) -> web.Response:
    args = decode_binding_args(await _read(request))
    refusal = bind_refusal(request.transport)
    if refusal is not None:
        request.app[METRICS].binds.labels("refused").inc()
        log.warning("bind refused", extra={"pod": f"{args.PodNamespace}/{args.PodName}"})
        return _error(403, "Forbidden", refusal)
    return await _bind(request, args)


async def _bind(request: web.Request, args: ExtenderBindingArgs) -> web.Response:
    cache = request.app[CACHE]
    what = f"bind {args.PodNamespace}/{args.PodName} to {args.Node}"
    # The pod as our filter got it: its spec cannot have changed since, and the Binding
    # carries its uid, so the API server refuses it if the pod was replaced. Else, read it.
    placement = request.app[PENDING].take(args.PodUID)
    if placement is not None and _same_pod(placement.pod, args):
        pod = placement.pod
    else:
        placement = None
        try:
            pod = await request.app[POD_READER](namespace=args.PodNamespace, name=args.PodName)
        except KubeError as exc:
            return _bind_answer(request, args, "error", f"{what}: {exc}")
    policy = request.app[STORE].current
    intent = pod_intent(pod, policy)
    refusal = _pod_refusal(request, args, pod, intent, policy)
    if refusal == _ALREADY_THERE:  # a retried bind that already happened
        return _bind_answer(request, args, "bound")
    if refusal is not None:
        return _bind_answer(request, args, "refused", f"{what}: refused: {refusal}")
    # Charge the pod before the API call: the next pod's filter may run while we wait.
    assumed = cache.assume(args.PodUID, args.Node, pod)
    # The GPU a sharing pod was charged to, and our decision record, go on the pod with
    # the binding (no extra call).
    annotations = devices_annotation(assumed, policy) if assumed else {}
    annotations.update(_decision(intent, args.Node, placement, cache, policy))
    try:
        await request.app[BINDER](
            namespace=args.PodNamespace,
            name=args.PodName,
            uid=args.PodUID,
            node=args.Node,
            annotations=annotations,
        )
    except KubeError as exc:
        if assumed is not None:
            cache.forget_assumed(args.PodUID)
        return _bind_answer(request, args, "error", str(exc))
    except BaseException:
        # Any other failure (a 500, a cancelled request) must not leave the node charged.
        if assumed is not None:
            cache.forget_assumed(args.PodUID)
        raise
    return _bind_answer(request, args, "bound")


def _bind_answer(
    request: web.Request, args: ExtenderBindingArgs, outcome: str, error: str = ""
) -> web.Response:
    """The protocol's answer: 200 with an empty Error, or the reason the scheduler logs."""
    request.app[METRICS].binds.labels(outcome).inc()
    if error:
        log.warning(
            "bind failed", extra={"pod": f"{args.PodNamespace}/{args.PodName}", "error": error}
        )
    return _json(encode_binding_result(ExtenderBindingResult(Error=error)))


_ALREADY_THERE = "already bound to that node"


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
    score = scored.of(node) if scored is not None else None
    if scored is None or score is None:
        why = NOT_SEEN if placement is None else NOT_SCORED
        return decision_record(intent, cache.node(node), why, policy, MAX_SCORE)
    best = scored.best
    ranking = Ranking(score, best, scored.count(best), len(scored.names))
    # The policy that scored it (a reload may have come between prioritize and bind).
    return decision_record(
        intent, cache.node(node), ranking, policy, MAX_SCORE, scored.policy_digest
    )


def _pod_refusal(
    request: web.Request, args: ExtenderBindingArgs, pod: Pod, intent: PodIntent, policy: Policy
) -> str | None:
    """Why the pod may not be bound to the node now (None: it may)."""
    served = request.app[SCHEDULER_NAMES]
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
    cache = request.app[CACHE]
    result = filter_nodes(intent, [args.Node], cache.node_lookup, cache, policy, cache.shape_lookup)
    if result.passed:
        return None
    reason = result.failed.get(args.Node) or result.unresolvable.get(args.Node)
    return f"our filter rejects node {args.Node} for this pod now: {reason}"


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    cache = request.app[CACHE]
    if cache.ready:
        return web.Response(text="ok")
    return web.Response(
        status=503,
        text=f"not ready: nodes synced={cache.nodes_synced}, pods synced={cache.pods_synced}",
    )


async def metrics_handler(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    metrics = request.app[METRICS]
    metrics.observe(request.app[CACHE], request.app[STORE].current.digest)
    response = web.Response(body=generate_latest(metrics.registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def debug_cache(request: web.Request) -> web.Response:
    """Read-only view of the cache: totals per class, and one node's features on ?node=."""
    cache = request.app[CACHE]
    policy = cache.policy
    name = request.query.get("node")
    if name is not None:
        node = cache.node(name)
        if node is None:
            return _error(404, "NotFound", f"node {name!r} is not in the cache")
        return _json(orjson.dumps(_node_json(cache, node)))
    body: dict[str, Any] = {
        "ready": cache.ready,
        "policyDigest": policy.digest,
        "counts": cache.counts(),
        "classes": {
            c: {"nodes": u.nodes, "gpus": u.capacity / 1000, "freeGpus": u.free / 1000}
            for c in policy.class_names
            for u in [cache.class_usage(c)]
        },
        "findings": {n.name: list(n.findings) for n in cache.nodes() if n.findings},
    }
    return _json(orjson.dumps(body))


def _node_json(cache: ClusterCache, node: NodeFeatures) -> dict[str, Any]:
    return {
        "name": node.name,
        "gpuClass": node.gpu_class.name,
        "tierRank": node.gpu_class.rank,
        "product": node.gpu_class.product,
        "classSource": node.gpu_class.source,
        "gpus": node.gpu_count,
        "freeMilliPerGpu": node.free,
        "heldMilliByWorkload": node.held,
        "cpuFreeMilli": node.cpu_free,
        "dedicatedTo": node.dedicated_to,
        "dedicationMode": node.dedication_mode if node.dedicated_to else None,
        "domains": node.domains,
        "findings": list(node.findings),
        "pods": [
            {
                "pod": r.key,
                "workload": r.workload,
                "gpus": r.demand.gpus,
                "milli": r.demand.milli,
                "assumed": r.assumed_until is not None,
            }
            for r in cache.pods_on(node.name)
        ],
    }


async def debug_doctor(request: web.Request) -> web.Response:
    """The doctor's report on the cluster as it is now (one fresh listing, not the cache:
    it needs every label and the pending pods' specs), under the policy in force."""
    running = request.app[DOCTOR_RUNNING]
    if running.locked():  # each report lists the whole cluster: one at a time
        raise Overloaded("a doctor report is being built; retry when it is done")
    async with running:
        listing = await request.app[DOCTOR_SOURCE]()
        # Decoding and checking a whole cluster takes seconds of CPU: in the worker (a
        # process of its own in `serve`), the verbs keep this loop.
        report = await asyncio.get_running_loop().run_in_executor(
            request.app[DOCTOR_WORKER], report_of, request.app[STORE].current, listing
        )
    if request.query.get("output") == "table":
        return web.Response(text=report_table(report) + "\n")
    return _json(orjson.dumps(report))


async def debug_explain(request: web.Request) -> web.Response:
    """Explain a pod (JSON or YAML manifest) against the cache, every node or ?node=a,b."""
    cache = request.app[CACHE]
    policy = request.app[STORE].current
    body = await _read(request)
    pod = decode_pod_manifest(body)
    names_param = request.query.get("nodes")
    names = names_param.split(",") if names_param else [n.name for n in cache.nodes()]
    intent = pod_intent(pod, policy)
    verdicts = explain_nodes(intent, names, cache.node, cache, policy)
    return _json(explanation_json(intent, verdicts, policy, pod))


def create_app(
    store: PolicyStore,
    cache: ClusterCache,
    *,
    metrics: Metrics | None = None,
    binder: Binder | None = None,
    pod_reader: PodReader | None = None,
    doctor_source: DoctorSource | None = None,
    doctor_worker: Executor | None = None,
    scheduler_names: frozenset[str] = DEFAULT_SCHEDULER_NAMES,
    limits: Limits = Limits(),
    admission: bool = False,
    events: EventRecorder | None = None,
    scored_events: bool = False,
    pending: PendingPlacements | None = None,
) -> web.Application:
    """The extender's routes; `binder` (pods/binding) and `pod_reader` are required for the
    bind verb, which binds only pods of `scheduler_names`. `admission` adds POST /mutate,
    the mutating admission webhook for the pods of `scheduler_names`; `events` records the
    Events of filter on the pods (None: none), and with `scored_events` one of prioritize
    on every pod it scores. `pending` keeps what filter and prioritize saw for bind.
    `doctor_worker` builds /debug/doctor's reports (None: the loop's default threads)."""
    app = web.Application(
        client_max_size=limits.max_body_bytes,
        middlewares=[errors_and_metrics, limits_middleware(limits)],
    )
    app[STORE] = store
    app[CACHE] = cache
    app[METRICS] = metrics or Metrics()
    app[BINDER] = binder or _no_binder
    app[POD_READER] = pod_reader or _no_pod_reader
    app[DOCTOR_SOURCE] = doctor_source or _no_doctor_source
    app[DOCTOR_RUNNING] = asyncio.Lock()
    app[DOCTOR_WORKER] = doctor_worker
    app[SCHEDULER_NAMES] = scheduler_names
    app[EVENTS] = events
    app[SCORED_EVENTS] = scored_events
    app[PENDING] = pending or PendingPlacements()
    app.router.add_routes(
        [
            web.post("/filter", filter_handler, name="filter"),
            web.post("/prioritize", prioritize_handler, name="prioritize"),
            web.post("/bind", bind_handler, name="bind"),
            web.get("/healthz", healthz, name="healthz"),
            web.get("/readyz", readyz, name="readyz"),
            web.get("/metrics", metrics_handler, name="metrics"),
            web.get("/debug/cache", debug_cache, name="debug_cache"),
            web.post("/debug/explain", debug_explain, name="debug_explain"),
            web.get("/debug/doctor", debug_doctor, name="debug_doctor"),
        ]
    )
    if admission:
        _add_admission(app, store, app[METRICS], scheduler_names)
    return app


def _add_admission(
    app: web.Application, store: PolicyStore, metrics: Metrics, scheduler_names: frozenset[str]
) -> None:
    app[ADMISSION] = Admission(store, metrics, scheduler_names, _read)
    app.router.add_routes(admission_routes())


def _probes_app(
    store: PolicyStore, cache: ClusterCache, metrics: Metrics, **options: Any
) -> web.Application:
    """An application with /healthz and /readyz only, for a port of its own."""
    app = web.Application(**options)
    app[STORE] = store
    app[CACHE] = cache
    app[METRICS] = metrics
    app.router.add_routes(
        [
            web.get("/healthz", healthz, name="healthz"),
            web.get("/readyz", readyz, name="readyz"),
        ]
    )
    return app


def create_admission_app(
    store: PolicyStore,
    cache: ClusterCache,
    *,
    metrics: Metrics,
    scheduler_names: frozenset[str] = DEFAULT_SCHEDULER_NAMES,
    limits: Limits = Limits(),
) -> web.Application:
    """POST /mutate (and the probes) alone, for a port the API server reaches without the
    client certificate that --client-ca demands of callers of the verbs."""
    app = _probes_app(
        store,
        cache,
        metrics,
        client_max_size=limits.max_body_bytes,
        middlewares=[errors_and_metrics, limits_middleware(limits)],
    )
    _add_admission(app, store, metrics, scheduler_names)
    return app


def create_health_app(
    store: PolicyStore, cache: ClusterCache, *, metrics: Metrics
) -> web.Application:
    """Probes and metrics only, for a port kubelet and Prometheus reach without the verbs'
    client certificate and without access to /filter, /bind or /debug."""
    app = _probes_app(store, cache, metrics, middlewares=[errors_and_metrics])
    app.router.add_get("/metrics", metrics_handler, name="metrics")
    return app


async def _no_binder(**_: object) -> None:
    raise KubeError("bind is not enabled: the extender runs without API credentials to bind")


async def _no_pod_reader(**_: str) -> Pod:
    raise KubeError("bind is not enabled: the extender runs without API credentials to bind")


async def _no_doctor_source() -> ClusterListing:
    raise KubeError("doctor is not enabled: the extender runs without API credentials")
