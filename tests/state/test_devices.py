"""A node's GPUs one by one: which devices a pod gets, and charging them."""

from __future__ import annotations

import pytest

from extender.policy import GpuDemand
from extender.state import pick_devices
from extender.state.devices import charge, place_anyway


@pytest.mark.parametrize(
    ("free", "demand", "devices"),
    [
        ([1000, 1000, 1000], GpuDemand(2), (0, 1)),
        ([0, 1000, 500, 1000], GpuDemand(2), (1, 3)),
        ([0, 1000, 500], GpuDemand(2), None),
        ([1000], GpuDemand(0), ()),
        ([], GpuDemand(1), None),
        ([1000, 400, 700], GpuDemand(1, 300), (1,)),
        ([1000, 200, 700], GpuDemand(1, 300), (2,)),
        ([1000, 1000], GpuDemand(1, 300), (0,)),
        ([250, 250], GpuDemand(1, 300), None),
        ([300], GpuDemand(1, 300), (0,)),
    ],
    ids=[
        "whole-first-free",
        "whole-skips-partly-used",
        "whole-not-enough",
        "no-demand",
        "no-devices",
        "shared-best-fit",
        "shared-skips-too-small",
        "shared-ties-take-first",
        "shared-no-room",
        "shared-exact",
    ],
)
def test_pods_get_whole_free_devices_or_the_tightest_shared_one(
    free: list[int], demand: GpuDemand, devices: tuple[int, ...] | None
) -> None:
    assert pick_devices(free, demand) == devices


def test_a_bound_pod_that_does_not_fit_is_charged_to_the_emptiest_devices() -> None:
    free = [0, 500, 1000]

    devices = place_anyway(free, GpuDemand(2))
    charge(free, devices, 1000, +1)

    assert devices == (2, 1)
    assert free == [0, -500, 0]


def test_charging_and_uncharging_restores_the_devices() -> None:
    free = [1000, 1000]

    charge(free, (1,), 300, +1)
    assert free == [1000, 700]
    charge(free, (1,), 300, -1)
    assert free == [1000, 1000]


def test_charging_ignores_devices_a_node_no_longer_has() -> None:
    free = [1000]

    charge(free, (0, 3), 1000, +1)

    assert free == [0]
