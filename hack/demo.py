"""`make demo`: a real kube-apiserver + kube-scheduler with sample GPU nodes and this extender.

Creates a small mixed fleet (premium H100, standard A100-40GB and L40S, economy T4, one CPU
node, and two nodes with the label mistakes real fleets have), then pods of the kinds
cluster admins run, one after another, and shows where each went and why (the decision
record our bind wrote on the pod); pods left Pending show the reason from their
FailedScheduling event. Ends with `explain` of a
Pending pod and `doctor` on the whole cluster (README: Troubleshooting).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

HACK = Path(__file__).resolve().parent
REPO = HACK.parent
POLICY = REPO / "manifests" / "base" / "policy.yaml"
SCHEDULER_CONFIG = REPO / "manifests" / "second-scheduler" / "scheduler-config.yaml"
sys.path.insert(0, str(HACK))

import localcluster  # noqa: E402

NAMESPACE = "demo"
PREFIX = "gpuclass.example.io/"
FLEET: list[tuple[str, str, int, str]] = [
    # name, GPU (localcluster.GFD_PRODUCTS), GPUs, zone
    ("h100-0", "H100", 8, "zone-a"),
    ("h100-1", "H100", 8, "zone-b"),
    ("a100-0", "A100-40GB", 8, "zone-a"),
    ("l40s-0", "L40S", 4, "zone-b"),
    ("t4-0", "T4", 4, "zone-a"),
    ("t4-1", "T4", 4, "zone-b"),
]
# Label mistakes `doctor` finds: an admin's class label the hardware contradicts, and a GPU
# product the policy does not map.
MISLABELLED: list[tuple[str, dict[str, str], int]] = [
    ("a100-1", {**localcluster.gfd_labels("A100-40GB", 8), f"{PREFIX}class": "premium"}, 8),
    (
        "rtx-0",
        {"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-4090", "nvidia.com/gpu.count": "2"},
        2,
    ),
]


def pod(
    name: str, gpus: int, workload: str | None, note: str, **annotations: str
) -> dict[str, Any]:
    labels = {"app": name.rsplit("-", 1)[0]}
    if workload:
        labels[f"{PREFIX}workload"] = workload
    resources: dict[str, Any] = {"requests": {"cpu": "1", "memory": "1Gi"}}
    if gpus:
        resources["requests"]["nvidia.com/gpu"] = str(gpus)
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    notes = {"demo/note": note, **{PREFIX + k: v for k, v in annotations.items()}}
    return localcluster.pod_manifest(name, NAMESPACE, resources, labels, notes)


PODS = [
    pod("chat-0", 1, "interactive", "interactive: premium, spread"),
    pod("chat-1", 1, "interactive", "interactive: premium, away from chat-0"),
    pod("embed-0", 4, "batch", "batch: economy first"),
    pod("embed-1", 4, "batch", "batch: economy first"),
    pod("embed-2", 4, "batch", "batch: economy full -> standard"),
    pod(
        "finetune-0",
        6,
        "batch",
        "batch asking for premium: idle premium",
        **{"required-classes": "premium"},
    ),
    pod(
        "finetune-1",
        6,
        "batch",
        "batch asking for premium: headroom reserved",
        **{"required-classes": "premium"},
    ),
    pod("chat-2", 4, "interactive", "interactive may use the reserve"),
    pod(
        "legacy-0",
        1,
        "interactive",
        "contradictory wishes",
        **{"min-class": "premium", "excluded-classes": "premium"},
    ),
    pod("typo-0", 1, "interactiv", "workload label names no class"),
]


def scheduler_config(port: int, directory: Path) -> Path:
    """The shipped KubeSchedulerConfiguration, pointed at this run's extender port."""
    config = yaml.safe_load(SCHEDULER_CONFIG.read_text())
    config["extenders"][0]["urlPrefix"] = f"http://127.0.0.1:{port}"
    path = directory / "scheduler-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def outcome(cluster: localcluster.LocalCluster, name: str, timeout: float = 15) -> tuple[str, str]:
    """(node, the decision our bind recorded on the pod) once bound, or ("", reason) once
    the scheduler reports a failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
        if current["spec"].get("nodeName"):
            annotations = current["metadata"].get("annotations", {})
            return current["spec"]["nodeName"], annotations.get(f"{PREFIX}decision-reason", "")
        events = cluster.request(
            "GET",
            f"/api/v1/namespaces/{NAMESPACE}/events?fieldSelector=involvedObject.name={name}",
        )
        failed = [e for e in events["items"] if e.get("reason") == "FailedScheduling"]
        if failed:
            return "", failed[-1]["message"]
        time.sleep(0.1)
    return "", "(no decision within the timeout)"


def explain(url: str, manifest: dict[str, Any]) -> str:
    from extender.server.explain import explanation_table

    request = urllib.request.Request(
        f"{url}/debug/explain", data=json.dumps(manifest).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return explanation_table(json.loads(response.read()))


def cli(argv: list[str]) -> None:
    """Run a gpuclass-extender command in this process, as a user would in a shell."""
    from extender.cli.main import main as gpuclass_extender

    sys.stdout.flush()
    gpuclass_extender(argv)
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gpuclass-demo-"))
    cluster = localcluster.LocalCluster(state_dir=workdir / "cluster", detached=args.keep)
    print("starting etcd and kube-apiserver ...", flush=True)
    cluster.start()
    for name, product, gpus, zone in FLEET:
        labels = {**localcluster.gfd_labels(product, gpus), "topology.kubernetes.io/zone": zone}
        localcluster.apply_fake_node(cluster.kubeconfig, name, labels, gpus=gpus)
    for name, labels, gpus in MISLABELLED:
        localcluster.apply_fake_node(cluster.kubeconfig, name, labels, gpus=gpus)
    localcluster.apply_fake_node(cluster.kubeconfig, "cpu-0", {}, gpus=0)
    cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})

    extender = localcluster.ExtenderProcess(
        kubeconfig=cluster.kubeconfig, policy=POLICY, log=workdir / "extender.log"
    )
    try:
        print("starting gpuclass-extender ...", flush=True)
        extender.start()
        url = extender.url
        print(f"starting kube-scheduler with {SCHEDULER_CONFIG.relative_to(REPO)} ...", flush=True)
        cluster.restart_scheduler(scheduler_config(extender.port, workdir))
        print_fleet()
        rows = []
        for manifest in PODS:
            name = manifest["metadata"]["name"]
            cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", manifest)
            node, reason = outcome(cluster, name)
            rows.append((name, manifest, node, reason))
        print_outcomes(rows)
        print("\nHow a new interactive pod would rank the nodes now (POST /debug/explain):\n")
        print(explain(url, pod("chat-3", 1, "interactive", "")))
        live = ["--kubeconfig", str(cluster.kubeconfig), "--policy", str(POLICY)]
        print(f"\n$ gpuclass-extender explain {NAMESPACE}/finetune-1   # why it waits\n")
        cli(["explain", f"{NAMESPACE}/finetune-1", *live])
        print("\n$ gpuclass-extender doctor   # what is wrong with this cluster\n")
        cli(["doctor", *live])
        print(f"\nlogs: {workdir}")
        if args.keep:
            print(
                f"kubeconfig: {cluster.kubeconfig}\nstop with: kill {extender.pid}; "
                f"python hack/localcluster.py down --state-dir {cluster.state_dir}"
            )
    finally:
        if not args.keep:
            extender.stop()
            cluster.stop()


def print_fleet() -> None:
    print("\nFleet:")
    for name, product, gpus, zone in FLEET:
        gfd = localcluster.GFD_PRODUCTS[product][0]
        print(f"  {name:<8} {gpus} x {gfd:<24} {zone}")
    print(f"  a100-1   8 x NVIDIA-A100-SXM4-40GB    labelled {PREFIX}class=premium")
    print("  rtx-0    2 x NVIDIA-GeForce-RTX-4090  (a product the policy does not map)")
    print("  cpu-0    no GPU")


def print_outcomes(rows: list[tuple[str, dict[str, Any], str, str]]) -> None:
    classes = {"h100": "premium", "a100": "standard", "l40s": "standard", "t4": "economy"}
    print("\nPods, in the order they were created:\n")
    print(f"  {'POD':<11} {'GPUS':<5} {'NODE (CLASS)':<20} WHAT IT SHOWS / WHY PENDING")
    for name, manifest, node, reason in rows:
        gpus = (
            manifest["spec"]["containers"][0]["resources"]
            .get("limits", {})
            .get("nvidia.com/gpu", "0")
        )
        note = manifest["metadata"]["annotations"]["demo/note"]
        where = f"{node} ({classes.get(node.split('-')[0], '-')})" if node else "Pending"
        print(f"  {name:<11} {gpus:<5} {where:<20} {note}")
        if reason:  # why Pending, or the decision our bind recorded on the pod
            print(f"  {'':<11} {'':<5} {'':<20} -> {reason}")


if __name__ == "__main__":
    main()
