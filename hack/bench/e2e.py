"""Part 4: pods/s scheduled by the real kube-scheduler, with and without extenders.

One LocalCluster (etcd + kube-apiserver v1.36.3 on loopback) for the whole section. Per
size, the fake GPU nodes (bench.fixtures.node_dict: 8 GPUs each, realistic labels and
status) are created once; then every repeat runs each configuration, in rotating order:

  alone       kube-scheduler with the shipped config minus its extenders block
  floor       + the floor extender (bench.floor), filter + prioritize
  floor+bind  + the floor extender binding too (the one Binding call): what any extender
              with a bind verb pays, the bound on the shipped config's cost
  ours        + `gpuclass-extender serve`, filter + prioritize
  shipped     + `gpuclass-extender serve`, filter + prioritize + bind: the shipped config
  shipped+scored-events   the same with `serve --scored-events`: what an Event per pod costs

One run: create P pending one-GPU pods (1/3 interactive, 2/3 batch) while no scheduler
runs; start the extender (for ours: the time to /readyz 200 is the readiness figure, with
N nodes and P pods to list); start kube-scheduler; wait until its log (-v=2) has a
"Successfully bound" line for every pod; rate = (P - 1) / (last - first binding). Then
stop the scheduler and extender and delete the pods. Every config uses the shipped
profile (percentageOfNodesToScore: 100), so all see every node.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import re
import shutil
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import localcluster
import yaml

from bench import OUT, REPO, cpuprofile, fixtures
from bench.cpuprofile import CpuProfile
from bench.procs import Child, cpu_seconds
from bench.stats import Spread, spread

NAMESPACE = "bench"
CONFIGS = ("alone", "watching", "floor", "floor+bind", "ours", "shipped", "shipped+scored-events")
SHIPPED = "shipped"
SCHEDULER_CONFIG = REPO / "manifests" / "second-scheduler" / "scheduler-config.yaml"
POLICY = REPO / "manifests" / "base" / "policy.yaml"
_BOUND = re.compile(
    rb'^I(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) .*"Successfully bound pod to node" '
    rb'pod="([^"]+)" node="[^"]*" evaluatedNodes=(\d+) feasibleNodes=(\d+)',
    re.M,
)


@dataclass(frozen=True)
class E2ESettings:
    sizes: tuple[int, ...] = (1000, 5000)
    # Per size. Shorter runs, more of them: the machines' speed drifts over minutes, and a
    # ratio is taken within one repeat, so more repeats of fewer pods read steadier.
    pods: tuple[int, ...] = (1000, 300)
    repeats: tuple[int, ...] = (4, 3)
    configs: tuple[str, ...] = CONFIGS
    threads: int = 12
    scheduler_qps: int = 5000  # as Kubernetes' scheduler_perf; 0: the default (50)
    # After the repeats of the first size, one more run of each of these with the
    # extender sampled by py-spy (bench.cpuprofile); not counted in the rates.
    profile: tuple[str, ...] = ("floor+bind", SHIPPED)


@dataclass
class E2ERun:
    config: str
    pods: int
    bound: int
    seconds: float  # first to last binding
    rate: float
    evaluated: int
    feasible: int
    ready_seconds: float | None = None  # our extender: start to /readyz 200
    extender_cpu_ms_per_pod: float | None = None
    # CPU per bound pod while the scheduler ran (ms): kube-scheduler, apiserver + etcd
    scheduler_cpu_ms_per_pod: float = 0.0
    apiserver_cpu_ms_per_pod: float = 0.0


@dataclass
class E2EResult:
    nodes: int
    pods: int
    runs: list[E2ERun] = field(default_factory=list)
    profiles: list[tuple[E2ERun, CpuProfile]] = field(default_factory=list)

    def rates(self, config: str) -> Spread:
        return spread([r.rate for r in self.runs if r.config == config])

    def ratio(
        self,
        config: str,
        reference: str,
        value: Callable[[E2ERun], float | None] = lambda r: r.rate,
    ) -> Spread:
        """Per repeat: `value` of `config` / `value` of `reference` in the same repeat."""
        return self.sum_ratio((config,), reference, value)

    def sum_ratio(
        self,
        configs: Sequence[str],
        reference: str,
        value: Callable[[E2ERun], float | None],
    ) -> Spread:
        """Per repeat: the sum of `value` over `configs` / `value` of `reference`."""
        columns = [[value(r) for r in self.runs if r.config == c] for c in (*configs, reference)]
        ratios = []
        for *parts, ref in zip(*columns, strict=False):
            if ref and all(p is not None for p in parts):
                ratios.append(sum(p for p in parts if p is not None) / ref)
        return spread(ratios)

    def ready(self) -> Spread:
        return spread([r.ready_seconds for r in self.runs if r.ready_seconds is not None])

    def cpu_per_pod(self, config: str) -> Spread:
        return spread(
            [
                r.extender_cpu_ms_per_pod
                for r in self.runs
                if r.config == config and r.extender_cpu_ms_per_pod is not None
            ]
        )


class Api:
    """Kubernetes API calls from a pool of threads, each with its own keep-alive
    HTTPS connection (urllib would do a TLS handshake per call)."""

    def __init__(self, cluster: localcluster.LocalCluster, threads: int) -> None:
        host, port = cluster.server_url.removeprefix("https://").split(":")
        self.host, self.port = host, int(port)
        self.context = ssl.create_default_context(cafile=str(cluster.ca_file))
        self.headers = {
            "Authorization": f"Bearer {cluster.token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(threads)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(3):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPSConnection(
                    self.host, self.port, context=self.context, timeout=60
                )
                self.local.conn = conn
            try:
                conn.request(method, path, data, self.headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def many(self, calls: Iterable[tuple[str, str, Any]], ok: tuple[int, ...]) -> None:
        for status, body in self.pool.map(lambda c: self.call(*c), calls):
            if status not in ok:
                raise RuntimeError(f"API call failed: HTTP {status}: {body[:300]!r}")

    def close(self) -> None:
        self.pool.shutdown()


def e2e_node(i: int) -> dict[str, Any]:
    node = fixtures.node_dict(i, gpus=8)
    for key in ("uid", "resourceVersion", "creationTimestamp"):
        node["metadata"].pop(key)
    return {"apiVersion": "v1", "kind": "Node", **node}


def e2e_pod(name: str, workload: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "bench", "gpuclass.example.io/workload": workload},
        },
        "spec": {
            "schedulerName": "gpu-scheduler",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "containers": [
                {
                    "name": "main",
                    "image": "example.com/ml/app:1",
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                        "limits": {"nvidia.com/gpu": "1"},
                    },
                }
            ],
        },
    }


def scheduler_config(config: str, url: str, qps: int) -> dict[str, Any]:
    """The shipped KubeSchedulerConfiguration, adapted to one benchmark configuration, with
    the scheduler's API client limit raised to `qps` (default 50/s, burst 100: at that
    limit every configuration binds ~50-70 pods/s and the extender makes no difference)."""
    cfg: dict[str, Any] = yaml.safe_load(SCHEDULER_CONFIG.read_text())
    if qps > 0:
        cfg["clientConnection"] = {"qps": qps, "burst": qps}
    if config in ("alone", "watching"):
        del cfg["extenders"]
        return cfg
    extender = cfg["extenders"][0]
    extender["urlPrefix"] = url
    if not config.startswith(SHIPPED) and not config.endswith("+bind"):
        del extender["bindVerb"]
    return cfg


def start_ours(
    cluster: localcluster.LocalCluster, scored_events: bool = False
) -> localcluster.ExtenderProcess:
    """`gpuclass-extender serve` against the local cluster, as the integration tests start it."""
    ours = localcluster.ExtenderProcess(
        kubeconfig=cluster.kubeconfig,
        policy=POLICY,
        log=OUT / "e2e-extender.log",
        extra_args=("--scored-events",) if scored_events else (),
    )
    ours.start(timeout=300)
    return ours


def _bindings(log: Path, offset: int, prefix: str) -> list[tuple[float, int, int]]:
    """(time, evaluatedNodes, feasibleNodes) of this run's "Successfully bound" lines."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read()
    year = dt.date.today().year
    found = []
    for m in _BOUND.finditer(text):
        if not m.group(7).decode().startswith(prefix):
            continue
        month, day, hh, mm, ss, us = (int(g) for g in m.groups()[:6])
        stamp = dt.datetime(year, month, day, hh, mm, ss, us).timestamp()
        found.append((stamp, int(m.group(8)), int(m.group(9))))
    return found


