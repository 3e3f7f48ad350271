"""Pods between our filter and their bind: the pod the scheduler sent, and how we scored it.

The scheduler sends the whole Pod to filter and prioritize, then only its name and uid to
bind. Keeping what it sent lets the bind verb re-check the pod without reading it from
the API server, and write the decision record (the class, our score for the chosen node,
how many nodes tied) onto the pod through the Binding itself, at no extra call.

Bounded twice, so a scheduler that never binds (or a caller that only filters) cannot
grow it: at most `max_pods` pods, the least recently seen dropped first, and at most
`max_scored_nodes` scored nodes over all of them (a 15,000-node request keeps up to
15,000 names alive until its bind). Only nodes scored above 0 are kept by name: the
rest (every node the cache does not know among them) are only counted. A bind that finds
nothing here reads the pod instead.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress

from extender.wire import Pod

DEFAULT_TTL_SECONDS = 60.0
DEFAULT_MAX_PODS = 1024
DEFAULT_MAX_SCORED_NODES = 200_000


@dataclass(slots=True)
class Scored:
    """Our answer to the pod's last prioritize call: the nodes scored above 0, by name."""

    names: Sequence[str]
    scores: bytes  # per name, 1..10
    policy_digest: str
    candidates: int  # nodes scored, 0s included

    def of(self, node: str) -> int:
        """The node's score; 0 for a node not kept (the scheduler binds only to a node it
        asked us to score)."""
        try:
            return self.scores[self.names.index(node)]
        except ValueError:
            return 0

    @property
    def best(self) -> int:
        return max(self.scores, default=0)

    def count(self, score: int) -> int:
        return self.scores.count(score) if score else self.candidates - len(self.scores)


@dataclass(slots=True)
class Pending:
    """One pending pod as the scheduler last sent it."""

    pod: Pod
    until: float
    scored: Scored | None = None


class PendingPlacements:
    """uid -> Pending, for pods our filter or prioritize saw and no bind has taken yet."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_pods: int = DEFAULT_MAX_PODS,
        max_scored_nodes: int = DEFAULT_MAX_SCORED_NODES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_pods = max_pods
        self._max_scored_nodes = max_scored_nodes
        self._clock = clock
        self._placements: OrderedDict[str, Pending] = OrderedDict()
        self._scored_nodes = 0

    def __len__(self) -> int:
        return len(self._placements)

    def saw(self, pod: Pod) -> Pending | None:
        """Remember the pod of a filter or prioritize call (a pod with a uid, not bound)."""
        uid = pod.metadata.uid
        if not uid or pod.spec.nodeName:
            return None
        placement = self._placements.get(uid)
        until = self._clock() + self._ttl
        if placement is None:
            placement = self._placements[uid] = Pending(pod, until)
            while len(self._placements) > self._max_pods:
                self._pop(next(iter(self._placements)))
        else:
            placement.pod, placement.until = pod, until
            self._placements.move_to_end(uid)
        return placement

    def scored(self, pod: Pod, names: Sequence[str], scores: Sequence[int], digest: str) -> None:
        """Remember our scores for the pod's candidate nodes (its last prioritize call)."""
        placement = self.saw(pod)
        if placement is None:
            return
        self._forget_scores(placement)
        kept = list(compress(names, scores))
        placement.scored = Scored(kept, bytes(filter(None, scores)), digest, len(names))
        self._scored_nodes += len(kept)
        # Over budget: the oldest pods give up their scores (their records lose the score).
        for other in list(self._placements.values()):
            if self._scored_nodes <= self._max_scored_nodes or other is placement:
                break
            self._forget_scores(other)

    def take(self, uid: str) -> Pending | None:
        """The pod's placement, removed; None when unknown or older than the TTL."""
        if uid not in self._placements:
            return None
        placement = self._pop(uid)
        return placement if placement.until > self._clock() else None

    def expire(self) -> int:
        """Drop placements older than the TTL (pods bound elsewhere, deleted, or given up)."""
        now = self._clock()
        expired = [uid for uid, p in self._placements.items() if p.until <= now]
        for uid in expired:
            self._pop(uid)
        return len(expired)

    def _pop(self, uid: str) -> Pending:
        placement = self._placements.pop(uid)
        if placement.scored is not None:
            self._scored_nodes -= len(placement.scored.names)
        return placement

    def _forget_scores(self, placement: Pending) -> None:
        if placement.scored is not None:
            self._scored_nodes -= len(placement.scored.names)
            placement.scored = None
