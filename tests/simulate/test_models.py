"""Model registry, scheduler profiles read from a KubeSchedulerConfiguration, our separation
measures, and the report a person reads."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from extender.cli.main import main
from extender.policy.compiled import Policy
from extender.simulate import Cluster, PodRequest, PodTable
from extender.simulate.bounds import with_separation_weight
from extender.simulate.kube_scheduler import GPU, DefaultScheduler
from extender.simulate.models import (
    MODEL_NAMES,
    REFERENCE_MODELS,
    SECOND_SCHEDULER_CONFIG,
    ProfileError,
    model_factory,
    profile_from_config,
)
from extender.simulate.protocol import Placement
from extender.simulate.reference import POLICY_NAMES
from extender.simulate.report import goals_table, summarise, table
from extender.simulate.runner import RunResult
from extender.simulate.separation import SeparationObserver
from tests.simulate.builders import make_cluster, pod_table, share, whole
from tests.simulate.test_extender_model import openb_policy

CONFIG = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: gpu-scheduler
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}]
      enabled: [{name: NodeResourcesFit, weight: 3}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources: [{name: nvidia.com/gpu, weight: 4}, {name: cpu, weight: 1}]
extenders:
- {urlPrefix: "http://127.0.0.1:8888", weight: 7}
"""


def test_a_profile_is_read_from_a_scheduler_configuration(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)

    profile = profile_from_config(path, "nvidia.com/gpu")

    assert profile.extender_weight == 7
    assert profile.in_tree.fit == 3
    assert profile.in_tree.balanced_allocation == 0
    assert profile.in_tree.fit_strategy == "MostAllocated"
    assert profile.in_tree.fit_resources == ((GPU, 4), ("cpu", 1))
    assert profile.managed is None  # no managedResources: every pod comes to the extender


def test_managed_resources_name_the_pods_the_extender_is_asked_about(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        CONFIG.replace("weight: 7}", "weight: 7, managedResources: [{name: nvidia.com/gpu}]}")
    )

    profile = profile_from_config(path, "nvidia.com/gpu")

    assert profile.managed == frozenset({GPU})


def test_the_shipped_second_scheduler_profile_is_readable() -> None:
    profile = profile_from_config(SECOND_SCHEDULER_CONFIG, "nvidia.com/gpu")

    assert profile.extender_weight >= 1


def test_a_profile_the_model_cannot_represent_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("MostAllocated", "RequestedToCapacityRatio"))

    with pytest.raises(ProfileError, match="RequestedToCapacityRatio is not modelled"):
        profile_from_config(path, "nvidia.com/gpu")


def test_every_model_name_builds_a_scheduler() -> None:
    policy = openb_policy()
    cluster = make_cluster(("G2", 8), ("T4", 2))
    rng = np.random.default_rng(0)

    for name in MODEL_NAMES:
        trace = pod_table([whole(1), share(300)])
        scheduler = model_factory(name, policy)(cluster, trace, rng)
        assert scheduler.name.lower() == name
    assert tuple(n.lower() for n in POLICY_NAMES) == REFERENCE_MODELS


def test_co_location_counts_interactive_gpus_on_nodes_with_batch_gpus() -> None:
    policy = openb_policy()
    cluster = make_cluster(("G2", 8), ("G2", 8), ("V100M32", 8))
    choices = iter([0, 0, 1, 2])

    class Fixed:
        name = "fixed"

        def decide(self, *_: object) -> Placement:
            node = next(choices)
            return Placement(node, (int(np.flatnonzero(cluster.gpu_free[node] == 1000)[0]),))

    observer = SeparationObserver(Fixed(), cluster, policy)
    rng = np.random.default_rng(0)
    for qos in ("BE", "LS", "LS", "LS"):  # batch, then interactive on 0 (shared), 1, 2
        pod = PodRequest(1_000, 1_024, 1, 1000, (), qos)
        choice = observer.decide(cluster, pod, cluster.feasible(pod), rng)
        assert choice is not None
        cluster.place(choice.node, choice.gpus, pod)

    outcome = observer.outcome()

    assert outcome.colocated_pct == pytest.approx(100 / 3)
    assert outcome.gpu_colocated_pct == 0.0  # whole GPUs: never one GPU for both
    # The V100M32 node (preferred) had room for all three; only the last went there.
    assert outcome.preferred_had_room == 3
    assert outcome.preferred_pct == pytest.approx(100 / 3)


