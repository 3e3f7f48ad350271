"""The Grafana dashboard (manifests/grafana/) queries only metrics the server exports, and
the placement gauges behind its panels say where each workload's GPUs are."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from tests.builders import example_policy, make_cache, make_pod
from tests.server.payloads import app_for, fleet_nodes

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "manifests/grafana/gpuclass-extender-dashboard.json"
)
METRIC = re.compile(r"\bgpuclass_extender_[a-z_]+")
# Series names Prometheus derives from one metric family.
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


async def exported(aiohttp_client: AiohttpClient) -> dict[str, Any]:
    """Metric families by name, from a server whose cache holds interactive and batch pods."""
    policy = example_policy()
    pods = [
        make_pod("train", 2, workload="batch", node="gpu-a100", phase="Running", uid="u1"),
        make_pod("chat", 1, workload="interactive", node="gpu-h100", phase="Running", uid="u2"),
        make_pod("embed", 1, workload="batch", node="gpu-h100", phase="Running", uid="u3"),
        make_pod("infer", 2, workload="interactive", node="gpu-t4", phase="Running", uid="u4"),
    ]
    client = await aiohttp_client(app_for(policy, make_cache(policy, fleet_nodes(), pods)))
    text = await (await client.get("/metrics")).text()
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_every_metric_the_dashboard_queries_is_exported(
    aiohttp_client: AiohttpClient,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in METRIC.findall(target["expr"])
    }
    families = await exported(aiohttp_client)

    def family_of(series: str) -> str:
        for suffix in SUFFIXES:
            if series.endswith(suffix) and series.removesuffix(suffix) in families:
                return series.removesuffix(suffix)
        return series

    missing = sorted(name for name in queried if family_of(name) not in families)
    assert missing == []
    assert len(queried) >= 12  # verbs, decisions, placements, co-location, headroom, cache...
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for subject in ("verb", "decisions", "class and workload", "co-located", "headroom",
                    "cache", "reloads"):  # fmt: skip
        assert subject in titles


async def test_placement_gauges_show_gpus_per_class_and_workload_and_co_location(
    aiohttp_client: AiohttpClient,
) -> None:
    families = await exported(aiohttp_client)

    def value(name: str, **labels: str) -> float:
        for sample in families[name].samples:
            if sample.labels == labels:
                return float(sample.value)
        raise AssertionError(f"no {name}{labels}")

    held = "gpuclass_extender_workload_gpus"
    assert value(held, gpu_class="premium", workload="interactive") == 1
    assert value(held, gpu_class="premium", workload="batch") == 1
    assert value(held, gpu_class="standard", workload="batch") == 2
    assert value(held, gpu_class="economy", workload="interactive") == 2
    # Only on the H100 node do the two workloads (which avoid each other) meet.
    colocated = "gpuclass_extender_colocated_gpus"
    assert value(colocated, workload="interactive") == 1
    assert value(colocated, workload="batch") == 1
