"""Pods on their way to a node that the watch has not confirmed: one record per pod.

The scheduler filters a pod, then binds it; the watch tells us of both later. Until it
does, what we know of the pod is provisional, and goes through stages:

- noted: only a filter call told us of the pod, not the watch (it is new, was deleted
  before its event came, or no API server ever held it);
- held, or in flight: between our filter and its binding, its GPUs count against the
  reserved classes it may land in (premium headroom; the next pod's filter may come first);
- assumed: our bind charged it to its node before the API call.

A record is in one stage at a time and each stage lasts its TTL (`StageTtl`) from when it
began. The watch reporting the pod ends "noted" (the pod is real); the watch reporting it
bound ends the record. A stage that runs out is undone whole (the cache does it,
`ClusterCache.expire`): an assumption is forgotten, a hold released, and a pod only a filter
told us of is forgotten too, so a buggy or hostile caller cannot grow the cache for good.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from extender.policy.compiled import ClassName

Stage = Literal["noted", "held", "assumed"]


@dataclass(frozen=True, slots=True)
class StageTtl:
    """How long each stage lasts, in seconds, unless the watch confirms the pod first."""

    noted: float = 60.0
    held: float = 10.0  # a scheduler binds within seconds of its filter
    assumed: float = 60.0

    def of(self, stage: Stage) -> float:
        ttl: float = getattr(self, stage)
        return ttl


DEFAULT_TTL = StageTtl()
NO_CLASSES: frozenset[ClassName] = frozenset()


@dataclass(slots=True)
class Provisional:
    """What is provisional about one pod."""

    stage: Stage
    until: float
    unwatched: bool = False  # only a filter told us of the pod
    holds: frozenset[ClassName] = NO_CLASSES  # the reserved classes its GPUs count against
    milli: int = 0  # the milli-GPUs held against each of them


class ProvisionalPods:
    """uid -> Provisional, in the order the records began."""

    def __init__(self, ttl: StageTtl, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._records: dict[str, Provisional] = {}
        self._unwatched = 0

    def get(self, uid: str) -> Provisional | None:
        return self._records.get(uid)

    def enter(self, uid: str, stage: Stage, *, unwatched: bool = False) -> Provisional:
        """The pod's record, now in `stage` for that stage's TTL (begun if there was none)."""
        until = self._clock() + self.ttl.of(stage)
        record = self._records.get(uid)
        if record is None:
            record = self._records[uid] = Provisional(stage, until, unwatched)
            self._unwatched += unwatched
        else:
            record.stage, record.until = stage, until
        return record

    def end(self, uid: str) -> Provisional | None:
        """Remove the pod's record (its effects are the caller's to undo)."""
        record = self._records.pop(uid, None)
        if record is not None:
            self._unwatched -= record.unwatched
        return record

    def watched(self, uid: str) -> None:
        """The watch reports the pod: it is real, and only being noted ends."""
        record = self._records.get(uid)
        if record is None or not record.unwatched:
            return
        record.unwatched = False
        self._unwatched -= 1
        if record.stage == "noted":
            del self._records[uid]

    def due(self) -> list[str]:
        """The pods whose stage has run out, oldest record first."""
        now = self._clock()
        return [uid for uid, record in self._records.items() if record.until <= now]

    def oldest_unwatched(self) -> str | None:
        return next((uid for uid, r in self._records.items() if r.unwatched), None)

    @property
    def unwatched(self) -> int:
        return self._unwatched

    def count(self, stage: Stage) -> int:
        return sum(1 for record in self._records.values() if record.stage == stage)

    def held(self) -> Iterator[tuple[str, Provisional]]:
        return ((uid, r) for uid, r in list(self._records.items()) if r.holds)
