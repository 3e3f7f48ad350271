"""Builders for tiny simulated clusters and pods, and the shipped openb data's location."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from extender.simulate import Cluster, PodRequest
from extender.simulate.trace import MISSING_TIME, PodTable

REPO = Path(__file__).resolve().parents[2]
OPENB = REPO / "data" / "openb"
NODE_FILE = OPENB / "openb_node_list_gpu_node.csv"


def openb_pods(trace: str = "default") -> Path:
    return OPENB / f"openb_pod_list_{trace}.csv"


def make_cluster(*nodes: tuple[str, int], cpu: int = 64_000, memory: int = 262_144) -> Cluster:
    """Nodes as (GPU model, GPU count), each with the same CPU and memory."""
    return Cluster(
        names=[f"node-{i}" for i in range(len(nodes))],
        cpu_milli=[cpu] * len(nodes),
        memory_mib=[memory] * len(nodes),
        gpus=[count for _, count in nodes],
        models=[model for model, _ in nodes],
    )


def share(
    milli: int, cpu: int = 4_000, memory: int = 8_192, spec: Sequence[str] = ()
) -> PodRequest:
    """A pod sharing one GPU."""
    return PodRequest(cpu, memory, 1, milli, tuple(spec))


def whole(
    gpus: int, cpu: int = 8_000, memory: int = 16_384, spec: Sequence[str] = ()
) -> PodRequest:
    """A pod taking `gpus` whole GPUs."""
    return PodRequest(cpu, memory, gpus, 1000, tuple(spec))


def cpu_only(cpu: int = 8_000, memory: int = 16_384) -> PodRequest:
    return PodRequest(cpu, memory)


def occupy(cluster: Cluster, node: int, free: Sequence[int], cpu_free: int | None = None) -> None:
    """Set node's free GPU shares (and CPU) by placing filler pods on it."""
    for gpu, left in enumerate(free):
        if left < 1000:
            cluster.place(node, (gpu,), PodRequest(0, 0, 1, 1000 - left))
    if cpu_free is not None:
        used = int(cluster.cpu_free[node]) - cpu_free
        cluster.place(node, (), PodRequest(used, 0))


def pod_table(pods: Sequence[PodRequest]) -> PodTable:
    """A trace made of these pods (names pod-0, pod-1, ...)."""
    size = len(pods)
    missing = np.full(size, MISSING_TIME, dtype=np.int64)
    return PodTable(
        names=tuple(f"pod-{i}" for i in range(size)),
        cpu_milli=np.array([p.cpu_milli for p in pods], dtype=np.int64),
        memory_mib=np.array([p.memory_mib for p in pods], dtype=np.int64),
        num_gpu=np.array([p.num_gpu for p in pods], dtype=np.int64),
        gpu_milli=np.array([p.gpu_milli for p in pods], dtype=np.int64),
        gpu_specs=tuple(p.gpu_spec for p in pods),
        qos=("LS",) * size,
        phases=("Running",) * size,
        creation_time=missing,
        deletion_time=missing.copy(),
        scheduled_time=missing.copy(),
    )
