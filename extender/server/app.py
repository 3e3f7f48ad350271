"""The aiohttp application: extender verbs, probes, metrics and read-only debug views.

Handlers speak HTTP only: what the verbs do is server/verbs.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

from extender.doctor.cluster import ClusterListing, report_of
from extender.doctor.findings import report_table
from extender.errors import (
    ExtenderError,
    KubeError,
    OverBudget,
    Overloaded,
    SlowClient,
)
from extender.policy.intent import pod_intent
from extender.policy.store import PolicyStore
from extender.rules.engine import explain_nodes
from extender.server.admission import ADMISSION, Admission, admission_routes
from extender.server.explain import explanation_json, gpu_facts_of
from extender.server.metrics import Metrics
from extender.server.verbs import (
    Binder,
    NodeReader,
    PodReader,
    Verbs,
    no_binder,
    no_pod_reader,
)
from extender.state.cache import ClusterCache
from extender.state.events import EventRecorder
from extender.state.features import NodeFeatures
from extender.state.pending import PendingPlacements
from extender.wire import (
    decode_binding_args,
    decode_pod_manifest,
)

log = logging.getLogger(__name__)


class DoctorSource(Protocol):
    """Lists the cluster once for the doctor (nodes, pods, node templates)."""

    async def __call__(self) -> ClusterListing: ...


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
# Explanations of up to this many nodes (~2 ms) are built on the loop: a worker thread's
# allocations come from an arena of its own, which grew RSS under `make fuzz`.
EXPLAIN_ON_THE_LOOP_NODES = 256

STORE = web.AppKey("store", PolicyStore)
CACHE = web.AppKey("cache", ClusterCache)
METRICS = web.AppKey("metrics", Metrics)
DOCTOR_SOURCE = web.AppKey[DoctorSource]("doctor_source")
DOCTOR_RUNNING = web.AppKey("doctor_running", asyncio.Lock)
DOCTOR_WORKER = web.AppKey[Executor | None]("doctor_worker")
VERBS = web.AppKey("verbs", Verbs)


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


async def _read(request: web.Request) -> bytes:
    """The body; over the size limit aiohttp raises 413, which the middleware reports."""
    body = await request.read()
    request[_PHASE] = "deciding"
    return body


async def filter_handler(request: web.Request) -> web.Response:
    return _json(await request.app[VERBS].filter(await _read(request)))


async def prioritize_handler(request: web.Request) -> web.Response:
    return _json(request.app[VERBS].prioritize(await _read(request)))


async def bind_handler(request: web.Request) -> web.Response:
    args = decode_binding_args(await _read(request))
    refusal = bind_refusal(request.transport)
    if refusal is not None:
        request.app[VERBS].refused(args)
        return _error(403, "Forbidden", refusal)
    return _json(await request.app[VERBS].bind(args))


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
                "assumed": cache.is_assumed(r.uid),
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
    facts = gpu_facts_of(verdicts, cache.node)
    if len(verdicts) <= EXPLAIN_ON_THE_LOOP_NODES:
        return _json(explanation_json(intent, verdicts, policy, pod, facts))
    # A dict per node, about 9 us each (over 100 ms at 15,000 nodes): built in a thread
    # from frozen values, so that the loop goes on answering the verbs meanwhile.
    body = await asyncio.get_running_loop().run_in_executor(
        None, explanation_json, intent, verdicts, policy, pod, facts
    )
    return _json(body)


def create_app(
    store: PolicyStore,
    cache: ClusterCache,
    *,
    metrics: Metrics | None = None,
    binder: Binder | None = None,
    pod_reader: PodReader | None = None,
    node_reader: NodeReader | None = None,
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
    bind verb, which binds only pods of `scheduler_names`; with `node_reader`, filter reads
    the few nodes of a request that admits none before it says so. `admission` adds POST /mutate,
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
    app[METRICS] = metrics if metrics is not None else Metrics()
    app[VERBS] = Verbs(
        store,
        cache,
        app[METRICS],
        binder=binder or no_binder,
        pod_reader=pod_reader or no_pod_reader,
        node_reader=node_reader,
        scheduler_names=scheduler_names,
        # Not `pending or ...`: an empty PendingPlacements is falsy, and serve's own (its
        # TTL, expired by its background task) would be swapped for a stray one.
        pending=pending if pending is not None else PendingPlacements(),
        events=events,
        scored_events=scored_events,
    )
    app[DOCTOR_SOURCE] = doctor_source or _no_doctor_source
    app[DOCTOR_RUNNING] = asyncio.Lock()
    app[DOCTOR_WORKER] = doctor_worker
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


async def _no_doctor_source() -> ClusterListing:
    raise KubeError("doctor is not enabled: the extender runs without API credentials")
