"""The Events the verbs record on a pod: where it scored best, and why no node was left.

Building a note is string work on what the verb already computed; the EventRecorder
queues it and writes it later. Nothing here may fail a verb: errors are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules.base import Reject
from extender.rules.engine import MAX_SCORE, NodeLookup
from extender.rules.notes import scored_note, unschedulable_note
from extender.state.events import EventRecorder, ObjectRef, Observation

log = logging.getLogger(__name__)

CONTROLLER = "gpuclass.example.io/extender"
REASON_SCORED = "GpuClassScored"
REASON_UNSCHEDULABLE = "GpuClassUnschedulable"
ACTION_SCORING = "Scoring"
ACTION_SCHEDULING = "Scheduling"


def _ref(pod: PodIntent) -> ObjectRef | None:
    if not pod.namespace or not pod.name:
        return None
    return ObjectRef(namespace=pod.namespace, name=pod.name, uid=pod.uid)


def record_unschedulable(
    recorder: EventRecorder,
    pod: PodIntent,
    reject_counts: Mapping[Reject, int],
) -> None:
    """A Warning when our filter left no node (so every node is in `reject_counts`) and
    one of our rules rejected some."""
    if not reject_counts or not pod.wants_gpus:
        return
    try:
        ref = _ref(pod)
        note = unschedulable_note(pod, sum(reject_counts.values()), reject_counts)
        if ref is None or note is None:
            return
        recorder.record(Observation(ref, "Warning", REASON_UNSCHEDULABLE, ACTION_SCHEDULING, note))
    except Exception:
        log.exception("could not record an Event", extra={"pod": pod.key})


def record_scored(
    recorder: EventRecorder,
    pod: PodIntent,
    names: Sequence[str],
    scores: Sequence[int],
    lookup: NodeLookup,
    policy: Policy,
) -> None:
    """A Normal Event naming the best-scored node and its GPU class."""
    if not names or not pod.demand.gpus or pod.conflicts:
        return
    try:
        ref = _ref(pod)
        scored = scored_note(pod, names, scores, lookup, policy, MAX_SCORE)
        if ref is None or scored is None:
            return
        recorder.record(Observation(ref, "Normal", REASON_SCORED, ACTION_SCORING, scored[1]))
    except Exception:
        log.exception("could not record an Event", extra={"pod": pod.key})
