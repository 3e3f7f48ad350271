"""The extender's path to the real API server broken by a proxy (faultproxy.py): garbage
and truncated events, connection resets, a stream that stalls.

For each fault: /readyz says 503 within a second of the break (for a silent stream, of
the stall threshold twice over: once silent, once more for a resume left unanswered) and
the verbs refuse with "not synced"; once the path mends, ready again; and what changed in
the cluster meanwhile is known: every decision then equals that of an extender that has
just listed the cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import localcluster
import pytest

from tests.integration.faultproxy import MODES, FaultProxy
from tests.integration.fleet import Fleet, wait_for
from tests.integration.stack import LocalStack, call_extender

STALL_SECONDS = 1.0
HONEST_WITHIN = 1.0  # seconds from the break (from the stall threshold) to /readyz 503


@pytest.fixture
def proxied(local: LocalStack, tmp_path: Path) -> Iterator[tuple[FaultProxy, Any]]:
    """An extender of its own whose API server connection runs through a fault proxy."""
    server, ca_file, token = localcluster.read_kubeconfig(local.cluster.kubeconfig)
    proxy = FaultProxy(server, Path(ca_file))
    kubeconfig = tmp_path / "proxied.kubeconfig"
    localcluster.write_kubeconfig(kubeconfig, proxy.start(), Path(ca_file), token)
    extender = localcluster.ExtenderProcess(
        kubeconfig=kubeconfig,
        policy=local.policy_path,
        log=tmp_path / "proxied-extender.log",
        extra_args=("--watch-stall-seconds", str(STALL_SECONDS)),
    )
    try:
        extender.start()
        yield proxy, extender
    finally:
        extender.stop()
        proxy.stop()


def gpu_pod(namespace: str, name: str, gpus: int, workload: str) -> dict[str, Any]:
    resources = {"requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}}
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"u-{name}",
            "labels": {"gpuclass.example.io/workload": workload},
        },
        "spec": {"containers": [{"name": "main", "resources": resources}]},
    }


def decisions(url: str, fleet: Fleet) -> list[Any]:
    """Filter and prioritize answers for a few pods over every node of the fleet."""
    answers = []
    for name, gpus, workload in (("chat", 1, "interactive"), ("train", 4, "batch")):
        args = {"Pod": gpu_pod(fleet.namespace, name, gpus, workload), "NodeNames": fleet.nodes}
        for verb in ("/filter", "/prioritize"):
            status, answer = call_extender(url, "POST", verb, args)
            assert status == 200, answer
            answers.append(answer)
    return answers


def test_a_broken_api_path_is_reported_at_once_and_mended_with_a_fresh_view(
    local: LocalStack, fleet: Fleet, proxied: tuple[FaultProxy, Any], tmp_path: Path
) -> None:
    proxy, extender = proxied
    fleet.node("h100-0", "H100", 8)
    fleet.node("t4-0", "T4", 4)
    wait_for(lambda: extender.status(f"/debug/cache?node={fleet.nodes[-1]}") == 200, 15, "cached")
    report = []
    for i, mode in enumerate(MODES):
        proxy.fault(mode)
        broken = time.monotonic()
        honest = wait_for(lambda: extender.status("/readyz") == 503, 15, f"503 after {mode}")
        # A silent stream is resumed after STALL_SECONDS; the resume goes unanswered as long.
        threshold = 2 * STALL_SECONDS if mode == "stall" else 0.0
        assert honest - threshold < HONEST_WITHIN, f"{mode}: /readyz 503 only after {honest:.2f} s"
        args = {"Pod": gpu_pod(fleet.namespace, "x", 1, "batch"), "NodeNames": fleet.nodes}
        status, answer = call_extender(extender.url, "POST", "/filter", args)
        assert status == 200
        assert "not synced" in answer["Error"], answer
        # The cluster changes while the extender cannot hear of it.
        node = fleet.node(f"l40s-{i}", "L40S", 4)
        fleet.pod(f"{mode}-batch", 2, workload="batch", node_name=node)
        fleet.pod(f"{mode}-chat", 1, workload="interactive", node_name=fleet.nodes[0])
        time.sleep(0.5)
        assert extender.status("/readyz") == 503  # still honest while the fault lasts
        proxy.fault(None)
        mended = time.monotonic()
        ready = wait_for(lambda: extender.status("/readyz") == 200, 30, f"ready after {mode}")
        report.append(f"{mode}: 503 after {honest:.2f} s, ready {ready:.2f} s after the mend")
        assert extender.status(f"/debug/cache?node={node}") == 200
        del broken, mended
    fresh = localcluster.ExtenderProcess(
        kubeconfig=local.cluster.kubeconfig,
        policy=local.policy_path,
        log=tmp_path / "fresh-extender.log",
    )
    fresh.start()
    try:
        assert decisions(extender.url, fleet) == decisions(fresh.url, fleet)
    finally:
        fresh.stop()
    print("; ".join(report))
