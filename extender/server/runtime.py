"""Run the extender: watches, policy reload, assumption expiry and the HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import ssl
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client

from extender.doctor.cluster import read_listing
from extender.policy.compiled import Policy
from extender.policy.store import PolicyStore
from extender.server.app import (
    DEFAULT_SCHEDULER_NAMES,
    Limits,
    create_admission_app,
    create_app,
    create_health_app,
)
from extender.server.events import CONTROLLER
from extender.server.metrics import Metrics
from extender.state.cache import ClusterCache, Kind
from extender.state.events import EventRecorder
from extender.state.kube import ApiEventSink, DirectApi, api_client, bind_pod, read_node, read_pod
from extender.state.pending import PendingPlacements
from extender.state.provisional import StageTtl
from extender.state.watch import (
    WATCH_STALL_SECONDS,
    WATCH_TIMEOUT_SECONDS,
    WatchHooks,
    mark_unsynced,
    watch_kind,
)

log = logging.getLogger(__name__)

# Above Go's 90 s idle-connection timeout, so the scheduler never reuses a closing socket.
# aiohttp also closes a connection whose request headers are not complete by then (it does
# not restart the timer per byte), which bounds a client that trickles its headers.
KEEPALIVE_SECONDS = 120.0
# The doctor's worker yields the CPU to the verbs (a 2-core node runs both).
DOCTOR_NICENESS = 10


def app_runner(app: web.Application, keepalive_seconds: float = KEEPALIVE_SECONDS) -> web.AppRunner:
    return web.AppRunner(app, access_log=None, keepalive_timeout=keepalive_seconds)


@dataclass(frozen=True)
class ServeOptions:
    policy: Path
    host: str = "127.0.0.1"
    port: int = 8888
    kubeconfig: Path | None = None
    policy_poll_seconds: float = 2.0
    assume_ttl_seconds: float = 60.0
    limits: Limits = field(default_factory=Limits)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    tls_poll_seconds: float = 2.0
    # How long one watch request lasts before it is renewed from its resourceVersion.
    watch_timeout_seconds: int = WATCH_TIMEOUT_SECONDS
    # A watch silent this long has stalled: the cache is not synced until a relist.
    watch_stall_seconds: float = WATCH_STALL_SECONDS
    # The bind verb places only pods whose spec.schedulerName is one of these.
    scheduler_names: frozenset[str] = DEFAULT_SCHEDULER_NAMES
    # A second, plain-HTTP port with /healthz, /readyz and /metrics only (None: off).
    health_host: str | None = None
    health_port: int | None = None
    # POST /mutate, the mutating admission webhook, on the main port.
    admission_webhook: bool = False
    # ... or on a port of its own (TLS, no client certificate: the API server has none).
    admission_host: str | None = None
    admission_port: int | None = None
    # Record Events on the pods our filter leaves without a node (GpuClassUnschedulable).
    events: bool = True
    # Also one on every pod prioritize scores (GpuClassScored): an API write per pod, which
    # the decision record on the Binding makes unnecessary; for debugging.
    scored_events: bool = False

    def __post_init__(self) -> None:
        if self.admission_port is not None and self.tls_cert is None:
            raise ValueError(
                "--admission-port needs --tls-cert and --tls-key (the API server calls "
                "admission webhooks over HTTPS only)"
            )


def reporting_instance() -> str:
    """Who reports the Events: the pod's name (its hostname), at most 128 characters."""
    return (os.environ.get("POD_NAME") or socket.gethostname() or "gpuclass-extender")[:128]


