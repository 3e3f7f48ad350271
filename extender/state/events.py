"""Kubernetes Events about our decisions, deduplicated and rate-limited off the verbs' path.

Modelled on client-go's events recorder (k8s.io/client-go/tools/events): an observation
equal to one seen within the last six minutes (same object, type, reason, action and
note) is folded into that Event's `series` (count, lastObservedTime) and PATCHed, never
created again; a new series starts after six quiet minutes. Unlike client-go, which
writes a running series only every 30 minutes, the first repeat is patched at once and
later ones at most every `patch_interval` seconds, so `kubectl get events` shows a count
that is at most that stale. New Events per object pass a token bucket (client-go's
tools/record spam filter: a burst of 25, then one per five minutes).

The verbs only call `record()`: dictionary work and a put on a bounded queue; a full
queue drops the observation (counted). `run()` is the one task that writes to the API,
through an `EventSink`; its failures are counted and logged, never raised to a verb.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from extender.errors import KubeError

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
Outcome = Literal["recorded", "aggregated", "dropped", "rate_limited", "failed"]
"""recorded: a new Event created; aggregated: an observation counted into an existing
Event's series; dropped: the queue was full; rate_limited: the object's token bucket was
empty; failed: the API refused a create or patch."""

NOTE_LIMIT_BYTES = 1024  # the API's limit on events.k8s.io/v1 Event.note
SERIES_WINDOW_SECONDS = 6 * 60.0  # client-go tools/events finishTime
PATCH_INTERVAL_SECONDS = 30.0
SPAM_BURST = 25  # client-go tools/record defaultSpamBurst
SPAM_REFILL_SECONDS = 300.0  # one token per five minutes (defaultSpamQPS = 1/300)
QUEUE_SIZE = 1024
MAX_SERIES = 2048  # open series remembered; the oldest are forgotten first
MAX_BUCKETS = 4096  # objects with a token bucket (client-go: an LRU of 4096)
TICK_SECONDS = 1.0
FAILURE_LOG_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object an Event is about (`regarding`)."""

    namespace: str
    name: str
    uid: str
    kind: str = "Pod"
    api_version: str = "v1"


@dataclass(frozen=True, slots=True)
class Observation:
    """One thing worth telling about an object; equal observations form a series."""

    regarding: ObjectRef
    type: EventType
    reason: str
    action: str
    note: str


@dataclass(frozen=True, slots=True)
class EventBody:
    """What the sink creates: an events.k8s.io/v1 Event (count > 1 carries a series)."""

    name: str
    observation: Observation
    controller: str
    instance: str
    event_time: float
    count: int
    last_observed: float


class EventSink(Protocol):
    """Writes Events to the API; raises KubeError (with the HTTP status) on failure."""

    async def create(self, event: EventBody) -> None: ...

    async def patch_series(
        self, *, namespace: str, name: str, count: int, last_observed: float
    ) -> None: ...


def truncate_note(note: str, limit: int = NOTE_LIMIT_BYTES) -> str:
    """The note cut to `limit` UTF-8 bytes (ending in "..." when cut), as the API demands."""
    encoded = note.encode()
    if len(encoded) <= limit:
        return note
    return encoded[: limit - 3].decode(errors="ignore") + "..."


