"""Time-ordered replay: pods leave at their deletion time, pods that do not fit wait."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from extender.cli.main import main
from extender.simulate import Cluster, PodRequest
from extender.simulate.models import model_factory
from extender.simulate.separation import SeparationObserver
from extender.simulate.timeline import replay_timeline, speedup_for_load
from extender.simulate.trace import PodTable
from tests.simulate.builders import make_cluster, pod_table
from tests.simulate.test_extender_model import openb_policy
from tests.simulate.test_models import NODES_CSV, _pods_csv


def timed(pods: list[PodRequest], times: list[tuple[int, int]]) -> PodTable:
    table = pod_table(pods)
    return dataclasses.replace(
        table,
        creation_time=np.array([born for born, _ in times], dtype=np.int64),
        deletion_time=np.array([died for _, died in times], dtype=np.int64),
        qos=tuple(p.qos for p in pods),
    )


def observed(
    model: str, cluster: Cluster, trace: PodTable, rng: np.random.Generator
) -> SeparationObserver:
    policy = openb_policy()
    return SeparationObserver(model_factory(model, policy)(cluster, trace, rng), cluster, policy)


def whole(gpus: int, qos: str = "BE") -> PodRequest:
    return PodRequest(1_000, 1_024, gpus, 1000, (), qos)


@pytest.mark.parametrize("model", ["default", "default+extender", "fgd"])
def test_a_pod_that_does_not_fit_waits_until_another_leaves(model: str) -> None:
    cluster = make_cluster(("G2", 8))
    pods = [whole(6), whole(4), whole(2)]
    trace = timed(pods, [(0, 100), (10, 200), (20, 300)])  # the 4-GPU pod fits at t=100
    rng = np.random.default_rng(0)
    observer = observed(model, cluster, trace, rng)

    timeline = replay_timeline(cluster, pods, trace, observer, rng, samples_wanted=20)

    assert timeline.placed == 3
    assert timeline.never_placed == 0
    assert timeline.mean_wait_seconds == pytest.approx((0 + 90 + 0) / 3)
    assert max(s.pending for s in timeline.samples) == 1
    assert cluster.allocated_gpu_milli == 0  # everyone left


def test_a_pod_deleted_while_pending_stops_waiting() -> None:
    cluster = make_cluster(("G2", 8))
    pods = [whole(8), whole(4), whole(1)]
    trace = timed(pods, [(0, 100), (10, 50), (60, 200)])  # 4-GPU pod gone at 50, pending
    rng = np.random.default_rng(0)
    observer = observed("default", cluster, trace, rng)

    timeline = replay_timeline(cluster, pods, trace, observer, rng, samples_wanted=20)

    assert timeline.placed == 2  # the 8 and, once it left, the 1
    assert timeline.never_placed == 0
    waiting = [s.pending for s in timeline.samples if 10 < s.time < 50]
    assert waiting
    assert set(waiting) == {1}


def test_co_location_is_sampled_as_pods_come_and_go() -> None:
    cluster = make_cluster(("G2", 8))
    pods = [whole(2, "BE"), whole(2, "LS"), whole(1, "BE")]
    trace = timed(pods, [(0, 50), (10, 100), (60, 70)])  # share the node from 10 to 50
    rng = np.random.default_rng(0)
    observer = observed("default", cluster, trace, rng)

    timeline = replay_timeline(cluster, pods, trace, observer, rng, samples_wanted=100)

    during = [s.colocated_pct for s in timeline.samples if 10 < s.time < 50]
    assert during
    assert set(during) == {100.0}


def test_arrivals_are_compressed_to_the_offered_load_asked_for() -> None:
    pods = [whole(1)] * 100
    trace = timed(pods, [(i * 1000, i * 1000 + 100) for i in range(100)])  # 1 GPU, 10% duty

    light = speedup_for_load(trace, 10_000, 0.005)
    heavy = speedup_for_load(trace, 10_000, 0.2)

    assert light == 1.0  # it offers ~1% of 10 GPUs already
    assert heavy > 10


def test_simulate_replays_in_time_order_with_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods, report = tmp_path / "nodes.csv", tmp_path / "tiny.csv", tmp_path / "tl.md"
    nodes.write_text(NODES_CSV)
    pods.write_text(_pods_csv())
    argv = ["simulate", "--mode", "timeline", "--nodes", str(nodes), "--pods", str(pods)]
    argv += ["--policy", "manifests/examples/openb-policy.yaml", "--models", "default,fgd"]

    assert main([*argv, "--report", str(report)]) == 0

    out = capsys.readouterr().out
    assert "| default | 42 | 24 | 0 |" in out
    assert (tmp_path / "tl" / "tiny-timeline.png").stat().st_size > 10_000
