"""What a rule returns, and the read-only view of the cluster rules may consult."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from extender.policy.compiled import ClassName
from extender.state.cache import ClassUsage, DomainUsage
from extender.state.rules_view import DemandMix


@dataclass(frozen=True, slots=True)
class Reject:
    """Why a node cannot take the pod; `resolvable` when evicting pods could change that."""

    rule: str
    reason: str
    resolvable: bool


class ClusterView(Protocol):
    """Cluster-wide aggregates a rule may read (ClusterCache provides them)."""

    def domain(self, key: str, value: str) -> DomainUsage: ...

    def replicas_of(self, owner: str) -> Mapping[str, int]: ...

    def class_usage(self, name: ClassName) -> ClassUsage: ...

    def in_flight_of(self, uid: str, name: ClassName) -> int: ...

    def rule_memo(self, key: Hashable) -> dict[Hashable, object]: ...

    @property
    def shape_generation(self) -> int: ...

    def shape_changes_since(self, generation: int) -> Sequence[str] | None: ...

    grouping_memo: object

    def demand_mix(self) -> DemandMix: ...


def clamp01(value: float) -> float:
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value
