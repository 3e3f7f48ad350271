"""Builders for Nodes, Pods, policies and caches, in the wire shapes the API uses."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from controlplane.api import GFD_PRODUCTS

from extender.policy import Policy, load_policy_file, load_policy_text
from extender.state import ClusterCache
from extender.wire import Node, Pod

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = REPO / "manifests" / "base" / "policy.yaml"
PREFIX = "gpuclass.example.io/"

# GFD product label and memory (MiB) of real GPUs (hack/controlplane/api.py, on pythonpath;
# not through localcluster, which brings the certificate builders: the benchmark server
# builds its cache with these helpers and its memory must be serve's).
PRODUCTS = GFD_PRODUCTS

_uids = itertools.count(1)


def example_policy() -> Policy:
    return load_policy_file(EXAMPLE_POLICY)


def policy_from(text: str) -> Policy:
    return load_policy_text(text)


def node_dict(
    name: str,
    product: str | None = "H100",
    gpus: int = 8,
    labels: dict[str, str] | None = None,
    resource_version: str = "1",
    cpu: str = "64",
) -> dict[str, Any]:
    all_labels = {"kubernetes.io/hostname": name}
    if product is not None:
        gfd, memory = PRODUCTS.get(product, (product, ""))
        all_labels["nvidia.com/gpu.product"] = gfd
        if memory:
            all_labels["nvidia.com/gpu.memory"] = memory
        all_labels["nvidia.com/gpu.count"] = str(gpus)
    all_labels.update(labels or {})
    allocatable = {"cpu": cpu, "memory": "512Gi", "pods": "110"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {"name": name, "labels": all_labels, "resourceVersion": resource_version},
        "spec": {},
        "status": {"capacity": dict(allocatable), "allocatable": allocatable},
    }


def make_node(name: str, product: str | None = "H100", gpus: int = 8, **kw: Any) -> Node:
    return msgspec.convert(node_dict(name, product, gpus, **kw), Node)


def pod_dict(
    name: str = "pod",
    gpus: int = 1,
    workload: str | None = None,
    node: str = "",
    namespace: str = "ml",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    uid: str | None = None,
    owner_kind: str | None = None,
    owner_name: str = "owner",
    priority_class: str = "",
    phase: str = "Pending",
    cpu: str = "1",
) -> dict[str, Any]:
    all_labels = dict(labels or {})
    if workload is not None:
        all_labels[f"{PREFIX}workload"] = workload
    resources: dict[str, Any] = {"requests": {"cpu": cpu}}
    if gpus:
        resources = {
            "requests": {"cpu": cpu, "nvidia.com/gpu": str(gpus)},
            "limits": {"nvidia.com/gpu": str(gpus)},
        }
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{next(_uids)}",
        "labels": all_labels,
        "annotations": dict(annotations or {}),
    }
    if owner_kind:
        metadata["ownerReferences"] = [{"kind": owner_kind, "name": owner_name, "controller": True}]
    spec: dict[str, Any] = {
        "schedulerName": "gpu-scheduler",
        "containers": [{"name": "main", "image": "example/app:1", "resources": resources}],
    }
    if node:
        spec["nodeName"] = node
    if priority_class:
        spec["priorityClassName"] = priority_class
    return {"metadata": metadata, "spec": spec, "status": {"phase": phase}}


def make_pod(name: str = "pod", gpus: int = 1, **kw: Any) -> Pod:
    return msgspec.convert(pod_dict(name, gpus, **kw), Pod)


def make_cache(
    policy: Policy,
    nodes: Sequence[Node],
    pods: Sequence[Pod] = (),
    **kw: Any,
) -> ClusterCache:
    cache = ClusterCache(policy, **kw)
    cache.replace_nodes(nodes)
    cache.replace_pods(pods)
    return cache


def apply_json_patch(document: Any, patch: list[dict[str, Any]]) -> Any:
    """RFC 6902 `add` (the only operation the webhook emits), on a copy: as the API server
    applies it (a missing parent is an error, `-` appends, an index inserts)."""
    result = copy.deepcopy(document)
    for operation in patch:
        assert operation["op"] == "add"
        *parents, last = operation["path"].split("/")[1:]
        target = result
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        if isinstance(target, list):
            index = len(target) if last == "-" else int(last)
            target.insert(index, copy.deepcopy(operation["value"]))
        else:
            target[last] = copy.deepcopy(operation["value"])
    return result
