"""The rules' scratch the cache keeps: which nodes changed shape, and the typical pods."""

from __future__ import annotations

from extender.policy import WorkloadName
from extender.policy.intent import GpuDemand
from extender.state.rules_view import ShapeLog, TypicalKey, TypicalPods

BATCH = WorkloadName("batch")
ONE: TypicalKey = (BATCH, (GpuDemand(1, 1000), 4000))
TWO: TypicalKey = (BATCH, (GpuDemand(2, 1000), 8000))


def test_the_shape_log_names_the_nodes_changed_since_a_generation() -> None:
    log = ShapeLog()
    log.changed("a")
    seen = log.generation
    log.changed("b")
    log.changed("a")

    assert list(log.since(seen) or ()) == ["b", "a"]
    assert list(log.since(log.generation) or ()) == []


def test_the_shape_log_does_not_know_what_changed_before_a_change_to_every_node() -> None:
    # A grouping made before it must be rebuilt: an empty answer would keep it as it was.
    log = ShapeLog()
    log.changed("a")
    seen = log.generation
    log.changed(None)
    log.changed("b")

    assert log.since(seen) is None
    assert list(log.since(log.generation - 1) or ()) == ["b"]


def test_the_shape_log_forgets_past_4096_changes() -> None:
    log = ShapeLog()
    seen = log.generation
    for i in range(4097):
        log.changed(f"n{i}")

    assert log.since(seen) is None
    assert list(log.since(log.generation) or ()) == []


def test_the_mix_is_retaken_after_a_twentieth_of_the_pods_change() -> None:
    pods = TypicalPods()
    for _ in range(1000):
        pods.count(ONE, +1)
    assert pods.mix() == (((BATCH, ONE[1], 1.0),), True)

    for _ in range(52):  # a twentieth of the 1,052 pods: not yet
        pods.count(TWO, +1)
    assert pods.mix() == (((BATCH, ONE[1], 1.0),), False)

    pods.count(TWO, +1)
    mix, retaken = pods.mix()
    assert retaken
    assert [shape for _, shape, _ in mix] == [ONE[1], TWO[1]]


def test_recounting_takes_the_mix_at_once() -> None:
    pods = TypicalPods()
    for _ in range(100):
        pods.count(ONE, +1)
    pods.mix()

    pods.recount([TWO])

    assert pods.mix() == (((BATCH, TWO[1], 1.0),), False)
