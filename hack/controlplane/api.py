"""Kubeconfig files and the API client of tests and tools: one HTTP call, fake GPU
nodes with the labels GPU Feature Discovery sets, pod manifests."""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from controlplane.common import K8S_VERSION, ApiError, LocalClusterError


# --------------------------------------------------------------------------- kubeconfig / HTTP
def write_kubeconfig(
    path: Path, server: str, ca_file: Path, token: str, user: str = "admin"
) -> None:
    # JSON is valid YAML: kubectl/client-go read it, and we can parse it without PyYAML.
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    path.chmod(0o600)


def read_kubeconfig(kubeconfig: Path | str) -> tuple[str, str, str]:
    """(server, ca_file, token) of the kubeconfig's first cluster/user."""
    text = Path(kubeconfig).read_text()
    try:
        cfg = json.loads(text)
        return (
            cfg["clusters"][0]["cluster"]["server"],
            cfg["clusters"][0]["cluster"]["certificate-authority"],
            cfg["users"][0]["user"]["token"],
        )
    except (ValueError, KeyError, IndexError):
        pass

    def field(key: str) -> str:  # minimal YAML fallback: first `key: value`
        m = re.search(rf"^\s*{re.escape(key)}:\s*['\"]?([^'\"\s]+)", text, re.M)
        if not m:
            raise LocalClusterError(f"{kubeconfig}: no {key!r}")
        return m.group(1)

    return field("server"), field("certificate-authority"), field("token")


_SSL_CTX: dict[str, ssl.SSLContext] = {}


def _ssl_ctx(ca_file: str) -> ssl.SSLContext:
    if ca_file not in _SSL_CTX:
        _SSL_CTX[ca_file] = ssl.create_default_context(cafile=ca_file)
    return _SSL_CTX[ca_file]


def http_call(
    method: str,
    url: str,
    ca_file: str,
    token: str | None = None,
    body: Any = None,
    content_type: str = "application/json",
    timeout: float = 30,
) -> tuple[int, bytes]:
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=_ssl_ctx(ca_file), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def api_request(
    kubeconfig: Path | str,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
    ok: tuple[int, ...] = (200, 201, 202),
    timeout: float = 30,
) -> Any:
    """One API call with the kubeconfig's token; returns decoded JSON or raises ApiError."""
    server, ca, token = read_kubeconfig(kubeconfig)
    url = server.rstrip("/") + path
    status, raw = http_call(method, url, ca, token, body, content_type, timeout)
    if status not in ok:
        raise ApiError(method, url, status, raw.decode(errors="replace"))
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
        api_request(kubeconfig, "POST", "/api/v1/nodes", node)
    except ApiError as e:
        if e.status != 409:
            raise
        api_request(
            kubeconfig,
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
    node_obj: dict[str, Any] = api_request(
        kubeconfig,
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
