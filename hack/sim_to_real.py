"""`make sim-to-real`: is the simulator's `extender-profile` what the real scheduler does?

A slice of the openb default trace (nodes sampled with their GPU models, CPU and memory;
pods in trace order, until they ask for `--fill` times the slice's GPUs; no departures)
goes through the real kube-scheduler with the shipped KubeSchedulerConfiguration and
`gpuclass-extender serve` with the openb policy on the local control plane, one pod at a
time (a pod that fits nowhere is deleted, as the paper's protocol drops it), and through
the simulator's model on the same slice, seeds 42..51. Both are measured by the same code:
the real placements are replayed into the simulator's cluster and observed like the
model's (`extender/simulate/separation.py`).

GPU-sharing pods ask for one `nvidia.com/gpu` and carry our `gpu-milli` annotation, so the
real scheduler counts one whole unit for each; the model counts the same
(`Cluster(whole_units=True)`). Writes a Markdown report with the commit and date.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import yaml

HACK = Path(__file__).resolve().parent
REPO = HACK.parent
sys.path.insert(0, str(HACK))

import localcluster  # noqa: E402

from extender.policy.compiled import Policy  # noqa: E402
from extender.policy.loader import load_policy_file  # noqa: E402
from extender.simulate.cluster import BoolArray, Cluster, PodRequest, pod_requests  # noqa: E402
from extender.simulate.extender_model import (  # noqa: E402
    ExtenderScheduler,
    trace_pod,
    trace_workload,
)
from extender.simulate.models import model_factory  # noqa: E402
from extender.simulate.protocol import Placement, Scheduler  # noqa: E402
from extender.simulate.reference import first_whole_gpus, tightest_gpu  # noqa: E402
from extender.simulate.separation import SeparationObserver  # noqa: E402
from extender.simulate.trace import NodeTable, PodTable, read_nodes, read_pods  # noqa: E402

POLICY = REPO / "manifests" / "examples" / "openb-policy.yaml"
SCHEDULER_CONFIG = REPO / "manifests" / "second-scheduler" / "scheduler-config.yaml"
DATA = REPO / "data" / "openb"
NAMESPACE = "trace"
PREFIX = "gpuclass.example.io/"
MODEL_SEEDS = tuple(range(42, 52))
# Fixed before any run (issue: "within 1 point, 3 points and 2 points").
TOLERANCE = {"unallocated": 1.0, "colocated": 3.0, "preferred": 2.0}


@dataclass(frozen=True, slots=True)
class Slice:
    nodes: NodeTable
    pods: PodTable  # in trace order

    def cluster(self) -> Cluster:
        return Cluster.from_nodes(self.nodes, whole_units=True)


@dataclass(frozen=True, slots=True)
class Outcome:
    unallocated: float
    colocated: float
    gpu_colocated: float
    preferred: float
    placed: int

    @classmethod
    def median(cls, outcomes: list[Outcome]) -> Outcome:
        return cls(
            *(
                statistics.median(getattr(o, f) for o in outcomes)
                for f in ("unallocated", "colocated", "gpu_colocated", "preferred", "placed")
            )
        )


def take_slice(node_count: int, fill: float, max_pods: int, seed: int) -> Slice:
    """`node_count` nodes drawn at random; the trace's pods in creation order until they ask
    for `fill` x the nodes' GPUs (or `max_pods`)."""
    nodes = read_nodes(DATA / "openb_node_list_gpu_node.csv")
    pods = read_pods(DATA / "openb_pod_list_default.csv")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(nodes), size=node_count, replace=False))
    picked = NodeTable(
        names=tuple(nodes.names[i] for i in chosen),
        cpu_milli=nodes.cpu_milli[chosen],
        memory_mib=nodes.memory_mib[chosen],
        gpus=nodes.gpus[chosen],
        models=tuple(nodes.models[i] for i in chosen),
    )
    order = np.argsort(pods.creation_time, kind="stable")
    demand = np.cumsum(pods.total_gpu_milli[order])
    target = fill * int(picked.gpus.sum()) * 1000
    count = min(max_pods, int(np.searchsorted(demand, target)) + 1, len(order))
    return Slice(picked, pods.take(order[:count]))


def measure(piece: Slice, scheduler: Scheduler, policy: Policy, seed: int) -> Outcome:
    """Offer the slice's pods in order to `scheduler`; our measures of the result.

    As the paper's protocol (`protocol.replay`), except that a `Recorded` scheduler is told
    which pod it is asked about, since it is asked only about pods that fit somewhere.
    """
    cluster = piece.cluster()
    observer = SeparationObserver(scheduler, cluster, policy)
    rng = np.random.default_rng([seed, 1])
    placed = 0
    for position, pod in enumerate(pod_requests(piece.pods)):
        if isinstance(scheduler, Recorded):
            scheduler.position = position
        feasible = cluster.feasible(pod)
        if not feasible.any():
            if isinstance(scheduler, Recorded) and scheduler.decisions[position] is not None:
                scheduler.disagreements += 1  # placed for real where our books say no
            continue
        choice = observer.decide(cluster, pod, feasible, rng)
        if choice is not None:
            cluster.place(choice.node, choice.gpus, pod)
            placed += 1
    separation = observer.outcome()
    return Outcome(
        unallocated=100.0 * (1 - cluster.allocated_gpu_milli / cluster.gpu_capacity_milli),
        colocated=separation.colocated_pct,
        gpu_colocated=separation.gpu_colocated_pct,
        preferred=separation.preferred_pct,
        placed=placed,
    )