def test_gpu_co_location_counts_interactive_shares_on_gpus_batch_shares_too() -> None:
    policy = openb_policy()
    cluster = make_cluster(("G2", 2))
    gpus = iter([(0,), (0,), (1,)])

    class Fixed:
        name = "fixed"

        def decide(self, *_: object) -> Placement:
            return Placement(0, next(gpus))

    observer = SeparationObserver(Fixed(), cluster, policy)
    rng = np.random.default_rng(0)
    placed = []
    # batch 300 on GPU 0, interactive 200 beside it on GPU 0, interactive 600 alone on GPU 1
    for qos, milli in (("BE", 300), ("LS", 200), ("LS", 600)):
        pod = PodRequest(1_000, 1_024, 1, milli, (), qos)
        choice = observer.decide(cluster, pod, cluster.feasible(pod), rng)
        assert choice is not None
        cluster.place(choice.node, choice.gpus, pod)
        placed.append((pod, choice))

    assert observer.outcome().gpu_colocated_pct == pytest.approx(100 * 200 / 800)
    assert observer.outcome().colocated_pct == 100.0
    batch_pod, batch_choice = placed[0]
    observer.release(cluster, batch_pod, batch_choice)  # the batch pod leaves
    assert observer.outcome().gpu_colocated_pct == 0.0


def test_the_default_model_is_the_default_profile() -> None:
    scheduler = DefaultScheduler()

    assert scheduler.weights.fit_strategy == "LeastAllocated"


def test_the_report_summarises_seeds_with_their_spread() -> None:
    runs = [
        RunResult("fgd", "default", seed, u, (50.0,) * 131, 10_000, 100, c, g, 90.0, 1.0)
        for seed, u, c, g in ((42, 4.0, 10.0, 0.0), (43, 5.0, 20.0, 1.0), (44, 6.0, 30.0, 0.0))
    ]

    text = table(summarise(runs))

    assert "| fgd | 5.00 [4.00-6.00] | 4.77 | 20.0 [10.0-30.0] | 0.0 [0.0-1.0] | 90.0 |" in text
    assert "FGD's published median 4.77" in text


