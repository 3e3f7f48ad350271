"""A node's GPUs one by one, each with a free share (1000 = a whole free GPU)."""

from __future__ import annotations

from extender.policy.intent import WHOLE_GPU, GpuDemand


def pick_devices(free: list[int], demand: GpuDemand) -> tuple[int, ...] | None:
    """Devices a pod would get, or None when it does not fit.

    Whole-GPU pods take fully free devices; a shared pod takes the device it fits most
    tightly (best fit keeps whole GPUs free for pods that need them).
    """
    if demand.gpus == 0:
        return ()
    if demand.milli >= WHOLE_GPU:
        whole = [i for i, f in enumerate(free) if f >= WHOLE_GPU]
        return tuple(whole[: demand.gpus]) if len(whole) >= demand.gpus else None
    best: int | None = None
    for i, f in enumerate(free):
        if f >= demand.milli and (best is None or f < free[best]):
            best = i
    return None if best is None else (best,)


def place_anyway(free: list[int], demand: GpuDemand) -> tuple[int, ...]:
    """Devices to charge for a pod already bound: the fitting ones, else the emptiest.

    A bound pod is a fact even when our model says it does not fit (the device plugin chose
    differently, or allocatable shrank): charge it so the node reads as full, not free.
    """
    chosen = pick_devices(free, demand)
    if chosen is not None:
        return chosen
    by_free = sorted(range(len(free)), key=lambda i: -free[i])
    return tuple(by_free[: demand.gpus])


def charge(free: list[int], devices: tuple[int, ...], milli: int, sign: int) -> None:
    for i in devices:
        if i < len(free):
            free[i] -= sign * milli
