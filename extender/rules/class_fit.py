"""Score: how well the node's class matches the pod's preferred classes.

Of the preferred classes the pod may use (its required classes, minimum class and
exclusions allow), the first scores 1, later ones down to 0.5; other classes stay at or
below 0.25, falling with their tier distance from the nearest preferred class, so that a
preferred class next to a few avoided pods still beats another class without them
(measured with `simulate`, docs/quality-notes.md). Preferences the pod cannot use do not
count, so a pod that requires its second choice scores 1 there.
"""

from __future__ import annotations

from collections.abc import Sequence

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules.base import ClusterView
from extender.state.features import NodeFeatures

NAME = "class_fit"
PREFERENCE_STEP = 0.5
"""How much less the last preferred class scores than the first."""
OTHER_CLASSES = 0.25
"""The most a class the pod does not prefer scores (one tier from a preferred class)."""


def applies(pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy) -> bool:
    return bool(pod.preferred)


def score(pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy) -> float:
    name, rank = node.gpu_class.name, node.gpu_class.rank
    if name is None or rank is None:
        return 0.0
    preferred = tuple(c for c in pod.preferred if c in pod.allowed) or pod.preferred
    if name in preferred:
        return 1.0 - PREFERENCE_STEP * preferred.index(name) / len(preferred)
    distance = min(abs(rank - policy.rank_of[p]) for p in preferred)
    return OTHER_CLASSES * (1.0 - distance / len(policy.class_names))