@dataclass(slots=True)
class _Series:
    observation: Observation
    first_seen: float
    last_observed: float
    count: int = 1
    name: str | None = None  # set once created
    written_count: int = 0  # the count the API has
    last_written: float = 0.0
    queued: bool = False


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class EventRecorder:
    """Deduplicates observations into Event series and writes them through a sink."""

    def __init__(
        self,
        sink: EventSink,
        *,
        controller: str,
        instance: str,
        clock: Callable[[], float] = time.time,
        on_outcome: Callable[[Outcome], None] | None = None,
        queue_size: int = QUEUE_SIZE,
        window: float = SERIES_WINDOW_SECONDS,
        patch_interval: float = PATCH_INTERVAL_SECONDS,
        burst: int = SPAM_BURST,
        refill_seconds: float = SPAM_REFILL_SECONDS,
        max_series: int = MAX_SERIES,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.sink, self.controller, self.instance = sink, controller, instance
        self.clock = clock
        self._on_outcome = on_outcome
        self.window, self.patch_interval = window, patch_interval
        self.burst, self.refill_seconds = burst, refill_seconds
        self.max_series, self.max_buckets = max_series, max_buckets
        self.queue: asyncio.Queue[_Series] = asyncio.Queue(queue_size)
        # Oldest observation first: expiry pops from the front.
        self._series: OrderedDict[Observation, _Series] = OrderedDict()
        self._dirty: set[Observation] = set()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._failures = 0
        self._failure_logged = float("-inf")
        self._names = 0

    # ---- the verbs' side: no I/O, no await ------------------------------------------------

    def record(self, observation: Observation) -> Outcome | None:
        """Count an observation; queue a write if the API should hear of it now.

        Returns what happened to it (None: folded into a series whose write is pending).
        """
        now = self.clock()
        observation = _with_note(observation)
        series = self._series.get(observation)
        if series is not None and now - series.last_observed <= self.window:
            series.count += 1
            series.last_observed = now
            self._series.move_to_end(observation)
            self._count("aggregated")
            # The first repeat is written at once, later ones when due (or a full queue).
            if (
                series.name is not None
                and not series.queued
                and (series.written_count > 1 or not self._enqueue(series))
            ):
                self._dirty.add(observation)
            return "aggregated"
        if series is not None:  # a series that went quiet: forget it, start anew
            self._forget(observation)
        if not self._take_token(observation.regarding, now):
            self._count("rate_limited")
            return "rate_limited"
        series = _Series(observation, first_seen=now, last_observed=now)
        if not self._enqueue(series):
            self._count("dropped")
            return "dropped"
        self._series[observation] = series
        while len(self._series) > self.max_series:
            oldest, _ = self._series.popitem(last=False)
            self._dirty.discard(oldest)
        return None

    def _enqueue(self, series: _Series) -> bool:
        try:
            self.queue.put_nowait(series)
        except asyncio.QueueFull:
            return False
        series.queued = True
        self._dirty.discard(series.observation)
        return True

    def _take_token(self, regarding: ObjectRef, now: float) -> bool:
        key = regarding.uid or f"{regarding.namespace}/{regarding.name}"
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            refill = (now - bucket.updated) / self.refill_seconds
            bucket.tokens = min(float(self.burst), bucket.tokens + max(0.0, refill))
            bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _forget(self, observation: Observation) -> None:
        self._series.pop(observation, None)
        self._dirty.discard(observation)

    def _count(self, outcome: Outcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    # ---- the writer: one background task ----------------------------------------------------

    async def run(self, tick: float = TICK_SECONDS) -> None:
        """Write queued Events, patch running series when due; forever."""
        while True:
            try:
                async with asyncio.timeout(tick):
                    series = await self.queue.get()
            except TimeoutError:
                pass
            else:
                await self._write_queued(series)
            await self.drain()
            await self.flush()

    async def drain(self) -> None:
        """Write everything queued now."""
        while not self.queue.empty():
            await self._write_queued(self.queue.get_nowait())

    async def _write_queued(self, series: _Series) -> None:
        series.queued = False
        await self.write(series)

    async def flush(self, final: bool = False) -> None:
        """Patch series whose count the API is behind on (now, when `final`), and forget
        series that went quiet for the window."""
        now = self.clock()
        due = [
            s
            for key in list(self._dirty)
            if (s := self._series.get(key)) is not None
            and (final or now - s.last_written >= self.patch_interval)
        ]
        for series in due:
            self._dirty.discard(series.observation)
            await self.write(series)
        while self._series:
            key, oldest = next(iter(self._series.items()))
            if now - oldest.last_observed <= self.window or oldest.queued:
                break
            if key in self._dirty:  # its last observations, before it is forgotten
                self._dirty.discard(key)
                await self.write(oldest)
            self._forget(key)

    async def write(self, series: _Series) -> None:
        """Create the series' Event, or patch its count; failures are counted, not raised."""
        count, last = series.count, series.last_observed
        if series.name is not None and count <= series.written_count:
            return
        try:
            if series.name is not None:
                try:
                    await self.sink.patch_series(
                        namespace=series.observation.regarding.namespace,
                        name=series.name,
                        count=count,
                        last_observed=last,
                    )
                except KubeError as exc:
                    if exc.status != 404:
                        raise
                    series.name = None  # deleted (TTL) meanwhile: create it again
            if series.name is None:
                name = self._name_for(series.observation.regarding)
                await self.sink.create(
                    EventBody(
                        name=name,
                        observation=series.observation,
                        controller=self.controller,
                        instance=self.instance,
                        event_time=series.first_seen,
                        count=count,
                        last_observed=last,
                    )
                )
                series.name = name
                if series.written_count == 0:
                    self._count("recorded")
        except Exception as exc:  # an Event must never take the writer down
            self._failed(series, exc)
            return
        series.written_count, series.last_written = count, self.clock()
        # Observed again while we wrote: the first repeat goes out at once, later ones when due.
        current = self._series.get(series.observation) is series
        if current and series.count > count and (count > 1 or not self._enqueue(series)):
            self._dirty.add(series.observation)

    def _name_for(self, regarding: ObjectRef) -> str:
        # client-go: "<name>.<unix nanoseconds in hex>"; a counter keeps ours unique.
        self._names += 1
        return f"{regarding.name}.{time.time_ns() + self._names:x}"

    def _failed(self, series: _Series, exc: Exception) -> None:
        self._count("failed")
        if series.name is None:
            self._forget(series.observation)  # retried on its next observation
        self._failures += 1
        now = time.monotonic()
        if now - self._failure_logged >= FAILURE_LOG_SECONDS:
            log.warning(
                "could not write an Event",
                extra={"error": str(exc), "failures": self._failures},
            )
            self._failure_logged, self._failures = now, 0


def _with_note(observation: Observation) -> Observation:
    note = truncate_note(observation.note)
    if note is observation.note:
        return observation
    return Observation(
        observation.regarding, observation.type, observation.reason, observation.action, note
    )