class Supervisor:
    """Background tasks that never die quietly: one that crashes or ends is logged,
    counted (gpuclass_extender_background_task_restarts_total) and started again after a
    backoff; `on_crash` runs first (a watch's cache stops counting as synced)."""

    def __init__(self, metrics: Metrics, backoff_max: float = 30.0) -> None:
        self.metrics = metrics
        self.backoff_max = backoff_max
        self.tasks: list[asyncio.Task[None]] = []

    def start(
        self,
        name: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        on_crash: Callable[[], None] | None = None,
    ) -> None:
        self.tasks.append(asyncio.create_task(self._forever(name, run, on_crash), name=name))

    async def _forever(
        self,
        name: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        on_crash: Callable[[], None] | None,
    ) -> None:
        backoff = 0.5
        while True:
            try:
                await run()
                log.error("background task ended unexpectedly; restarting", extra={"task": name})
            except Exception:
                log.exception("background task crashed; restarting", extra={"task": name})
            if on_crash is not None:
                on_crash()
            self.metrics.task_restarts.labels(name).inc()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def reload_policy_forever(store: PolicyStore, metrics: Metrics, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        outcome = store.reload()
        if outcome.result == "unchanged":
            continue
        metrics.policy_reloads.labels(outcome.result).inc()
        if outcome.error is not None:
            log.error(
                "policy rejected; the previous policy stays in force",
                extra={"policy": str(store.path), "issues": [str(i) for i in outcome.error.issues]},
            )
        else:
            log.info("policy reloaded", extra={"digest": store.current.digest})


async def expire_assumptions_forever(
    cache: ClusterCache, pending: PendingPlacements, metrics: Metrics
) -> None:
    while True:
        await asyncio.sleep(1.0)
        pending.expire()
        for record in cache.expire().assumed:
            metrics.assumed_expired.inc()
            log.warning("assumed binding not confirmed in time", extra={"pod": record.key})


class CertificateReloader:
    """The serving TLS context, reloaded in place when its files change.

    cert-manager (or a rotated Secret) replaces the files under the running server; a
    changed certificate or key is loaded into the same SSLContext, so new connections get
    it at once and open ones keep theirs. A half-written or broken pair is refused and the
    previous one keeps serving; the next change is tried again. A new client CA is added
    to the trusted ones (an SSLContext cannot forget a CA: restart to drop an old one).
    """

    def __init__(self, cert: Path, key: Path | None, client_ca: Path | None) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        if client_ca is not None:
            self.context.load_verify_locations(client_ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self._seen = self._stamp()

    def _stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        stamps = []
        for path in (self.cert, self.key, self.client_ca):
            try:
                stat = path.stat() if path is not None else None
            except OSError:
                stat = None
            stamps.append((stat.st_mtime_ns, stat.st_size, stat.st_ino) if stat else None)
        return tuple(stamps)

    def reload_if_changed(self) -> str:
        """ "unchanged", "reloaded", or "rejected" (the old certificate stays)."""
        stamp = self._stamp()
        if stamp == self._seen:
            return "unchanged"
        self._seen = stamp
        try:
            self.context.load_cert_chain(self.cert, self.key)
            if self.client_ca is not None:
                self.context.load_verify_locations(self.client_ca)
        except (OSError, ssl.SSLError) as exc:
            log.error(
                "new TLS certificate rejected; the previous one keeps serving",
                extra={"cert": str(self.cert), "error": str(exc)},
            )
            return "rejected"
        log.info("TLS certificate reloaded", extra={"cert": str(self.cert)})
        return "reloaded"


async def reload_certificate_forever(
    reloader: CertificateReloader, metrics: Metrics, interval: float
) -> None:
    while True:
        await asyncio.sleep(interval)
        outcome = reloader.reload_if_changed()
        if outcome != "unchanged":
            metrics.tls_reloads.labels(outcome).inc()


@dataclass(frozen=True)
class Bound:
    """The ports `serve` listens on, port 0 resolved to the one the OS picked (None: off)."""

    port: int
    health_port: int | None
    admission_port: int | None


async def serve(
    options: ServeOptions,
    *,
    started: asyncio.Future[Bound] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or until `stop` is set: a seam for tests, which learn
    the bound ports from `started`).

    Everything started is undone in reverse order however serving ends, a failed start
    (the port in use, a bad certificate) included.
    """
    keep_large_buffers_returnable()
    async with contextlib.AsyncExitStack() as stack:
        await _serve(options, stack, started, stop or asyncio.Event())


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024


def keep_large_buffers_returnable() -> bool:
    """Fix glibc's mmap threshold at its default 128 KiB; False where it cannot be set.

    glibc raises the threshold each time a block above it is freed (up to 32 MiB); blocks
    of that size then come from the heap, and freed they stay with the process. A server
    reading request bodies of every size grows that way without holding anything: under
    `make fuzz`'s 20,000-request slice with admission reviews, RSS rose 15% per slice and
    kept rising (malloc_trim gave most of it back); with the threshold fixed it rose 6.7%
    in the first slice and stayed flat (docs/reliability.md).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # not glibc
        return False


async def _serve(
    options: ServeOptions,
    stack: contextlib.AsyncExitStack,
    started: asyncio.Future[Bound] | None,
    stop: asyncio.Event,
) -> None:
    store = PolicyStore.from_file(options.policy)
    ttl = options.assume_ttl_seconds
    cache = ClusterCache(store.current, ttl=StageTtl(noted=ttl, assumed=ttl))
    metrics = Metrics()

    relist = {"nodes": asyncio.Event(), "pods": asyncio.Event()}

    def apply_policy(policy: Policy) -> None:
        for kind in cache.set_policy(policy):
            log.info("new policy reads other inputs; relisting", extra={"kind": kind})
            relist[kind].set()

    store.on_change(apply_policy)
    api = await api_client(options.kubeconfig)
    stack.push_async_callback(api.close)
    core = client.CoreV1Api(api)
    direct = DirectApi(api)
    stack.push_async_callback(direct.close)
    recorder = None
    if options.events:
        recorder = EventRecorder(
            ApiEventSink(client.EventsV1Api(api)),
            controller=CONTROLLER,
            instance=reporting_instance(),
            on_outcome=lambda outcome: metrics.events.labels(outcome).inc(),
        )
        stack.push_async_callback(_flush_events, recorder)
    pending = PendingPlacements(ttl=options.assume_ttl_seconds)
    worker = doctor_worker()
    stack.callback(worker.shutdown, wait=False, cancel_futures=True)
    app = create_app(
        store,
        cache,
        metrics=metrics,
        binder=partial(bind_pod, direct),
        pod_reader=partial(read_pod, direct),
        node_reader=partial(read_node, direct),
        doctor_source=partial(read_listing, api),
        doctor_worker=worker,
        scheduler_names=options.scheduler_names,
        limits=options.limits,
        admission=options.admission_webhook,
        events=recorder,
        scored_events=options.scored_events,
        pending=pending,
    )
    hooks = WatchHooks(
        event=lambda kind: metrics.watch_events.labels(kind).inc(),
        listed=lambda kind: metrics.watch_relists.labels(kind).inc(),
        error=lambda kind: metrics.watch_errors.labels(kind).inc(),
        desynced=lambda kind, cause: metrics.cache_desyncs.labels(kind, cause).inc(),
    )
    background = Supervisor(metrics)
    stack.push_async_callback(background.stop)
    kinds: tuple[Kind, ...] = ("nodes", "pods")
    for kind in kinds:
        background.start(
            f"{kind} watch",
            partial(
                watch_kind,
                kind=kind,
                api=core,
                cache=cache,
                hooks=hooks,
                relist=relist[kind],
                watch_timeout=options.watch_timeout_seconds,
                stall_seconds=options.watch_stall_seconds,
            ),
            on_crash=partial(mark_unsynced, cache, kind, hooks, "error"),
        )
    background.start(
        "policy reload", partial(reload_policy_forever, store, metrics, options.policy_poll_seconds)
    )
    background.start(
        "assumption expiry", partial(expire_assumptions_forever, cache, pending, metrics)
    )
    if recorder is not None:
        background.start("event writer", recorder.run)
    reloader = None
    if options.tls_cert is not None:
        reloader = CertificateReloader(options.tls_cert, options.tls_key, options.client_ca)
        background.start(
            "certificate reload",
            partial(reload_certificate_forever, reloader, metrics, options.tls_poll_seconds),
        )
    ssl_context = reloader.context if reloader is not None else None
    port = await _listen(stack, app_runner(app), options.host, options.port, ssl_context)
    admission_port = health_port = None
    if options.admission_port is not None:
        assert options.tls_cert is not None  # ServeOptions checks it
        # Same certificate, but no client certificate asked: the API server presents none.
        webhook_tls = CertificateReloader(options.tls_cert, options.tls_key, None)
        background.start(
            "webhook certificate reload",
            partial(reload_certificate_forever, webhook_tls, metrics, options.tls_poll_seconds),
        )
        admission = create_admission_app(
            store,
            cache,
            metrics=metrics,
            scheduler_names=options.scheduler_names,
            limits=options.limits,
        )
        admission_host = options.admission_host or options.host
        admission_port = await _listen(
            stack,
            app_runner(admission),
            admission_host,
            options.admission_port,
            webhook_tls.context,
        )
    if options.health_port is not None:
        health = web.AppRunner(create_health_app(store, cache, metrics=metrics), access_log=None)
        health_port = await _listen(
            stack, health, options.health_host or options.host, options.health_port, None
        )
    # The ports bound, port 0 resolved: what a supervisor started with --port 0 reads.
    log.info(
        "serving",
        extra={
            "host": options.host,
            "port": port,
            "health_port": health_port,
            "admission_port": admission_port,
            "policy": str(options.policy),
        },
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
        stack.callback(loop.remove_signal_handler, sig)
    if started is not None:
        started.set_result(Bound(port, health_port, admission_port))
    await stop.wait()
    log.info("shutting down")


def doctor_worker() -> ProcessPoolExecutor:
    """One process for /debug/doctor's reports, at a lower CPU priority than the verbs,
    started on the first report (spawned: a fork of a running event loop is unsafe)."""
    return ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_nice
    )


def _nice() -> None:
    os.nice(DOCTOR_NICENESS)


async def _listen(
    stack: contextlib.AsyncExitStack,
    runner: web.AppRunner,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
) -> int:
    """Serve the runner on host:port (0: a port the OS picks); the port bound."""
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    bound: int = runner.addresses[0][1]
    return bound


async def _flush_events(recorder: EventRecorder) -> None:
    """The counts of running series the API has not heard of yet; briefly."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2.0):
            await recorder.flush(final=True)