def model_outcome(piece: Slice, policy: Policy, seed: int) -> Outcome:
    cluster = piece.cluster()
    rng = np.random.default_rng([seed, 1])
    scheduler = model_factory("extender-profile", policy)(cluster, piece.pods, rng)
    return measure(piece, scheduler, policy, seed)


Decision = tuple[str, tuple[int, ...]] | None
"""Where the real scheduler bound a pod and the GPUs our bind named, or None: it failed."""


class Recorded:
    """What the real scheduler decided, replayed pod by pod."""

    name = "real"

    def __init__(self, decisions: list[Decision], cluster: Cluster) -> None:
        self.decisions = decisions
        self.index = {name: i for i, name in enumerate(cluster.names)}
        self.position = 0
        self.disagreements = 0

    def decide(
        self, cluster: Cluster, pod: PodRequest, feasible: BoolArray, rng: np.random.Generator
    ) -> Placement | None:
        decision = self.decisions[self.position]
        if decision is None:
            return None
        node = self.index[decision[0]]
        if not feasible[node]:
            self.disagreements += 1
            return None
        gpus = decision[1]
        if len(gpus) != pod.num_gpu or any(cluster.gpu_free[node, g] < pod.gpu_milli for g in gpus):
            # Whole GPUs (the device plugin's choice, not ours), or a share without a name.
            gpus = (
                (tightest_gpu(cluster, node, pod.gpu_milli),)
                if pod.is_sharing
                else first_whole_gpus(cluster, node, pod.num_gpu)
            )
        return Placement(node, gpus)


def pod_manifest(row: int, request: PodRequest, policy: Policy) -> dict[str, Any]:
    """The real pod of a trace pod: the model's own Pod object (its requests, share and
    required classes), with its workload class as a label: the trace's qos maps to a
    workload through priorityClassName in the policy, and PriorityClass names must be lower
    case, so no real PriorityClass can carry it."""
    name = f"p{row:05d}"
    modelled = trace_pod(request, name, policy)
    resources = msgspec.to_builtins(modelled.spec.containers[0].resources)  # type: ignore[index]
    labels = {f"{PREFIX}workload": str(trace_workload(request, policy))}
    annotations = dict(modelled.metadata.annotations or {})
    return localcluster.pod_manifest(name, NAMESPACE, resources, labels, annotations)


def real_decisions(
    piece: Slice, policy: Policy, workdir: Path, timeout: float = 20
) -> list[Decision]:
    """Each pod of the slice through the real scheduler and extender, one at a time."""
    cluster = localcluster.LocalCluster(state_dir=workdir / "cluster")
    cluster.start()
    extender = localcluster.ExtenderProcess(
        kubeconfig=cluster.kubeconfig, policy=POLICY, log=workdir / "extender.log"
    )
    try:
        for i, name in enumerate(piece.nodes.names):
            localcluster.apply_fake_node(
                cluster.kubeconfig,
                name,
                {"nvidia.com/gpu.product": piece.nodes.models[i]},
                gpus=int(piece.nodes.gpus[i]),
                cpu=f"{int(piece.nodes.cpu_milli[i])}m",
                memory=f"{int(piece.nodes.memory_mib[i])}Mi",
                pods="10000",
            )
        cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        extender.start()
        config = yaml.safe_load(SCHEDULER_CONFIG.read_text())
        config["extenders"][0]["urlPrefix"] = f"http://127.0.0.1:{extender.port}"
        config_path = workdir / "scheduler-config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        cluster.restart_scheduler(config_path)
        decisions = []
        for row, request in enumerate(pod_requests(piece.pods)):
            manifest = pod_manifest(row, request, policy)
            cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", manifest)
            decisions.append(_settle(cluster, manifest["metadata"]["name"], timeout))
        return decisions
    finally:
        extender.stop()
        cluster.stop()


def _settle(cluster: localcluster.LocalCluster, name: str, timeout: float) -> Decision:
    """Where the pod was bound and the GPUs our bind named on it, or None: it failed."""
    pod = cluster.settle(NAMESPACE, name, timeout)
    if pod is None:
        return None
    named = (pod["metadata"].get("annotations") or {}).get(f"{PREFIX}gpu-devices", "")
    return pod["spec"]["nodeName"], tuple(int(g) for g in named.split(",") if g)


