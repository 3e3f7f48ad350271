"""`python hack/localcluster.py up|status|kubeconfig|down|...`."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

from controlplane.api import http_call, ssl_context
from controlplane.cluster import LocalCluster
from controlplane.common import DEFAULT_CLI_STATE_DIR


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
        context = ssl_context(str(c.ca_file))
        status, _ = http_call("GET", f"{c.server_url}/readyz", context, c.token, timeout=5)
        return status == 200
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
