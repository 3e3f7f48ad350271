"""Gather the doctor's inputs from a live cluster: one listing (paged), no watch.

The listing stays raw JSON until `report_of` decodes and diagnoses it, so a server can hand
it to a worker process (`/debug/doctor`) and keep its own event loop for the verbs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kubernetes_asyncio import client

from extender.doctor import diagnose
from extender.doctor.findings import Finding
from extender.doctor.inputs import DoctorInputs, inputs_from_objects
from extender.doctor.templates import NodeTemplate, load_template_file, templates_from_objects
from extender.errors import KubeError
from extender.policy.compiled import Policy
from extender.state.kube import list_custom, list_nodes, list_pods

# Where autoscalers keep their node templates in a cluster: (group, version, plural).
TEMPLATE_RESOURCES = (
    ("karpenter.sh", "v1", "nodepools"),
    ("cluster.x-k8s.io", "v1beta1", "machinedeployments"),
    ("cluster.x-k8s.io", "v1beta1", "machinesets"),
    ("cluster.x-k8s.io", "v1beta1", "machinepools"),
)


async def cluster_templates(api: client.ApiClient) -> tuple[list[NodeTemplate], list[Finding]]:
    """Node templates of the autoscalers whose resources the cluster has."""
    custom = client.CustomObjectsApi(api)
    templates: list[NodeTemplate] = []
    notes: list[Finding] = []
    for group, version, plural in TEMPLATE_RESOURCES:
        try:
            raw = await list_custom(custom, group, version, plural)
        except KubeError as exc:
            if exc.status == 404:  # the autoscaler is not installed
                continue
            notes.append(
                Finding(
                    "warning",
                    "autoscaling",
                    "templates-unreadable",
                    f"{plural}.{group}",
                    str(exc),
                    f"grant list on {plural}.{group} to this identity, or pass them with "
                    "--templates FILE",
                )
            )
            continue
        templates.extend(templates_from_objects([orjson.loads(o) for o in raw], "cluster"))
    return templates, notes


@dataclass(frozen=True)
class ClusterListing:
    """Nodes and pods as raw JSON, and the autoscalers' node templates: all a report needs
    besides the policy (picklable, for a worker process)."""

    nodes: list[bytes]
    pods: list[bytes]
    templates: list[NodeTemplate] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)


async def read_listing(
    api: client.ApiClient, template_files: Sequence[Path] = ()
) -> ClusterListing:
    """Nodes, pods and node templates from the cluster, plus templates from files."""
    core = client.CoreV1Api(api)
    nodes, pods = await list_nodes(core), await list_pods(core)
    templates, notes = await cluster_templates(api)
    for path in template_files:
        templates.extend(load_template_file(path))
    return ClusterListing(nodes, pods, templates, notes)


def inputs_of(policy: Policy, listing: ClusterListing) -> DoctorInputs:
    return inputs_from_objects(
        policy, listing.nodes, listing.pods, listing.templates, listing.notes
    )


def report_of(policy: Policy, listing: ClusterListing) -> dict[str, Any]:
    """The doctor's report on a listing (CPU only: fit for a worker process)."""
    return diagnose(inputs_of(policy, listing))
