"""`make spread`: do one owner's interactive replicas spread as the policy asks (issue 16,
goal 4)? Ours against the cluster without us, on the real control plane.

The openb trace carries no owners, so this runs a fleet and workloads of its own: the base
policy's classes on GPU Feature Discovery labels, interactive Deployments (pods owned by a
ReplicaSet, which kube-scheduler's default topology spread reads) and batch Jobs, created
one pod at a time in an order drawn per seed. Each seed runs twice on a fresh control
plane: through kube-scheduler's default profile alone, and through the shipped
KubeSchedulerConfiguration with `gpuclass-extender serve` and `manifests/base/policy.yaml`
(interactive: `packing: spread`, preferred premium then standard, kept apart from batch).

The measure is the largest share of one owner's bound replicas on a single node; the
least possible is ceil(replicas / nodes) / replicas over the nodes the owner's classes
allow. Writes a Markdown report with the commit and date.
"""

from __future__ import annotations

import argparse
import datetime
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HACK = Path(__file__).resolve().parent
REPO = HACK.parent
sys.path.insert(0, str(HACK))

import localcluster  # noqa: E402

POLICY = REPO / "manifests" / "base" / "policy.yaml"
SCHEDULER_CONFIG = REPO / "manifests" / "second-scheduler" / "scheduler-config.yaml"
NAMESPACE = "spread"
PREFIX = "gpuclass.example.io/"
SEEDS = tuple(range(42, 47))

# name, GPU (localcluster.GFD_PRODUCTS), GPUs, class in the base policy
FLEET: tuple[tuple[str, str, int, str], ...] = (
    ("h100-0", "H100", 8, "premium"),
    ("h100-1", "H100", 8, "premium"),
    ("h100-2", "H100", 8, "premium"),
    ("a100-0", "A100-40GB", 8, "standard"),
    ("a100-1", "A100-40GB", 8, "standard"),
    ("l40s-0", "L40S", 4, "standard"),
    ("l40s-1", "L40S", 4, "standard"),
    ("t4-0", "T4", 4, "economy"),
    ("t4-1", "T4", 4, "economy"),
    ("t4-2", "T4", 4, "economy"),
)
INTERACTIVE_CLASSES = frozenset({"premium", "standard"})  # its minClass is standard


@dataclass(frozen=True, slots=True)
class Owner:
    name: str
    kind: str  # ReplicaSet: interactive; Job: batch
    replicas: int
    gpus: int


# 24 interactive and 28 batch GPUs on a 60-GPU fleet.
OWNERS: tuple[Owner, ...] = (
    Owner("chat", "ReplicaSet", 6, 1),
    Owner("embed", "ReplicaSet", 4, 1),
    Owner("rerank", "ReplicaSet", 3, 2),
    Owner("vision", "ReplicaSet", 8, 1),
    Owner("train", "Job", 3, 4),
    Owner("score", "Job", 8, 1),
    Owner("finetune", "Job", 1, 8),
)


def arrival_order(seed: int) -> list[tuple[Owner, int]]:
    """Every pod (owner, replica index), shuffled by `seed`; one owner's replicas keep
    their order, as a ReplicaSet creates them."""
    pods = [(owner, i) for owner in OWNERS for i in range(owner.replicas)]
    random.Random(seed).shuffle(pods)
    return pods


def largest_share(placements: Mapping[str, str]) -> float:
    """The largest share of these replicas (pod -> node) on a single node."""
    if not placements:
        return 0.0
    return max(Counter(placements.values()).values()) / len(placements)


def least_share(replicas: int, nodes: int) -> float:
    """The least largest share `replicas` can have over `nodes` nodes."""
    return math.ceil(replicas / nodes) / replicas


