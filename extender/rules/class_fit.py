"""Score: how well the node's class matches the pod's preferred classes.

The first preferred class scores 1, later ones down to 0.5; other classes stay below 0.5,
falling with their tier distance from the nearest preferred class.
"""

from __future__ import annotations

from collections.abc import Sequence

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules.base import ClusterView
from extender.state.features import NodeFeatures

NAME = "class_fit"


def applies(pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy) -> bool:
    return bool(pod.preferred)


def score(pod: PodIntent, node: NodeFeatures, cluster: ClusterView, policy: Policy) -> float:
    name, rank = node.gpu_class.name, node.gpu_class.rank
    if name is None or rank is None:
        return 0.0
    if name in pod.preferred:
        return 1.0 - 0.5 * pod.preferred.index(name) / len(pod.preferred)
    distance = min(abs(rank - policy.rank_of[p]) for p in pod.preferred)
    return 0.5 * (1.0 - distance / len(policy.class_names))
