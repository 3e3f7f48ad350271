"""Kubeconfig files and the API client of tests and tools: one HTTP call, fake GPU
nodes with the labels GPU Feature Discovery sets, pod manifests."""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from controlplane.common import K8S_VERSION, ApiError, LocalClusterError


# --------------------------------------------------------------------------- kubeconfig / HTTP
def write_kubeconfig(
    path: Path, server: str, ca_file: Path | None, token: str, user: str = "admin"
) -> Path:
    """A kubeconfig with a bearer token (no CA file: a plain-HTTP server, as in tests)."""
    cluster = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    # JSON is valid YAML: kubectl and client-go read it.
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    path.chmod(0o600)
    return path


def read_kubeconfig(kubeconfig: Path | str) -> tuple[str, str, str]:
    """(server, ca_file, token) of a kubeconfig this module wrote (a token and a CA file)."""
    cfg = yaml.safe_load(Path(kubeconfig).read_text())
    try:
        return (
            cfg["clusters"][0]["cluster"]["server"],
            cfg["clusters"][0]["cluster"]["certificate-authority"],
            cfg["users"][0]["user"]["token"],
        )
    except (TypeError, KeyError, IndexError) as exc:
        raise LocalClusterError(f"{kubeconfig}: no server, CA file and token") from exc


_CONTEXTS: dict[str, ssl.SSLContext] = {}


def ssl_context(ca_file: str) -> ssl.SSLContext:
    """A client context trusting this CA file (one per file)."""
    if ca_file not in _CONTEXTS:
        _CONTEXTS[ca_file] = ssl.create_default_context(cafile=ca_file)
    return _CONTEXTS[ca_file]


def http_call(
    method: str,
    url: str,
    context: ssl.SSLContext | None,
    token: str | None = None,
    body: Any = None,
    content_type: str = "application/json",
    timeout: float = 30,
) -> tuple[int, bytes]:
    """(status, body) of one HTTP call; `body` as JSON unless it is bytes already."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


_CLIENTS: dict[tuple[str, int], Kube] = {}


def client_for(kubeconfig: Path | str) -> Kube:
    """One Kube per kubeconfig file as it is now (its TLS context is built once, not per
    call)."""
    path = Path(kubeconfig)
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key not in _CLIENTS:
        _CLIENTS[key] = Kube(path)
    return _CLIENTS[key]


def _material(entry: dict[str, Any], key: str, directory: Path) -> str | None:
    """A file path for `key` (given as `key` or inline as `key-data`)."""
    if entry.get(key):
        return str(entry[key])
    data = entry.get(f"{key}-data")
    if not data:
        return None
    path = directory / key
    path.write_bytes(base64.b64decode(data))
    return str(path)


class Kube:
    """The synchronous API client of tests and tools, from a kubeconfig: bearer tokens,
    client certificates, CAs as files or inline data (the local control plane and kind).
    The extender itself uses kubernetes-asyncio."""

    def __init__(self, kubeconfig: Path | str) -> None:
        self.kubeconfig = Path(kubeconfig)
        config = yaml.safe_load(self.kubeconfig.read_text())
        context_name = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        self._files = tempfile.TemporaryDirectory(prefix="kube-")
        directory = Path(self._files.name)
        self.server = cluster["server"].rstrip("/")
        self.token: str | None = user.get("token")
        self.ssl: ssl.SSLContext | None = None
        if self.server.startswith("https"):
            ca = _material(cluster, "certificate-authority", directory)
            self.ssl = ssl.create_default_context(cafile=ca)
            if cluster.get("insecure-skip-tls-verify"):
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE
            cert = _material(user, "client-certificate", directory)
            key = _material(user, "client-key", directory)
            if cert and key:
                self.ssl.load_cert_chain(cert, key)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> tuple[int, bytes]:
        """(status, body) of one call; `body` as JSON unless it is bytes already."""
        return http_call(
            method, self.server + path, self.ssl, self.token, body, content_type, timeout
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        ok: tuple[int, ...] = (200, 201, 202),
        timeout: float = 30,
    ) -> Any:
        """Decoded JSON of one call (text when it is not JSON); ApiError unless `ok`."""
        status, raw = self.call(method, path, body, content_type, timeout)
        if status not in ok:
            raise ApiError(method, self.server + path, status, raw.decode(errors="replace"))
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")


def apply_fake_node(
    kubeconfig: Path | str,
    name: str,
    labels: dict[str, str] | None = None,
    gpus: int = 0,
    cpu: str = "32",
    memory: str = "256Gi",
    pods: str = "110",
    taints: list[dict[str, str]] | None = None,
    extra_capacity: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Create (or update) a kubelet-less Node and set its status: capacity/allocatable
    (cpu, memory, pods, nvidia.com/gpu, extras) and a Ready condition. Returns the Node."""
    kube = client_for(kubeconfig)
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        **(labels or {}),
    }
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints} if taints else {},
    }
    try:
        kube.request("POST", "/api/v1/nodes", node)
    except ApiError as e:
        if e.status != 409:
            raise
        kube.request(
            "PATCH",
            f"/api/v1/nodes/{name}",
            {"metadata": {"labels": labels}, "spec": {"taints": taints or None}},
            content_type="application/merge-patch+json",
        )
    res = {
        "cpu": cpu,
        "memory": memory,
        "pods": pods,
        "nvidia.com/gpu": str(gpus),
        **(extra_capacity or {}),
    }
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {
        "status": {
            "capacity": res,
            "allocatable": res,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "fake node (localcluster)",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "addresses": [{"type": "Hostname", "address": name}],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": K8S_VERSION,
                "containerRuntimeVersion": "fake://0",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": "",
                "osImage": "",
                "kubeProxyVersion": "",
            },
        }
    }
    node_obj: dict[str, Any] = kube.request(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        status,
        content_type="application/merge-patch+json",
    )
    return node_obj


