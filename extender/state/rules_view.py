"""What the cache keeps for the rules beyond the cluster's totals: scratch to reuse work.

- `TypicalPods`: the cluster's GPU pods counted by workload class and shape, and the
  snapshot of the most common ones (the demand mix) that fragmentation-aware packing reads.
- `ShapeLog`: which nodes changed shape since a generation, so a grouping of many nodes
  by shape is brought up to date instead of rebuilt (rules/engine.py).
- `RuleMemos`: verdicts per node shape, emptied when something beyond a shape changes.

The cache (extender/state/cache.py) feeds them as pods and nodes change; none of them is a
fact about the cluster that is not also in the cache.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

from extender.policy.compiled import WorkloadName
from extender.policy.intent import GpuDemand

TypicalPod = tuple[GpuDemand, int]
"""A pod shape fragmentation reads: its GPU demand and its CPU request (millicores)."""
TypicalKey = tuple[WorkloadName, TypicalPod]
DemandMix = tuple[tuple[WorkloadName, TypicalPod, float], ...]

_MIX_MIN_CHANGES = 20
_MIX_COVERAGE = 0.95
_MAX_MEMOS = 1024
_RESHAPED_LOG = 4096  # names of reshaped nodes kept; past it, groupings are rebuilt


class TypicalPods:
    """Pods counted by (workload class, shape), and the demand mix taken from the counts.

    The mix is the most common shapes covering 95% of pods (FGD's "typical pods"), with
    their share; the class says which GPUs separation lets them share. It is retaken
    after the pods change by a twentieth, so a verdict holds between retakes.
    """

    def __init__(self) -> None:
        self._counts: Counter[TypicalKey] = Counter()
        self._mix: DemandMix = ()
        self._changes = 0  # pod changes since `_mix` was taken

    def count(self, key: TypicalKey, sign: int) -> None:
        self._counts[key] += sign
        if self._counts[key] <= 0:
            del self._counts[key]
        self._changes += 1

    def recount(self, keys: Sequence[TypicalKey]) -> None:
        """Count these pods afresh and take the mix now (their classes may have changed)."""
        self._counts = Counter(keys)
        self._mix, self._changes = _typical(self._counts), 0

    def mix(self) -> tuple[DemandMix, bool]:
        """The demand mix, and whether it was retaken by this call."""
        stale = self._changes > max(_MIX_MIN_CHANGES, sum(self._counts.values()) // 20)
        if not (stale or (self._changes and not self._mix)):
            return self._mix, False
        self._mix, self._changes = _typical(self._counts), 0
        return self._mix, True


def _typical(counts: Counter[TypicalKey]) -> DemandMix:
    """The most common (class, shape) pairs covering 95% of pods, weights summing to 1;
    ties go to the larger shapes first, so that the cut does not depend on arrival order."""
    total = sum(counts.values())
    kept: list[tuple[TypicalKey, int]] = []
    covered = 0
    for key, count in sorted(
        counts.items(),
        key=lambda item: (
            -item[1],
            -item[0][1][0].gpus,
            -item[0][1][0].milli,
            -item[0][1][1],
            item[0][0],
        ),
    ):
        if covered >= _MIX_COVERAGE * total:
            break
        kept.append((key, count))
        covered += count
    return tuple((workload, shape, count / covered) for (workload, shape), count in kept)


class ShapeLog:
    """A generation that changes whenever a node's shape may have, and the names of the
    nodes reshaped since a recent generation."""

    def __init__(self) -> None:
        self.generation = 0
        self._reshaped: list[str] = []  # one per generation since `_from`
        self._from = 0

    def changed(self, name: str | None) -> None:
        """A new generation: `name`'s shape changed, or (None) any node's may have."""
        self.generation += 1
        if name is None or len(self._reshaped) >= _RESHAPED_LOG:
            self._reshaped.clear()
            self._from = self.generation
        else:
            self._reshaped.append(name)

    def since(self, generation: int) -> Sequence[str] | None:
        """The nodes whose shape changed after `generation` (a name may repeat), or None
        when that is no longer known (too long ago, or a change to every node)."""
        if generation < self._from:
            return None
        return self._reshaped[generation - self._from :]


class RuleMemos:
    """Scratch dicts for the rules engine, by key (at most 1,024; then all dropped)."""

    def __init__(self) -> None:
        self._memos: dict[Hashable, dict[Hashable, object]] = {}

    def __bool__(self) -> bool:
        return bool(self._memos)

    def of(self, key: Hashable) -> dict[Hashable, object]:
        memo = self._memos.get(key)
        if memo is None:
            if len(self._memos) >= _MAX_MEMOS:
                self._memos.clear()
            memo = self._memos[key] = {}
        return memo

    def clear(self) -> None:
        self._memos.clear()
