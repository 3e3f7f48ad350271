"""Node shapes: everything the rules read of a node, interned, so equal nodes share one.

Rules are pure functions of (pod, node features, cluster aggregates, policy). Two nodes
with the same shape get the same verdict and score for any pod, so the engine evaluates
each rule once per shape in a request instead of once per node. The shape must therefore
hold every node fact a rule reads; tests/rules/test_engine_memo.py checks the memoised
engine against the per-node one.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable

from extender.policy.compiled import Policy
from extender.policy.intent import WHOLE_GPU
from extender.state.features import HOSTNAME_KEY, NodeFeatures


class NodeShape:
    """An interned shape: compare and hash by identity."""

    __slots__ = ("__weakref__", "key")

    def __init__(self, key: Hashable) -> None:
        self.key = key


def shape_key(features: NodeFeatures, policy: Policy) -> Hashable:
    # A domain the node alone makes up (its hostname, or a key whose label it lacks) is
    # described by the node's own usage, already in the key; shared domains by their name.
    shared_domains = tuple(
        sorted(
            (key, value)
            for key, value in features.domains.items()
            if key != HOSTNAME_KEY and key in features.labels
        )
    )
    return (
        features.gpu_class.name,
        features.gpu_class.product,
        features.gpu_count,
        # Which classes share a partly used GPU matters to sharing pods kept apart from them.
        tuple(
            sorted(
                (free, tuple(sorted(held)) if 0 < free < WHOLE_GPU else ())
                for free, held in zip(features.free, features.holders, strict=True)
            )
        ),
        tuple(sorted(features.held.items())),
        features.dedicated_to,
        features.dedication_mode,
        tuple(features.attribute_labels.get(key) for key in policy.attribute_keys),
        shared_domains,
        features.cpu_room if policy.reads_cpu else None,
    )


class ShapeTable:
    """Interns shapes; a shape no node uses any more is dropped by the garbage collector."""

    def __init__(self) -> None:
        self._interned: weakref.WeakValueDictionary[Hashable, NodeShape] = (
            weakref.WeakValueDictionary()
        )

    def shape_of(self, features: NodeFeatures, policy: Policy) -> NodeShape:
        key = shape_key(features, policy)
        shape = self._interned.get(key)
        if shape is None:
            shape = NodeShape(key)
            self._interned[key] = shape
        return shape

    def __len__(self) -> int:
        return len(self._interned)