@dataclass(frozen=True, slots=True)
class Run:
    scheduler: str
    seed: int
    bound: dict[str, tuple[Owner, str]]  # pod -> (owner, node)
    pending: int

    def share(self, owner: Owner) -> float:
        return largest_share({p: n for p, (o, n) in self.bound.items() if o == owner})

    def on_premium(self) -> float:
        """Interactive pods on premium nodes, %."""
        premium = {name for name, _, _, cls in FLEET if cls == "premium"}
        interactive = [n for o, n in self.bound.values() if o.kind == "ReplicaSet"]
        return 100.0 * sum(n in premium for n in interactive) / len(interactive)

    def colocated(self) -> float:
        """Interactive GPUs on nodes that also hold batch GPUs, % of interactive GPUs."""
        batch_nodes = {n for o, n in self.bound.values() if o.kind != "ReplicaSet"}
        interactive = [(o.gpus, n) for o, n in self.bound.values() if o.kind == "ReplicaSet"]
        total = sum(g for g, _ in interactive)
        return 100.0 * sum(g for g, n in interactive if n in batch_nodes) / total


def pod_for(owner: Owner, index: int, scheduler: str, uids: Mapping[str, str]) -> dict[str, Any]:
    resources = {
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": str(owner.gpus)},
        "limits": {"nvidia.com/gpu": str(owner.gpus)},
    }
    labels = {"app": owner.name}
    if owner.kind == "ReplicaSet":
        labels[f"{PREFIX}workload"] = "interactive"  # a Job's pods are batch by owner kind
    manifest = localcluster.pod_manifest(
        f"{owner.name}-{index}", NAMESPACE, resources, labels, scheduler=scheduler
    )
    api = "apps/v1" if owner.kind == "ReplicaSet" else "batch/v1"
    manifest["metadata"]["ownerReferences"] = [
        {"apiVersion": api, "kind": owner.kind, "name": owner.name, "uid": uids[owner.name],
         "controller": True}
    ]  # fmt: skip
    return manifest


def create_owners(cluster: localcluster.LocalCluster) -> dict[str, str]:
    """The ReplicaSets (scaled to 0: no controller-manager runs here; kube-scheduler reads
    their selectors to spread the pods) and the Jobs' uids; returns owner -> uid."""
    uids = {}
    for owner in OWNERS:
        if owner.kind != "ReplicaSet":
            uids[owner.name] = str(uuid.uuid4())
            continue
        template = {
            "metadata": {"labels": {"app": owner.name}},
            "spec": {"containers": [{"name": "main", "image": "example/app:1"}]},
        }
        created = cluster.request(
            "POST",
            f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets",
            {
                "metadata": {"name": owner.name},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": owner.name}},
                    "template": template,
                },
            },
        )
        uids[owner.name] = created["metadata"]["uid"]
    return uids


def default_config(workdir: Path) -> Path:
    path = workdir / "default-scheduler.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "profiles": [{"schedulerName": "default-scheduler"}],
            }
        )
    )
    return path


def run(scheduler: str, seed: int, workdir: Path, timeout: float = 20) -> Run:
    """Every pod of `arrival_order(seed)` through `scheduler` ("default" or "ours") on a
    fresh control plane, one at a time."""
    here = workdir / f"{scheduler}-{seed}"
    here.mkdir(parents=True)
    cluster = localcluster.LocalCluster(state_dir=here / "cluster")
    cluster.start()
    extender = localcluster.ExtenderProcess(
        kubeconfig=cluster.kubeconfig, policy=POLICY, log=here / "extender.log"
    )
    try:
        for name, product, gpus, _ in FLEET:
            localcluster.apply_fake_node(
                cluster.kubeconfig, name, localcluster.gfd_labels(product, gpus), gpus=gpus,
                cpu="96", memory="1Ti",
            )  # fmt: skip
        cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        uids = create_owners(cluster)
        if scheduler == "ours":
            extender.start()
            config = yaml.safe_load(SCHEDULER_CONFIG.read_text())
            config["extenders"][0]["urlPrefix"] = f"http://127.0.0.1:{extender.port}"
            config_path = here / "scheduler-config.yaml"
            config_path.write_text(yaml.safe_dump(config))
            scheduler_name = "gpu-scheduler"
        else:
            config_path = default_config(here)
            scheduler_name = "default-scheduler"
        cluster.restart_scheduler(config_path)
        bound: dict[str, tuple[Owner, str]] = {}
        pending = 0
        for owner, index in arrival_order(seed):
            manifest = pod_for(owner, index, scheduler_name, uids)
            name = manifest["metadata"]["name"]
            cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", manifest)
            pod = cluster.settle(NAMESPACE, name, timeout)
            if pod is None:
                pending += 1
            else:
                bound[name] = (owner, pod["spec"]["nodeName"])
        return Run(scheduler, seed, bound, pending)
    finally:
        extender.stop()
        cluster.stop()


