"""A node's GPUs one by one, each with a free share (1000 = a whole free GPU), and which
workload classes hold a share of each."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType

from extender.policy.compiled import WorkloadName
from extender.policy.intent import WHOLE_GPU, GpuDemand

NO_DEVICES: frozenset[int] = frozenset()


def pick_devices(
    free: list[int], demand: GpuDemand, blocked: Collection[int] = NO_DEVICES
) -> tuple[int, ...] | None:
    """Devices a pod would get, or None when it does not fit.

    Whole-GPU pods take fully free devices; a shared pod takes the device it fits most
    tightly (best fit keeps whole GPUs free for pods that need them), never one in
    `blocked` (shared with a workload class it is kept apart from).
    """
    if demand.gpus == 0:
        return ()
    if demand.milli >= WHOLE_GPU:
        whole = [i for i, f in enumerate(free) if f >= WHOLE_GPU]
        return tuple(whole[: demand.gpus]) if len(whole) >= demand.gpus else None
    best: int | None = None
    for i, f in enumerate(free):
        if f >= demand.milli and (best is None or f < free[best]) and i not in blocked:
            best = i
    return None if best is None else (best,)


def place_anyway(
    free: list[int], demand: GpuDemand, blocked: Collection[int] = NO_DEVICES
) -> tuple[int, ...]:
    """Devices to charge for a pod already bound: the fitting ones, else the emptiest.

    A bound pod is a fact even when our model says it does not fit (the device plugin chose
    differently, or allocatable shrank): charge it so the node reads as full, not free.
    """
    chosen = pick_devices(free, demand, blocked)
    if chosen is None and blocked:
        chosen = pick_devices(free, demand)
    if chosen is not None:
        return chosen
    by_free = sorted(range(len(free)), key=lambda i: -free[i])
    return tuple(by_free[: demand.gpus])


def charge(free: list[int], devices: tuple[int, ...], milli: int, sign: int) -> None:
    for i in devices:
        if i < len(free):
            free[i] -= sign * milli


DeviceHolders = list[Mapping[WorkloadName, int]]
"""Per device: milli-GPU each workload class holds on it."""

NO_HOLDERS: Mapping[WorkloadName, int] = MappingProxyType({})
"""What a device nobody holds a share of has: one object for all (15,000 nodes of 8 GPUs
would hold 120,000 empty dicts)."""


def no_holders(devices: int) -> DeviceHolders:
    return [NO_HOLDERS] * devices


def hold(
    holders: DeviceHolders, devices: tuple[int, ...], workload: WorkloadName, milli: int, sign: int
) -> None:
    for i in devices:
        if i < len(holders):
            held = dict(holders[i])  # a few workload classes at most
            left = held.get(workload, 0) + sign * milli
            if left > 0:
                held[workload] = left
            else:
                held.pop(workload, None)
            holders[i] = held or NO_HOLDERS


def apart_devices(
    holders: Sequence[Mapping[WorkloadName, int]], apart: frozenset[WorkloadName]
) -> frozenset[int]:
    """Devices holding a share of a workload class in `apart`: off limits to a sharing pod."""
    if not apart:
        return NO_DEVICES
    return frozenset(i for i, held in enumerate(holders) if held and not apart.isdisjoint(held))
