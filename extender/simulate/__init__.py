"""Trace-replay simulator: the openb trace, a vectorised cluster, the FGD paper's protocol.

trace.py          openb CSVs -> typed numpy tables, errors with file, line and column
cluster.py        free CPU, memory and per-GPU share of every node; feasibility; placement
protocol.py       Scheduler interface, inflation to 130%, replay, allocation curve
fragmentation.py  FGD's typical pods and expected-fragment measure, vectorised
reference.py      Random, BestFit, DotProd, GpuPacking, GpuClustering, FGD

Layer: beside `server`, above `rules`; it imports nothing from the extender's other layers
yet, so that our own rules can later be plugged in as one more `Scheduler`.
"""

from extender.simulate.cluster import Cluster, PodRequest, pod_requests
from extender.simulate.protocol import (
    PAPER_INFLATION,
    PAPER_SEEDS,
    NodeScorer,
    Placement,
    Replay,
    Scheduler,
    SchedulerFactory,
    SeedResult,
    Spread,
    allocation_curve,
    inflate,
    replay,
    run_seed,
    unallocated_at,
)
from extender.simulate.reference import POLICY_NAMES, REFERENCE_POLICIES, reference_policy
from extender.simulate.trace import NodeTable, PodTable, TraceError, read_nodes, read_pods

__all__ = [
    "PAPER_INFLATION",
    "PAPER_SEEDS",
    "POLICY_NAMES",
    "REFERENCE_POLICIES",
    "Cluster",
    "NodeScorer",
    "NodeTable",
    "Placement",
    "PodRequest",
    "PodTable",
    "Replay",
    "Scheduler",
    "SchedulerFactory",
    "SeedResult",
    "Spread",
    "TraceError",
    "allocation_curve",
    "inflate",
    "pod_requests",
    "read_nodes",
    "read_pods",
    "reference_policy",
    "replay",
    "run_seed",
    "unallocated_at",
]