def agreement(piece: Slice, decisions: list[Decision], policy: Policy) -> tuple[int, int]:
    """Of the pods the real scheduler placed, how many it put on a node the model
    scores highest in the same state (the real placements so far): (agreeing, all)."""
    cluster = piece.cluster()
    rng = np.random.default_rng(0)
    model = model_factory("extender-profile", policy)(cluster, piece.pods, rng)
    assert isinstance(model, ExtenderScheduler)
    agreeing = placed = 0
    for position, pod in enumerate(pod_requests(piece.pods)):
        decision = decisions[position]
        if decision is None or not cluster.fits_on(node := model.index_of(decision[0]), pod):
            continue
        uid = f"real-{position}"
        nodes, scores = model.totals(cluster, pod, uid, cluster.feasible(pod))
        placed += 1
        agreeing += node in nodes[scores == scores.max()]
        model.cache.upsert_pod(trace_pod(pod, uid, policy, node=decision[0]))
        record = model.cache.pod(uid)
        cluster.place(node, record.devices if record else (), pod)
    return agreeing, placed


@dataclass(frozen=True, slots=True)
class Comparison:
    piece: Slice
    real: Outcome
    disagreements: int
    """Real placements the simulator's books call impossible."""
    models: list[Outcome]
    """The model, one outcome per seed."""
    seconds: float
    agreement: tuple[int, int]
    """Pods the real scheduler put where the model scores highest too, of all placed."""

    @property
    def model(self) -> Outcome:
        return Outcome.median(self.models)


def compare(node_count: int, fill: float, max_pods: int, seed: int, workdir: Path) -> Comparison:
    """The slice through the real scheduler and extender, and through the model."""
    policy = load_policy_file(POLICY)
    piece = take_slice(node_count, fill, max_pods, seed)
    started = time.monotonic()
    decisions = real_decisions(piece, policy, workdir)
    seconds = time.monotonic() - started
    recorded = Recorded(decisions, piece.cluster())
    real = measure(piece, recorded, policy, seed)
    models = [model_outcome(piece, policy, s) for s in MODEL_SEEDS]
    agreeing = agreement(piece, decisions, policy)
    return Comparison(piece, real, recorded.disagreements, models, seconds, agreeing)


def diverged(real: Outcome, model: Outcome) -> dict[str, float]:
    """The measures whose real and model figures differ by more than the tolerance."""
    gaps = {name: abs(getattr(real, name) - getattr(model, name)) for name in TOLERANCE}
    return {name: gap for name, gap in gaps.items() if not gap <= TOLERANCE[name]}


def report(found: Comparison, argv: str) -> str:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    piece, real, model = found.piece, found.real, found.model
    rows = [
        ("unallocated GPUs at the end, %", "unallocated"),
        ("interactive GPUs on nodes with batch GPUs, %", "colocated"),
        ("interactive GPUs on GPUs batch pods share, %", "gpu_colocated"),
        ("interactive pods on a preferred class while one had room, %", "preferred"),
        ("pods placed", "placed"),
    ]
    lines = [
        "# Simulator against the real scheduler",
        "",
        "Generated by `hack/sim_to_real.py`; rerun instead of editing.",
        "",
        f"- command: `{argv}`",
        f"- commit: {commit}; finished {now}",
        f"- slice: {len(piece.nodes)} nodes ({int(piece.nodes.gpus.sum())} GPUs) of the openb "
        f"default trace, its first {len(piece.pods)} pods in creation order "
        f"({int(piece.pods.total_gpu_milli.sum()) / 1000:.0f} GPUs asked); real run "
        f"{found.seconds:.0f} s; model: median [min-max] of seeds "
        f"{MODEL_SEEDS[0]}..{MODEL_SEEDS[-1]}",
        f"- real placements the simulator's books call impossible: {found.disagreements}",
        f"- pods the real scheduler placed on a node the model scores highest in the same "
        f"state (the real placements so far): {found.agreement[0]} of {found.agreement[1]}",
        "",
        "| measure | real kube-scheduler + serve | model | difference | tolerance |",
        "|---|---|---|---|---|",
    ]
    for label, field in rows:
        r, m = getattr(real, field), getattr(model, field)
        seeds = [getattr(o, field) for o in found.models]
        tolerance = TOLERANCE.get(field)
        verdict = (
            "-"
            if tolerance is None
            else f"{tolerance:g} " + ("met" if abs(r - m) <= tolerance else "**exceeded**")
        )
        lines.append(
            f"| {label} | {r:.2f} | {m:.2f} [{min(seeds):.2f}-{max(seeds):.2f}] "
            f"| {r - m:+.2f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=240)
    parser.add_argument("--fill", type=float, default=1.2)
    parser.add_argument("--max-pods", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42, help="which nodes the slice draws")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 when they diverge")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gpuclass-sim-to-real-"))
    found = compare(args.nodes, args.fill, args.max_pods, args.seed, workdir)
    text = report(found, " ".join(["python", *sys.argv]))
    print(text)
    if args.report:
        args.report.write_text(text)
    gaps = diverged(found.real, found.model)
    if gaps:
        print(f"diverged: {gaps}", file=sys.stderr)
    return 1 if args.check and gaps else 0


if __name__ == "__main__":
    sys.exit(main())