def _spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    low, middle, high = (
        fmt.format(v) for v in (min(values), statistics.median(values), max(values))
    )
    return f"{middle} [{low}-{high}]"


def report(runs: Sequence[Run], argv: str, seconds: float) -> str:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    by = {s: [r for r in runs if r.scheduler == s] for s in ("default", "ours")}
    allowed = sum(1 for *_, cls in FLEET if cls in INTERACTIVE_CLASSES)
    premium = sum(1 for *_, cls in FLEET if cls == "premium")
    lines = [
        "# Interactive replicas: spread per owner",
        "",
        "Generated by `hack/spread_report.py`; rerun instead of editing.",
        "",
        f"- command: `{argv}`",
        f"- commit: {commit}; finished {now}; took {seconds:.0f} s",
        f"- fleet: {', '.join(f'{n} ({p} x{g}, {c})' for n, p, g, c in FLEET)}; "
        f"policy `manifests/base/policy.yaml`",
        "- workloads: "
        + ", ".join(f"{o.name} ({o.kind}, {o.replicas} x {o.gpus} GPU)" for o in OWNERS)
        + "; pods created one at a time in an order drawn per seed",
        f"- seeds {SEEDS[0]}..{SEEDS[-1]}, each on a fresh control plane: `default` is "
        "kube-scheduler's default profile alone, `ours` the shipped configuration with "
        "`serve`; median [min-max] over the seeds",
        "- verdict, fixed before any run: ours at most default's median for every owner",
        "",
        "Largest share of one owner's bound replicas on a single node; the least possible "
        f"over the {allowed} nodes of the classes interactive pods may use, and over the "
        f"{premium} premium nodes (their first preferred class, with room for every "
        "interactive GPU here):",
        "",
        "| owner | replicas | least possible: allowed / premium | default | ours | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for owner in (o for o in OWNERS if o.kind == "ReplicaSet"):
        theirs = [r.share(owner) for r in by["default"]]
        ours = [r.share(owner) for r in by["ours"]]
        held = statistics.median(ours) <= statistics.median(theirs)
        lines.append(
            f"| {owner.name} | {owner.replicas} x {owner.gpus} GPU "
            f"| {least_share(owner.replicas, allowed):.2f} / "
            f"{least_share(owner.replicas, premium):.2f} | {_spread(theirs)} | {_spread(ours)} "
            f"| {'holds' if held else '**does not hold**'} |"
        )
    lines += ["", "| measure | default | ours |", "|---|---|---|"]
    for label, measure in (
        ("interactive GPUs on nodes with batch GPUs, %", Run.colocated),
        ("interactive pods on premium nodes, %", Run.on_premium),
    ):
        cells = [_spread([measure(r) for r in by[s]], "{:.1f}") for s in ("default", "ours")]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    pending = [_spread([float(r.pending) for r in by[s]], "{:.0f}") for s in ("default", "ours")]
    lines.append(f"| pods left Pending | {' | '.join(pending)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="how many of the seeds")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gpuclass-spread-"))
    started = time.monotonic()
    runs = [run(s, seed, workdir) for seed in SEEDS[: args.seeds] for s in ("default", "ours")]
    text = report(runs, " ".join(["python", *sys.argv]), time.monotonic() - started)
    print(text)
    if args.report:
        args.report.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