def _run_one(
    cluster: localcluster.LocalCluster,
    api: Api,
    nodes: int,
    pods: int,
    config: str,
    tag: str,
    qps: int,
    say: Callable[[str], None],
    profile: Path | None = None,
) -> tuple[E2ERun, CpuProfile | None]:
    """One run; with `profile`, the extender sampled into that file meanwhile."""
    prefix = f"{NAMESPACE}/{tag}-"
    api.many(
        (
            ("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", e2e_pod(f"{tag}-{k}", workload))
            for k in range(pods)
            for workload in ["interactive" if k % 3 == 0 else "batch"]
        ),
        ok=(201,),
    )
    floor: Child | None = None
    ours: localcluster.ExtenderProcess | None = None
    sampler = None
    try:
        url = ""
        if config.startswith("floor"):
            binds = ("--kubeconfig", str(cluster.kubeconfig)) if config == "floor+bind" else ()
            floor = Child("bench.floor", "--nodes", str(nodes), *binds, log=OUT / "e2e-floor.log")
            url = f"http://127.0.0.1:{floor.port}"
        elif config != "alone":
            ours = start_ours(cluster, scored_events=config.endswith("scored-events"))
            url = ours.url
        # JSON, so that localcluster keeps clientConnection's qps and burst.
        path = OUT / f"scheduler-{config.replace('+', '-')}.json"
        path.write_text(json.dumps(scheduler_config(config, url, qps), indent=2))
        log = cluster.logs["kube-scheduler"]
        offset = log.stat().st_size if log.exists() else 0
        extender_pid = ours.pid if ours is not None else floor.pid if floor is not None else None
        if profile is not None and extender_pid:
            sampler = cpuprofile.start(extender_pid, profile)
        cpu_before = cpu_seconds(extender_pid) if extender_pid else 0.0
        control_before = _control_cpu(cluster)
        cluster.restart_scheduler(path)
        deadline = time.monotonic() + max(180.0, pods / 5)
        found: list[tuple[float, int, int]] = []
        while time.monotonic() < deadline:
            found = _bindings(log, offset, prefix)
            if len(found) >= pods:
                break
            time.sleep(0.5)
        cpu_after = cpu_seconds(extender_pid) if extender_pid else 0.0
        scheduler_cpu = cpu_seconds(cluster._pids["kube-scheduler"])
        control_after = _control_cpu(cluster)
        cluster.stop_scheduler()
    finally:
        if floor is not None:
            floor.stop()
        if ours is not None:
            ours.stop()
    sampled = None
    if sampler is not None and profile is not None:
        sampled = cpuprofile.finish(sampler, profile, config, nodes)
    if len(found) < pods:
        say(f"    only {len(found)} of {pods} pods bound before the deadline")
    times = sorted(t for t, _, _ in found)
    seconds = times[-1] - times[0] if len(times) > 1 else 0.0
    run = E2ERun(
        config=config,
        pods=pods,
        bound=len(found),
        seconds=seconds,
        rate=(len(times) - 1) / seconds if seconds > 0 else 0.0,
        evaluated=max((e for _, e, _ in found), default=0),
        feasible=max((f for _, _, f in found), default=0),
        scheduler_cpu_ms_per_pod=scheduler_cpu * 1000 / max(1, len(found)),
        apiserver_cpu_ms_per_pod=(control_after - control_before) * 1000 / max(1, len(found)),
    )
    if extender_pid:
        run.extender_cpu_ms_per_pod = (cpu_after - cpu_before) * 1000 / max(1, len(found))
    if ours is not None:
        run.ready_seconds = ours.ready_seconds
    _delete_pods(api)
    return run, sampled