def test_simulate_rejects_an_unknown_model_before_running(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(
            ["simulate", "--nodes", "n.csv", "--pods", "p.csv", "--policy", "x", "--models", "nope"]
        )

    assert "unknown model(s) nope" in capsys.readouterr().err


NODES_CSV = """sn,cpu_milli,memory_mib,gpu,model
n0,64000,262144,8,G2
n1,64000,262144,8,G2
n2,96000,393216,8,V100M32
n3,32000,131072,2,T4
"""


def _pods_csv() -> str:
    header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    rows = [header + "deletion_time,scheduled_time"]
    for i in range(24):
        qos, gpus, milli = ("LS", 1, 500) if i % 3 == 0 else ("BE", 1 + i % 2, 1000)
        rows.append(f"p{i},4000,8192,{gpus},{milli},,{qos},Running,{i},{i + 100},{i}")
    return "\n".join(rows) + "\n"


def test_simulate_prints_a_table_and_writes_a_report_with_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods, report = tmp_path / "nodes.csv", tmp_path / "tiny.csv", tmp_path / "quality.md"
    nodes.write_text(NODES_CSV)
    pods.write_text(_pods_csv())
    policy = "manifests/examples/openb-policy.yaml"
    argv = ["simulate", "--nodes", str(nodes), "--pods", str(pods), "--policy", policy]

    status = main([*argv, "--models", "default,default+extender,fgd", "--seeds", "42-43"])
    status_with_report = main([*argv, "--models", "fgd", "--seeds", "42", "--report", str(report)])

    out, err = capsys.readouterr()
    assert (status, status_with_report) == (0, 0)
    assert "| default+extender |" in out
    assert "[6/6] tiny fgd seed 43" in err
    assert (tmp_path / "quality" / "tiny.png").stat().st_size > 10_000
    written = report.read_text()
    assert "![tiny](quality/tiny.png)" in written
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    assert f"- commit: {head.stdout.strip()}" in written
    assert re.search(r"finished \d{4}-\d\d-\d\d \d\d:\d\d UTC", written)
    assert "- mode: paper; models: fgd (ours: none)" in written
    assert "extender-profile: `manifests/second-scheduler/scheduler-config.yaml`" in written
    curves = (tmp_path / "quality" / "allocation.csv").read_text().splitlines()
    assert curves[0].startswith("trace,model,arrived_0,arrived_1,")
    assert curves[1].startswith("tiny,fgd,")
    assert len(curves[1].split(",")) == 2 + 131


def test_fgd_held_to_our_wishes_keeps_workloads_apart_and_on_preferred_classes() -> None:
    policy = openb_policy()
    cluster = make_cluster(("G2", 8), ("G2", 8), ("V100M32", 1))
    trace = pod_table([whole(1), share(500)])
    scheduler = model_factory("fgd+wishes", policy)(cluster, trace, np.random.default_rng(0))
    rng = np.random.default_rng(0)

    def place(pod: PodRequest) -> int:
        choice = scheduler.decide(cluster, pod, cluster.feasible(pod), rng)
        assert choice is not None
        cluster.place(choice.node, choice.gpus, pod)
        return choice.node

    batch_node = place(PodRequest(1_000, 1_024, 1, 500, (), "BE"))
    assert batch_node in (0, 1)  # batch prefers G2
    assert place(PodRequest(1_000, 1_024, 1, 1000, (), "LS")) == 2  # interactive: V100M32
    # The preferred class is full: the G2 node without batch pods, not the batch one.
    assert place(PodRequest(1_000, 1_024, 1, 1000, (), "LS")) == 1 - batch_node
    # And batch keeps to the node it already holds.
    assert place(PodRequest(1_000, 1_024, 1, 500, (), "BE")) == batch_node


def _placer(
    policy: Policy, cluster: Cluster, trace: PodTable
) -> Callable[[PodRequest], Placement | None]:
    scheduler = model_factory("fgd+wishes", policy)(cluster, trace, np.random.default_rng(0))
    rng = np.random.default_rng(0)

    def place(pod: PodRequest) -> Placement | None:
        choice = scheduler.decide(cluster, pod, cluster.feasible(pod), rng)
        if choice is not None:
            cluster.place(choice.node, choice.gpus, pod)
        return choice

    return place


@pytest.mark.parametrize("weight", [3.0, 0.0], ids=["policy", "co-location-free"])
def test_fgd_held_to_our_wishes_never_shares_a_gpu_between_interactive_and_batch(
    weight: float,
) -> None:
    cluster = make_cluster(("V100M32", 1))
    policy = with_separation_weight(openb_policy(), weight)
    place = _placer(policy, cluster, pod_table([share(300), share(500)]))

    assert place(PodRequest(1_000, 1_024, 1, 300, (), "BE")) is not None
    # Room for 700 more on the only GPU, but batch holds it: the interactive pod is refused.
    assert place(PodRequest(1_000, 1_024, 1, 500, (), "LS")) is None
    # Another batch pod may share it.
    assert place(PodRequest(1_000, 1_024, 1, 500, (), "BE")) is not None


@pytest.mark.parametrize("seed", range(4))
def test_fgd_held_to_our_wishes_fills_its_own_class_gpu_rather_than_close_a_free_one(
    seed: int,
) -> None:
    # Two 2-GPU nodes of a class batch prefers; on node 1 batch holds half a GPU, on node 0
    # interactive does. Half the typical pods are interactive halves, half batch halves.
    # A batch half taking node 0's free GPU closes its other half to interactive halves;
    # on node 1 it fills batch's own GPU. Whatever the seeded tie order, node 1.
    policy = with_separation_weight(openb_policy(), 0.0)  # co-location on a node is free
    cluster = make_cluster(("G2", 2), ("G2", 2))
    trace = replace(pod_table([share(500), share(500)]), qos=("LS", "BE"))
    scheduler = model_factory("fgd+wishes", policy)(cluster, trace, np.random.default_rng(seed))
    rng = np.random.default_rng(0)

    def place(qos: str, only: int | None = None) -> int:
        pod = PodRequest(4_000, 8_192, 1, 500, (), qos)
        feasible = cluster.feasible(pod)
        if only is not None:
            feasible = feasible & (np.arange(len(feasible)) == only)
        choice = scheduler.decide(cluster, pod, feasible, rng)
        assert choice is not None
        cluster.place(choice.node, choice.gpus, pod)
        return choice.node

    place("BE", only=1)
    place("LS", only=0)

    assert place("BE") == 1


@pytest.mark.parametrize(
    ("weight", "shares_node"), [(0.5, True), (3.0, False)], ids=["cheap", "dear"]
)
def test_the_separation_weight_is_the_price_fgd_held_to_our_wishes_pays(
    weight: float, shares_node: bool
) -> None:
    policy = with_separation_weight(openb_policy(), weight)
    cluster = make_cluster(("V100M32", 2), ("V100M32", 2))
    # Typical pods take two whole GPUs: the second GPU beside the batch pod is a fragment
    # only an interactive pod there would fill (2 GPUs of fragment saved).
    place = _placer(policy, cluster, pod_table([whole(2)]))

    batch = place(PodRequest(1_000, 1_024, 1, 1000, (), "BE"))
    interactive = place(PodRequest(1_000, 1_024, 1, 1000, (), "LS"))

    assert batch is not None
    assert interactive is not None
    # Co-locating costs 4 x weight x 0.75 GPUs of fragment (separation score 0.25): less
    # than the 2 saved at weight 0.5, more at 3.
    assert (interactive.node == batch.node) is shares_node


def test_hard_separation_refuses_nodes_with_avoided_pods_in_the_bound_too() -> None:
    policy = with_separation_weight(openb_policy(), None)
    cluster = make_cluster(("G2", 8))
    place = _placer(policy, cluster, pod_table([whole(1)]))

    assert place(PodRequest(1_000, 1_024, 1, 1000, (), "BE")) is not None
    assert place(PodRequest(1_000, 1_024, 1, 1000, (), "LS")) is None


def test_simulate_sweeps_the_separation_weight_into_a_frontier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods, report = tmp_path / "nodes.csv", tmp_path / "tiny.csv", tmp_path / "frontier.md"
    nodes.write_text(NODES_CSV)
    pods.write_text(_pods_csv())
    argv = ["simulate", "--nodes", str(nodes), "--pods", str(pods)]
    argv += ["--policy", "manifests/examples/openb-policy.yaml", "--seeds", "42"]

    argv += ["--models", "fgd+wishes,default", "--frontier", "0,policy,hard"]

    status = main([*argv, "--report", str(report)])

    out, err = capsys.readouterr()
    assert status == 0
    assert "[6/6]" in err
    rows = [line for line in out.splitlines() if line.startswith("| fgd+wishes |")]
    assert [row.split(" | ")[1] for row in rows] == ["0", "policy", "hard"]
    # Free separation lets batch and interactive share nodes; hard separation never does.
    colocated = [float(row.split(" | ")[3].split()[0]) for row in rows]
    assert colocated[2] == 0.0
    assert colocated[0] > 0.0
    assert (tmp_path / "frontier" / "tiny-frontier.png").stat().st_size > 10_000
    assert "frontier: 0, policy, hard" in report.read_text()


def test_a_frontier_point_must_be_a_weight_hard_or_policy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--nodes", "n", "--pods", "p", "--policy", "x", "--frontier", "-1"])

    assert "'-1': expected a separation weight >= 0, hard or policy" in capsys.readouterr().err


def _run(
    model: str, trace: str, unallocated: float, colocated: float, gpu: float, pref: float
) -> RunResult:
    return RunResult(
        model, trace, 42, unallocated, (50.0,) * 131, 10_000, 100, colocated, gpu, pref, 1.0
    )


def test_the_report_judges_each_goal_per_trace_against_the_default_scheduler() -> None:
    runs = [
        _run("default", "met", 8.0, 85.0, 7.0, 10.0),
        _run("extender-profile", "met", 8.0, 17.0, 0.0, 95.0),
        _run("fgd+wishes", "met", 7.5, 15.0, 0.0, 100.0),
        _run("default", "missed", 8.0, 85.0, 7.0, 10.0),
        _run("extender-profile", "missed", 8.01, 17.1, 0.5, 94.9),
    ]

    text = goals_table(summarise(runs))

    met, missed = (line for line in text.splitlines() if line.startswith("| m"))
    assert met == (
        "| met | 8.00 / 8.00 / 7.50 met | 85.0 / 17.0 (5.0x less) met | 0.0 met | 95.0 met |"
    )
    assert missed == (
        "| missed | 8.01 / 8.00 / - **not met** | 85.0 / 17.1 (5.0x less) **not met** "
        "| 0.5 **not met** | 94.9 **not met** |"
    )
