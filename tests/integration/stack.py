"""The system under test: kube-apiserver, kube-scheduler and the extender.

LocalStack starts all three on loopback (hack/localcluster.py) and can stop, restart and
reconfigure them. ExternalStack uses any cluster from a kubeconfig (e.g. kind) where the
scheduler and extender are already deployed; tests that need to control them skip there.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import localcluster  # hack/, on pytest's pythonpath
import orjson
import yaml
from localcluster import Kube

from extender.policy import load_policy_text

REPO = Path(__file__).resolve().parents[2]

SCHEDULER_NAME = "gpu-scheduler"
EXAMPLE_POLICY = REPO / "manifests" / "base" / "policy.yaml"
SCHEDULER_CONFIG = REPO / "manifests" / "second-scheduler" / "scheduler-config.yaml"


def call_extender(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One call to an extender, with `body` as JSON as the scheduler sends it: (status, the
    answer decoded when it is JSON, else its bytes); (0, None) when nothing answers."""
    data = orjson.dumps(body) if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            is_json = response.headers.get_content_type() == "application/json"
            return response.status, orjson.loads(raw) if is_json else raw
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        is_json = exc.headers.get_content_type() == "application/json"
        return exc.code, orjson.loads(raw) if is_json else None
    except OSError:
        return 0, None


@dataclass(frozen=True)
class SchedulerSettings:
    """The extender block's knobs the tests vary (None: as shipped); the rest is the
    shipped config."""

    node_cache_capable: bool | None = None
    ignorable: bool | None = None


def scheduler_config(extender_url: str, settings: SchedulerSettings) -> dict[str, Any]:
    """The shipped KubeSchedulerConfiguration (the file in the second-scheduler ConfigMap)
    with the extender's URL and the knobs a test varies."""
    config: dict[str, Any] = yaml.safe_load(SCHEDULER_CONFIG.read_text())
    extender = config["extenders"][0]
    extender["urlPrefix"] = extender_url
    if settings.node_cache_capable is not None:
        extender["nodeCacheCapable"] = settings.node_cache_capable
    if settings.ignorable is not None:
        extender["ignorable"] = settings.ignorable
    return config


class ExternalStack:
    """A cluster someone else runs; we only create and observe objects."""

    controllable = False

    def __init__(self, kubeconfig: Path, extender_url: str | None) -> None:
        self.kube = Kube(kubeconfig)
        self.extender_url = extender_url

    def stop(self) -> None:
        return None


class LocalStack:
    """etcd, kube-apiserver, kube-scheduler and `gpuclass-extender serve` on loopback."""

    controllable = True

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.cluster = localcluster.LocalCluster(state_dir=workdir / "cluster")
        self.policy_path = workdir / "policy.yaml"
        self.policy_path.write_text(EXAMPLE_POLICY.read_text())
        self.extender = localcluster.ExtenderProcess(
            kubeconfig=self.cluster.kubeconfig,
            policy=self.policy_path,
            log=workdir / "extender.log",
            extra_args=("--policy-poll-seconds", "0.2", "--admission-webhook"),
        )
        self.settings: SchedulerSettings | None = None

    @property
    def extender_url(self) -> str:
        return self.extender.url

    def start(self) -> None:
        self.cluster.start()
        self.kube = Kube(self.cluster.kubeconfig)
        self.start_extender()
        self.configure_scheduler(SchedulerSettings())

    def stop(self) -> None:
        self.stop_extender()
        self.cluster.stop()

    # ---- extender ------------------------------------------------------------------------

    @property
    def extender_running(self) -> bool:
        return self.extender.process is not None

    def start_extender(self) -> None:
        self.extender.start()

    def stop_extender(self) -> None:
        self.extender.stop()

    def kill_extender(self) -> None:
        """SIGKILL the extender, as a crash would: no graceful shutdown."""
        process = self.extender.process
        assert process is not None, "the extender is not running"
        process.kill()
        process.wait()
        self.extender.process = None

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.extender_url + path, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return call_extender(self.extender_url, "POST", path, body)

    def debug_cache(self, node: str | None = None) -> Any:
        status, body = self.get("/debug/cache" + (f"?node={node}" if node else ""))
        return orjson.loads(body) if status == 200 else None

    # ---- scheduler and policy -----------------------------------------------------------

    def configure_scheduler(self, settings: SchedulerSettings) -> None:
        """(Re)start kube-scheduler with the shipped config and these extender knobs."""
        if settings == self.settings:
            return
        config = scheduler_config(self.extender_url, settings)
        path = self.workdir / "scheduler-config.yaml"
        path.write_text(yaml.safe_dump(config))
        self.cluster.restart_scheduler(path)
        self.settings = settings

    def use_policy(self, text: str) -> None:
        """Swap the policy file and wait until the running extender has loaded it."""
        digest = load_policy_text(text).digest
        self.policy_path.write_text(text)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            cache = self.debug_cache()
            if cache is not None and cache["policyDigest"] == digest:
                return
            time.sleep(0.05)
        raise RuntimeError("the extender did not load the new policy within 15 s")

    def restore_policy(self) -> None:
        """Back to the shipped example policy, if a test changed it."""
        if self.policy_path.read_text() != EXAMPLE_POLICY.read_text():
            self.use_policy(EXAMPLE_POLICY.read_text())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the extender's samples `name` with these labels (from its /metrics)."""
        from prometheus_client.parser import text_string_to_metric_families

        _, body = self.get("/metrics")
        return sum(
            sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def filter_calls(self) -> float:
        return self.metric("gpuclass_extender_requests_total", verb="filter")