def _control_cpu(cluster: localcluster.LocalCluster) -> float:
    return sum(cpu_seconds(cluster._pids[c]) for c in ("etcd", "kube-apiserver"))


def _delete_pods(api: Api) -> None:
    status, body = api.call(
        "DELETE",
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0},
    )
    if status != 200:
        raise RuntimeError(f"delete pods: HTTP {status}: {body[:300]!r}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, body = api.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?limit=1")
        if status == 200 and not json.loads(body)["items"]:
            return
        time.sleep(0.2)
    raise RuntimeError("pods not deleted within 120 s")


def _summary(run: E2ERun) -> str:
    extra = (
        f", extender {run.extender_cpu_ms_per_pod:.2f} ms CPU/pod"
        if run.extender_cpu_ms_per_pod is not None
        else ""
    )
    if run.ready_seconds is not None:
        extra += f", ready in {run.ready_seconds:.2f} s"
    return (
        f"{run.config:9}: {run.rate:6.1f} pods/s ({run.bound}/{run.pods} bound in "
        f"{run.seconds:.1f} s, evaluated {run.evaluated}; CPU ms/pod: scheduler "
        f"{run.scheduler_cpu_ms_per_pod:.2f}, apiserver+etcd "
        f"{run.apiserver_cpu_ms_per_pod:.2f}){extra}"
    )


