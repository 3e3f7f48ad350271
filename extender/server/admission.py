"""POST /mutate: a mutating admission webhook that mirrors GPU-class rules into node affinity.

Off unless `serve --admission-webhook` (or `--admission-port`). The patch keeps
cluster-autoscaler and Karpenter, which simulate only in-tree rules, in step with the
extender (docs/autoscaling.md). It never refuses a pod: a pod we cannot read, or a bug of
ours, is admitted unchanged with a warning, and the extender still enforces the classes at
scheduling time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from extender.errors import ExtenderError, WireError
from extender.policy.intent import pod_intent
from extender.policy.mirror import class_affinity_patch, mirrored_requirement
from extender.policy.store import PolicyStore
from extender.server.metrics import Metrics
from extender.wire import decode_admission_review, decode_pod, encode_admission_response
from extender.wire.admission import AdmissionRequest

log = logging.getLogger(__name__)

WARNING_PREFIX = "gpuclass-extender"


@dataclass(frozen=True, slots=True)
class Admission:
    """What /mutate needs: the policy, the metrics, which pods are ours, how to read."""

    store: PolicyStore
    metrics: Metrics
    scheduler_names: frozenset[str]
    read: Callable[[web.Request], Awaitable[bytes]]


ADMISSION = web.AppKey("admission", Admission)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one review: outcome (a metric label), patch, warnings."""

    outcome: str
    patch: bytes | None = None
    warnings: tuple[str, ...] = ()


def review(admission: Admission, request: AdmissionRequest) -> Verdict:
    """Decide one review; WireError for a pod that cannot be read."""
    gvk = request.kind
    if (gvk.group, gvk.kind) != ("", "Pod") or request.subResource or request.operation != "CREATE":
        return Verdict("skipped")
    raw = bytes(request.object)
    if raw.strip() in (b"", b"null"):
        raise WireError("request.object is missing or null")
    pod = decode_pod(raw, "request.object")
    if pod.spec.nodeName:
        return Verdict("skipped")  # bound at creation: no scheduler, no autoscaler involved
    if (pod.spec.schedulerName or "default-scheduler") not in admission.scheduler_names:
        return Verdict("skipped")  # another scheduler's pod: our rules do not apply to it
    policy = admission.store.current
    intent = pod_intent(pod, policy)
    if intent.conflicts and intent.wants_gpus:
        note = (
            f"{WARNING_PREFIX}: GPU-class node affinity not added: {intent.conflicts[0]} "
            "(the scheduler extender explains at scheduling time)"
        )
        return Verdict("conflict", warnings=(note,))
    requirement = mirrored_requirement(intent, policy)
    if requirement is None:
        return Verdict("unrestricted")
    try:
        pod_json = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # decode_pod accepted it, so this is unexpected
        raise WireError(f"request.object: {exc}") from None
    if not isinstance(pod_json, dict):
        raise WireError("request.object: expected a JSON object")
    patch = class_affinity_patch(pod_json, requirement)
    if not patch:
        return Verdict("unchanged")
    return Verdict("mirrored", orjson.dumps(patch))


async def mutate_handler(request: web.Request) -> web.Response:
    admission = request.app[ADMISSION]
    # A malformed review raises WireError: 400 from the middleware (the API server then
    # applies the webhook's failurePolicy).
    admission_request = decode_admission_review(await admission.read(request))
    where = {"pod": f"{admission_request.namespace}/{admission_request.name}"}
    try:
        verdict = review(admission, admission_request)
    except ExtenderError as exc:
        log.warning("admitted a pod we could not read", extra={**where, "error": str(exc)})
        note = f"{WARNING_PREFIX}: pod admitted without GPU-class node affinity: {exc}"
        verdict = Verdict("unreadable", warnings=(note,))
    except Exception:
        # Never block pod creation because of our bug; the extender still filters.
        log.exception("admission review failed; pod admitted unchanged", extra=where)
        note = f"{WARNING_PREFIX}: internal error; pod admitted without GPU-class node affinity"
        verdict = Verdict("error", warnings=(note,))
    admission.metrics.admissions.labels(verdict.outcome).inc()
    if verdict.outcome == "mirrored" and log.isEnabledFor(logging.DEBUG):
        log.debug("mirrored GPU-class affinity", extra=where)
    body = encode_admission_response(admission_request.uid, verdict.patch, verdict.warnings)
    return web.Response(body=body, content_type="application/json")


def admission_routes() -> list[web.RouteDef]:
    return [web.post("/mutate", mutate_handler, name="mutate")]
