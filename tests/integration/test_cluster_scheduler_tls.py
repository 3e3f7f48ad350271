"""Variant (b) on the real kube-scheduler: the certificate recipe documented in
manifests/cluster-scheduler/kustomization.yaml, the extender started with the Deployment's
TLS command line, and kube-scheduler with kube-scheduler-config-snippet.yaml's extender
(mutual TLS) schedule and bind a GPU pod. Only the addresses and file locations differ."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import localcluster
import pytest
import yaml

from extender.cli.main import parser
from tests.deploy.render import MANIFESTS, find, render
from tests.integration.fleet import Fleet
from tests.integration.stack import EXAMPLE_POLICY, LocalStack, SchedulerSettings

VARIANT = MANIFESTS / "cluster-scheduler"


def documented_commands() -> list[str]:
    """The shell commands of the 'With openssl:' recipe, continuation lines joined."""
    text = (VARIANT / "kustomization.yaml").read_text()
    recipe = text.split("With openssl:\n", 1)[1].split("go to the control plane", 1)[0]
    commands, current = [], ""
    for line in re.findall(r"^# {6,}(.*)$", recipe, re.M):
        current += line.strip()
        if current.endswith("\\"):
            current = current[:-1] + " "
        else:
            commands.append(current.split("  #", 1)[0].strip())
            current = ""
    return commands


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("openssl not installed")
        pytest.skip("openssl not installed")
    commands = documented_commands()
    secret = next(c for c in commands if "create secret" in c)
    files = {p.removeprefix("--from-file=") for p in shlex.split(secret) if "from-file" in p}
    assert files == {"tls.crt", "tls.key", "ca.crt"}  # the keys the Deployment reads
    script = "\n".join(c for c in commands if not c.startswith("kubectl "))
    directory = tmp_path / "tls"
    directory.mkdir()
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory


@pytest.fixture
def restore_scheduler(local: LocalStack) -> Iterator[LocalStack]:
    try:
        yield local
    finally:
        local.settings = None
        local.configure_scheduler(SchedulerSettings())


def relocate(path: str, tls: Path) -> str:
    return str(tls / Path(path).name)


def test_the_documented_tls_setup_schedules_through_the_extender(
    restore_scheduler: LocalStack, certificates: Path, tmp_path: Path
) -> None:
    stack = restore_scheduler
    objects = render("cluster-scheduler")
    deployment = find(objects, "Deployment", "gpuclass-extender")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = parser().parse_args(container["args"])
    assert args.client_ca is not None
    policy = tmp_path / "policy.yaml"
    policy.write_text(find(objects, "ConfigMap", "gpuclass-policy")["data"]["policy.yaml"])
    assert args.health_port == 8080
    # The Deployment's command line; loopback and ports the OS picks instead of 0.0.0.0 and
    # fixed ones, files from tmp.
    argv = [
        "serve",
        "--policy",
        str(policy),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--tls-cert",
        relocate(str(args.tls_cert), certificates),
        "--tls-key",
        relocate(str(args.tls_key), certificates),
        "--client-ca",
        relocate(str(args.client_ca), certificates),
        "--health-host",
        "127.0.0.1",
        "--health-port",
        "0",
        "--log-format",
        args.log_format,
        "--kubeconfig",
        str(stack.cluster.kubeconfig),
    ]
    assert EXAMPLE_POLICY.read_text() == policy.read_text()

    log = (tmp_path / "extender.log").open("ab")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gpuclass-extender"), *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    ports = localcluster.await_serving_ports(tmp_path / "extender.log", 0, process)
    port, health_port = ports["port"], ports["health_port"]
    snippet = yaml.safe_load((VARIANT / "kube-scheduler-config-snippet.yaml").read_text())
    (extender,) = snippet["extenders"]
    service_host = extender["urlPrefix"].split("//", 1)[1].rsplit(":", 1)[0]
    extender["urlPrefix"] = f"https://127.0.0.1:{port}"
    extender["tlsConfig"] = {k: relocate(v, certificates) for k, v in extender["tlsConfig"].items()}
    # Served under the Service's DNS name: check it as the scheduler would.
    extender["tlsConfig"]["serverName"] = service_host
    snippet["profiles"] = [{"schedulerName": "gpu-scheduler"}]  # the admin's own profiles
    config = tmp_path / "scheduler-config.yaml"
    config.write_text(yaml.safe_dump(snippet))

    context = ssl.create_default_context(cafile=str(certificates / "ca.crt"))
    context.check_hostname = False  # the certificate names the Service, we call 127.0.0.1
    context.load_cert_chain(certificates / "client.crt", certificates / "client.key")

    def get(path: str) -> int:
        url = f"https://127.0.0.1:{port}{path}"
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def wait_for(path: str) -> None:
        deadline = time.monotonic() + 30
        while get(path) != 200:
            assert process.poll() is None, (tmp_path / "extender.log").read_text()
            assert time.monotonic() < deadline, f"{path} never answered 200"
            time.sleep(0.05)

    def probe(path: str) -> int:
        """What kubelet's httpGet probe on the health port sees: no client certificate."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health_port}{path}") as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    fleet = Fleet(stack)
    try:
        wait_for("/readyz")
        assert probe("/readyz") == 200
        assert probe("/healthz") == 200
        stack.cluster.restart_scheduler(config)
        node = fleet.node("h100", "H100")
        fleet.node("t4", "T4")
        wait_for(f"/debug/cache?node={node}")
        pod = fleet.pod("chat", gpus=1, workload="interactive")
        assert fleet.bound(pod) == node
        metrics: Any = None
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/metrics", context=context, timeout=5
        ) as response:
            metrics = response.read().decode()
        assert re.search(r'gpuclass_extender_binds_total\{result="bound"\} 1\.0', metrics), (
            "the scheduler did not bind through the extender"
        )
    finally:
        fleet.cleanup()
        localcluster.terminate(process, grace=10)
        log.close()