def _profile_runs(
    cluster: localcluster.LocalCluster,
    api: Api,
    result: E2EResult,
    settings: E2ESettings,
    say: Callable[[str], None],
) -> None:
    missing = cpuprofile.available()
    if missing is not None:
        say(f"  no CPU profile: {missing}")
        return
    for config in (c for c in settings.profile if c in settings.configs):
        tag = f"p{result.nodes}-{config.replace('+', '-')}"
        out = OUT / f"e2e-profile-{config.replace('+', '-')}-{result.nodes}.txt"
        run, sampled = _run_one(
            cluster, api, result.nodes, result.pods, config, tag, settings.scheduler_qps, say, out
        )
        say(f"  {result.nodes} nodes, profiled {_summary(run)}")
        if sampled is not None:
            result.profiles.append((run, sampled))


def run_e2e(settings: E2ESettings, say: Callable[[str], None]) -> list[E2EResult]:
    OUT.mkdir(parents=True, exist_ok=True)
    results: list[E2EResult] = []
    cluster = localcluster.LocalCluster(state_dir=OUT / "cluster")
    try:
        started = time.monotonic()
        cluster.start()
        say(f"e2e: control plane up in {time.monotonic() - started:.1f} s")
        api = Api(cluster, settings.threads)
        api.many([("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})], ok=(201,))
        made = 0
        for size, pods, repeats in zip(
            settings.sizes, settings.pods, settings.repeats, strict=True
        ):
            started = time.monotonic()
            api.many((("POST", "/api/v1/nodes", e2e_node(i)) for i in range(made, size)), (201,))
            say(f"e2e: {size - made} nodes created in {time.monotonic() - started:.1f} s")
            made = size
            result = E2EResult(size, pods)
            for rep in range(repeats):
                order = settings.configs[rep % len(settings.configs) :]
                order += settings.configs[: rep % len(settings.configs)]
                for config in order:
                    tag = f"r{size}-{rep}-{config.replace('+', '-')}"
                    run, _ = _run_one(
                        cluster, api, size, pods, config, tag, settings.scheduler_qps, say
                    )
                    result.runs.append(run)
                    say(f"  {size} nodes rep {rep + 1} {_summary(run)}")
            if not results:  # the first size: where the CPU goes, in runs of their own
                _profile_runs(cluster, api, result, settings, say)
            results.append(result)
        api.close()
    finally:
        cluster.stop()
        shutil.rmtree(OUT / "cluster" / "etcd-data", ignore_errors=True)  # logs stay
    return results
