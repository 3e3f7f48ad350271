"""Karpenter on the local control plane: its KWOK provider, and a kubelet stand-in.

`hack/build-karpenter.sh` builds Karpenter's KWOK provider (`sigs.k8s.io/karpenter/kwok`,
Karpenter with a fake cloud whose `Create` writes the Node object itself) from its Go
module, cached by version, with the CRDs of the same version. What the provider leaves
to a kubelet, `KubeletStandIn` does: it marks Karpenter's nodes Ready, and deletes the pods
evicted from them at once (no container stops on a kubelet-less node).

The GPU instance types are ours (`GPU_INSTANCE_TYPES`, written to the file
`--instance-types-file-path` reads): AWS names, prices and the labels Karpenter's AWS
provider sets (`karpenter.k8s.aws/instance-gpu-name`, `-gpu-memory`, `-gpu-count`), which
the KWOK provider copies onto the nodes it creates from the offerings' requirements.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from controlplane.api import Kube
from controlplane.common import HACK_DIR, ApiError, LocalClusterError
from controlplane.processes import set_pdeathsig, tail, terminate

KARPENTER_VERSION = "v1.14.1"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
ZONE = "test-zone-a"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
NODEPOOLS = "/apis/karpenter.sh/v1/nodepools"
NODECLAIMS = "/apis/karpenter.sh/v1/nodeclaims"
NODE_CLASSES = "/apis/karpenter.kwok.sh/v1alpha1/kwoknodeclasses"
GPU_LABELS = "karpenter.k8s.aws/instance-gpu-"

# name: (GPU product as Karpenter's AWS provider names it, MiB per GPU, GPUs, vCPUs, GiB,
# on-demand $/h). Sizes and prices as AWS lists them in us-east-1.
GPU_INSTANCE_TYPES: dict[str, tuple[str, int, int, int, int, float]] = {
    "p5.48xlarge": ("h100", 81920, 8, 192, 2048, 98.32),
    "p5.4xlarge": ("h100", 81920, 1, 16, 256, 6.88),
    "g6.12xlarge": ("l4", 22888, 4, 48, 192, 4.60),
    "g6.xlarge": ("l4", 22888, 1, 4, 16, 0.80),
    "g4dn.12xlarge": ("t4", 16384, 4, 48, 192, 3.91),
    "g4dn.xlarge": ("t4", 16384, 1, 4, 16, 0.53),
}


def karpenter_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "gpuclass-extender" / "karpenter" / KARPENTER_VERSION


def karpenter_available() -> bool:
    return os.access(karpenter_dir() / "karpenter-kwok", os.X_OK)


def build_karpenter() -> Path:
    """Build (or find cached) Karpenter's KWOK provider; its directory."""
    subprocess.run(
        ["bash", str(HACK_DIR / "build-karpenter.sh")],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "KARPENTER_VERSION": KARPENTER_VERSION},
    )
    return karpenter_dir()


def instance_types() -> list[dict[str, Any]]:
    """The instance-types file of the KWOK provider: one on-demand offering per type."""
    types = []
    for name, (gpu, memory, gpus, cpu, gib, price) in GPU_INSTANCE_TYPES.items():
        labels = {
            "topology.kubernetes.io/zone": ZONE,
            "karpenter.sh/capacity-type": "on-demand",
            GPU_LABELS + "name": gpu,
            GPU_LABELS + "manufacturer": "nvidia",
            GPU_LABELS + "memory": str(memory),
            GPU_LABELS + "count": str(gpus),
        }
        requirements = [{"key": k, "operator": "In", "values": [v]} for k, v in labels.items()]
        types.append(
            {
                "name": name,
                "offerings": [{"Price": price, "Available": True, "Requirements": requirements}],
                "architecture": "amd64",
                "operatingSystems": ["linux"],
                "resources": {
                    "cpu": str(cpu),
                    "memory": f"{gib}Gi",
                    "nvidia.com/gpu": str(gpus),
                    "pods": "110",
                },
            }
        )
    return types


