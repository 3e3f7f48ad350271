"""Node shapes: equal nodes share one interned shape; any fact a rule reads tells them apart."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest

from extender.policy import WorkloadName
from extender.state.features import NodeFeatures, node_features
from extender.state.shapes import ShapeTable
from tests.builders import PREFIX, example_policy, make_node

ZONE = "topology.kubernetes.io/zone"


def features(**labels: str) -> NodeFeatures:
    policy = example_policy()
    return node_features(make_node("n", "H100", 8, labels={ZONE: "a", **labels}), policy)


def test_nodes_with_equal_facts_share_one_shape_object() -> None:
    table = ShapeTable()
    policy = example_policy()
    one = node_features(make_node("one", "H100", 8), policy)
    two = node_features(make_node("two", "H100", 8), policy)
    assert table.shape_of(one, policy) is table.shape_of(two, policy)


def _free(f: NodeFeatures) -> None:
    f.free[0] = 500
    f.free[1] = 500  # same total free as one whole GPU used, other layout


def _free_whole(f: NodeFeatures) -> None:
    f.free[0] = 0


def _held(f: NodeFeatures) -> None:
    f.held[WorkloadName("batch")] = 1000


@pytest.mark.parametrize(
    "change",
    [
        _free,
        _held,
        lambda f: setattr(f, "dedicated_to", WorkloadName("interactive")),
        lambda f: setattr(f, "dedication_mode", "soft"),
        lambda f: setattr(f, "gpu_count", 4),
    ],
    ids=["device-layout", "held-by-workload", "dedicated-to", "dedication-mode", "gpu-count"],
)
def test_a_change_to_any_fact_a_rule_reads_makes_another_shape(
    change: Callable[[NodeFeatures], None],
) -> None:
    table = ShapeTable()
    policy = example_policy()
    base, changed = features(), features()
    if change is _free:
        _free_whole(base)
    change(changed)
    assert table.shape_of(base, policy) is not table.shape_of(changed, policy)


def test_labels_rules_read_make_another_shape_and_others_do_not() -> None:
    table = ShapeTable()
    policy = example_policy()  # interactive pods need nvidia.com/gpu.memory > 20000
    base = table.shape_of(features(), policy)
    assert table.shape_of(features(**{"nvidia.com/gpu.memory": "16384"}), policy) is not base
    assert table.shape_of(features(**{ZONE: "b"}), policy) is base  # zone unused here
    assert table.shape_of(features(team="search"), policy) is base
    assert table.shape_of(features(**{f"{PREFIX}dedicated": "batch"}), policy) is not base


def test_a_shape_no_node_uses_is_forgotten() -> None:
    table = ShapeTable()
    policy = example_policy()
    shape = table.shape_of(features(), policy)
    assert len(table) == 1
    del shape
    gc.collect()
    assert len(table) == 0
