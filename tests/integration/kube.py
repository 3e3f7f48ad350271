"""A small synchronous Kubernetes API client from a kubeconfig: enough for e2e tests.

Supports bearer tokens, client certificates and CAs given as files or inline data, which
covers the local control plane and kind. (The extender itself uses kubernetes-asyncio.)
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


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
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        config = yaml.safe_load(kubeconfig.read_text())
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

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        ok: tuple[int, ...] = (200, 201, 202),
    ) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.server + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, context=self.ssl, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        if status not in ok:
            raise ApiError(method, path, status, raw.decode(errors="replace"))
        return json.loads(raw) if raw else None