# --------------------------------------------------------------------------- GPUs and the extender
# GPU Feature Discovery's product label and memory (MiB) of real GPUs, for fake GPU nodes.
GFD_PRODUCTS: dict[str, tuple[str, str]] = {
    "H100": ("NVIDIA-H100-80GB-HBM3", "81559"),
    "A100-80GB": ("NVIDIA-A100-SXM4-80GB", "81920"),
    "A100-40GB": ("NVIDIA-A100-SXM4-40GB", "40960"),
    "L40S": ("NVIDIA-L40S", "46068"),
    "T4": ("Tesla-T4", "15360"),
}


def gfd_labels(product: str, gpus: int) -> dict[str, str]:
    """The labels GPU Feature Discovery puts on a node with `gpus` GPUs of `product`."""
    gfd, memory = GFD_PRODUCTS[product]
    return {
        "nvidia.com/gpu.product": gfd,
        "nvidia.com/gpu.memory": memory,
        "nvidia.com/gpu.count": str(gpus),
    }


# What GKE puts on a node of its GPU node pools: the accelerator type and the machine
# type, no memory or count label (GPU Feature Discovery does not run there by default).
GKE_PRODUCTS: dict[str, tuple[str, str]] = {
    "H100": ("nvidia-h100-80gb", "a3-highgpu-8g"),
    "A100-40GB": ("nvidia-tesla-a100", "a2-highgpu-8g"),
    "L4": ("nvidia-l4", "g2-standard-96"),
    "T4": ("nvidia-tesla-t4", "n1-standard-32"),
}
# What Karpenter's AWS provider puts on the nodes it creates, from the instance type
# (memory in MiB per GPU, as EC2 reports it), before GFD has run.
KARPENTER_PRODUCTS: dict[str, tuple[str, str, str]] = {
    "H100": ("h100", "81920", "p5.48xlarge"),
    "A100-80GB": ("a100", "81920", "p4de.24xlarge"),
    "L4": ("l4", "22888", "g6.48xlarge"),
    "T4": ("t4", "16384", "g4dn.metal"),
}


def gke_labels(product: str, gpus: int) -> dict[str, str]:
    """The GPU labels of a GKE node with `gpus` GPUs of `product`."""
    accelerator, machine = GKE_PRODUCTS[product]
    return {
        "cloud.google.com/gke-accelerator": accelerator,
        "node.kubernetes.io/instance-type": machine,
    }


def karpenter_labels(product: str, gpus: int) -> dict[str, str]:
    """The GPU labels Karpenter's AWS provider sets on a node with `gpus` GPUs of `product`."""
    name, memory, instance_type = KARPENTER_PRODUCTS[product]
    return {
        "karpenter.k8s.aws/instance-gpu-name": name,
        "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
        "karpenter.k8s.aws/instance-gpu-memory": memory,
        "karpenter.k8s.aws/instance-gpu-count": str(gpus),
        "node.kubernetes.io/instance-type": instance_type,
    }


def pod_manifest(
    name: str,
    namespace: str,
    resources: dict[str, Any],
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    scheduler: str = "gpu-scheduler",
) -> dict[str, Any]:
    """A one-container Pod for `scheduler` (its image never runs: nodes have no kubelet)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {
            "schedulerName": scheduler,
            "containers": [{"name": "main", "image": "example/app:1", "resources": resources}],
        },
    }
