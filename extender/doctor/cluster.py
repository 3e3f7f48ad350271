"""Gather the doctor's inputs from a live cluster: one listing, no watch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
from kubernetes_asyncio import client

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


async def read_inputs(
    api: client.ApiClient, policy: Policy, template_files: Sequence[Path] = ()
) -> DoctorInputs:
    """Nodes, pods and node templates from the cluster, plus templates from files."""
    core = client.CoreV1Api(api)
    nodes, pods = await list_nodes(core), await list_pods(core)
    templates, notes = await cluster_templates(api)
    for path in template_files:
        templates.extend(load_template_file(path))
    return inputs_from_objects(policy, nodes, pods, templates, notes)