def install_crds(kube: Kube, directory: Path) -> None:
    """Karpenter's CRDs of the built version, created (or kept) and Established."""
    names = []
    for path in sorted((directory / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        names.append(name)
        status, _ = kube.call("POST", CRDS, crd)
        if status == 409:  # there already: made ours, whoever made it before
            current = kube.request("GET", f"{CRDS}/{name}")
            crd["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            kube.request("PUT", f"{CRDS}/{name}", crd)
        elif status != 201:
            raise LocalClusterError(f"creating CRD {name}: HTTP {status}")
    deadline = time.monotonic() + 30
    for name in names:
        while True:
            conditions = kube.request("GET", f"{CRDS}/{name}").get("status", {}).get("conditions")
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions or []):
                break
            if time.monotonic() > deadline:
                raise LocalClusterError(f"CRD {name} not Established within 30 s")
            time.sleep(0.1)


def node_class(name: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.kwok.sh/v1alpha1",
        "kind": "KWOKNodeClass",
        "metadata": {"name": name},
    }


def node_pool(
    name: str,
    instance_types: list[str] | None,
    labels: dict[str, str],
    weight: int | None = None,
    limit_gpus: int = 64,
    consolidate_after: str = "Never",
    gpu_names: list[str] | None = None,
) -> dict[str, Any]:
    """A NodePool of these instance types; `labels` are what its nodes carry from birth
    (the class label, when the pool holds one class). Karpenter tries pools by `weight`,
    highest first, then by name in reverse order, and takes the first that fits a pod.
    `gpu_names` selects by Karpenter's GPU label instead of (or besides) instance types, as
    a pool of several GPU models does on AWS."""
    requirements = []
    if instance_types is not None:
        requirements.append(
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": instance_types}
        )
    if gpu_names is not None:
        requirements.append({"key": GPU_LABELS + "name", "operator": "In", "values": gpu_names})
    pool: dict[str, Any] = {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.kwok.sh",
                        "kind": "KWOKNodeClass",
                        "name": "default",
                    },
                    "requirements": requirements,
                    "expireAfter": "Never",
                },
            },
            "limits": {"nvidia.com/gpu": str(limit_gpus)},
            "disruption": {
                "consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": consolidate_after,
            },
        },
    }
    if weight is not None:
        pool["spec"]["weight"] = weight
    return pool


class KubeletStandIn:
    """What kubelets would do for Karpenter's kubelet-less nodes: report them Ready, and
    finish the deletion of pods evicted from them (a thread polling the API)."""

    def __init__(self, kube: Kube, interval: float = 0.2) -> None:
        self.kube = kube
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubelet-stand-in", daemon=True)
        self.errors: list[str] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._step()
            except (ApiError, OSError) as exc:  # the API server restarts in some tests
                self.errors.append(str(exc))

    def _step(self) -> None:
        nodes = self.kube.request("GET", f"/api/v1/nodes?labelSelector={NODEPOOL_LABEL}")["items"]
        names = set()
        for node in nodes:
            names.add(node["metadata"]["name"])
            conditions = node.get("status", {}).get("conditions") or []
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                self._ready(node["metadata"]["name"])
        if not names:
            return
        for pod in self.kube.request("GET", "/api/v1/pods")["items"]:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") and pod["spec"].get("nodeName") in names:
                self.kube.request(
                    "DELETE",
                    f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                    {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
                    ok=(200, 202, 404),
                )

    def _ready(self, name: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet stand-in (hack/controlplane/karpenter.py)",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        self.kube.request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            {"status": {"conditions": [ready], "phase": "Running"}},
            "application/strategic-merge-patch+json",
            ok=(200, 404),
        )


class KarpenterProcess:
    """Karpenter's KWOK provider as a process against the local control plane.

    Its operator binds its metrics and health ports as `:PORT` (all interfaces; no flag
    narrows it): they are ephemeral ports chosen here, and nothing here reads them.
    """

    def __init__(self, kubeconfig: Path, workdir: Path, directory: Path | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.directory = directory or karpenter_dir()
        self.log = workdir / "karpenter.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        types = self.workdir / "instance-types.json"
        types.write_text(json.dumps(instance_types(), indent=1))
        argv = [
            str(self.directory / "karpenter-kwok"),
            "--instance-types-file-path", str(types),
            "--disable-leader-election",
            # Ports the OS picks (":0"): nothing here reads them.
            "--metrics-port", "0",
            "--health-probe-port", "0",
            # Short batching windows: a test's pods are all created at once.
            "--batch-max-duration", "3s",
            "--batch-idle-duration", "500ms",
            "--log-level", "debug",
        ]  # fmt: skip
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "KUBECONFIG": str(self.kubeconfig),
            "SYSTEM_NAMESPACE": "kube-system",
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=set_pdeathsig,
            )
        time.sleep(0.5)
        if self.process.poll() is not None:
            raise LocalClusterError(f"karpenter exited at once:\n{tail(self.log)}")

    def stop(self) -> None:
        terminate(self.process, grace=10)
        self.process = None
