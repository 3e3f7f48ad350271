"""Request bodies in the exact shape kube-scheduler sends, and a server to post them to."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from extender.errors import KubeError
from extender.policy import Policy
from extender.policy.store import PolicyStore
from extender.server.app import create_app
from extender.server.metrics import Metrics
from extender.state import ClusterCache
from extender.wire import Node, Pod, decode_pod
from tests.builders import PREFIX, make_node, node_dict, pod_dict

Client = TestClient[web.Request, web.Application]


# The fleet both server test modules use: name -> (product, GPUs).
FLEET: dict[str, tuple[str | None, int]] = {
    "gpu-h100": ("H100", 8),
    "gpu-l40s": ("L40S", 1),
    "gpu-a100": ("A100-40GB", 2),
    "gpu-t4": ("T4", 4),
    "cpu-1": (None, 0),
}


def fleet_nodes() -> list[Node]:
    return [make_node(name, product, gpus) for name, (product, gpus) in FLEET.items()]


def scheduler_pod(
    name: str = "infer-7d9f",
    gpus: int = 1,
    *,
    workload: str | None = "interactive",
    uid: str | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pending Pod as the scheduler's informer holds it (no managedFields)."""
    pod = pod_dict(
        name,
        gpus,
        workload=workload,
        uid=uid or f"uid-{name}",
        annotations=annotations,
        labels={"app": "chat", "pod-template-hash": "7d9f"},
        owner_kind="ReplicaSet",
    )
    pod["metadata"].update(
        {
            "generateName": name.rsplit("-", 1)[0] + "-",
            "resourceVersion": "48213",
            "creationTimestamp": "2025-03-01T10:00:00Z",
        }
    )
    pod["metadata"]["ownerReferences"][0].update(
        {"apiVersion": "apps/v1", "uid": "7a1e-owner", "blockOwnerDeletion": True}
    )
    container = pod["spec"]["containers"][0]
    container.update(
        {
            "image": "nvcr.io/nvidia/tritonserver:24.08-py3",
            "ports": [{"containerPort": 8000, "protocol": "TCP"}],
            "env": [{"name": "MODEL", "value": "llama"}],
            "terminationMessagePath": "/dev/termination-log",
            "imagePullPolicy": "IfNotPresent",
        }
    )
    if gpus:
        container["resources"] = {
            "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": str(gpus)},
            "limits": {"memory": "32Gi", "nvidia.com/gpu": str(gpus)},
        }
    pod["spec"].update(
        {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
        }
    )
    pod["status"] = {
        "phase": "Pending",
        "qosClass": "Burstable",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": "2025-03-01T10:00:00Z",
                "reason": "Unschedulable",
            }
        ],
    }
    return pod


def scheduler_node(name: str, product: str | None = "H100", gpus: int = 8) -> dict[str, Any]:
    """A Node as the scheduler's cache holds it, with the fields we never read."""
    node = node_dict(name, product, gpus)
    node["metadata"].update(
        {
            "uid": f"uid-node-{name}",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            "managedFields": [
                {
                    "manager": "kubelet",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2025-01-01T00:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:images": {}}},
                }
            ],
        }
    )
    node["spec"] = {"podCIDR": "10.244.1.0/24", "providerID": f"aws:///eu-west-1a/i-{name}"}
    node["status"].update(
        {
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.12"},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": "2025-03-01T09:59:00Z",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "kubeletVersion": "v1.31.4",
                "containerRuntimeVersion": "containerd://1.7.22",
                "architecture": "amd64",
                "operatingSystem": "linux",
            },
            "images": [
                {
                    "names": [
                        f"nvcr.io/nvidia/cuda@sha256:{i:064x}",
                        f"nvcr.io/nvidia/cuda:12.{i}",
                    ],
                    "sizeBytes": 4_000_000_000 + i,
                }
                for i in range(3)
            ],
        }
    )
    return node


def names_args(pod: dict[str, Any], names: list[str]) -> bytes:
    """ExtenderArgs with nodeCacheCapable: true."""
    return json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names}).encode()


def priorities(answer: Any, hosts: list[str]) -> dict[str, int]:
    """A prioritize answer read as kube-scheduler reads it: every host asked about, with 0
    for a host the answer leaves out. Checks the shape on the way: a JSON array of
    {"Host", "Score"} objects, request order, no host twice, no host it was not asked
    about, int scores 1..10 (a 0 is left out, so one written is a wasted entry)."""
    assert isinstance(answer, list)
    named = [entry["Host"] for entry in answer]
    seen = set(named)
    assert len(seen) == len(named), f"a host twice: {named}"
    assert [h for h in hosts if h in seen] == named, f"{named} not in order of {hosts}"
    for entry in answer:
        assert set(entry) == {"Host", "Score"}
        assert type(entry["Score"]) is int
        assert 1 <= entry["Score"] <= 10
    scores = {entry["Host"]: entry["Score"] for entry in answer}
    return {host: scores.get(host, 0) for host in hosts}


def full_args(pod: dict[str, Any], nodes: list[dict[str, Any]]) -> tuple[bytes, list[bytes]]:
    """ExtenderArgs with nodeCacheCapable: false, and the exact bytes of each node item."""
    items = [json.dumps(n, indent=1).encode() for n in nodes]
    body = (
        b'{"Pod": '
        + json.dumps(pod).encode()
        + b', "Nodes": {"metadata": {}, "items": ['
        + b", ".join(items)
        + b']}, "NodeNames": null}'
    )
    return body, items


def bind_args(pod: dict[str, Any], node: str) -> bytes:
    meta = pod["metadata"]
    return json.dumps(
        {
            "PodName": meta["name"],
            "PodNamespace": meta["namespace"],
            "PodUID": meta["uid"],
            "Node": node,
        }
    ).encode()


def classes(**annotations: str) -> dict[str, str]:
    """Pod annotations under the policy's prefix: classes(required_classes="premium")."""
    return {PREFIX + key.replace("_", "-"): value for key, value in annotations.items()}


@dataclass
class RecordingBinder:
    """The API seam of the bind verb: reads pods from `pods`, records binds of those pods
    (others fail with 404, as on an API server), and fails the binds of the pod names in
    `fail`."""

    calls: list[dict[str, object]] = field(default_factory=list)
    fail: dict[str, Exception] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)  # namespace/name of every pod read

    def knows(self, *pods: dict[str, Any]) -> None:
        """Make these pods (as dicts) what the API server returns."""
        for pod in pods:
            self.pods[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = pod

    async def __call__(
        self, *, namespace: str, name: str, uid: str, node: str, annotations: dict[str, str]
    ) -> None:
        known = self.pods.get((namespace, name))
        if known is None or known["metadata"].get("uid") != uid:
            # As the API server: no such pod (or another one by that name) binds nothing.
            raise KubeError(f"bind {namespace}/{name} to {node}: 404: pod not found", 404)
        call: dict[str, object] = {"namespace": namespace, "name": name, "uid": uid, "node": node}
        if annotations:
            call["annotations"] = annotations
        self.calls.append(call)
        if name in self.fail:
            raise self.fail[name]

    async def read_pod(self, *, namespace: str, name: str) -> Pod:
        self.reads.append(f"{namespace}/{name}")
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise KubeError(f"read pod {namespace}/{name}: 404: pods {name!r} not found", 404)
        return decode_pod(json.dumps(pod).encode(), "pod")


def conflict(name: str, node: str) -> KubeError:
    return KubeError(f"bind ml/{name} to {node}: 409 Conflict: pod {name} is already assigned", 409)


def app_for(
    policy: Policy,
    cache: ClusterCache,
    *,
    binder: RecordingBinder | None = None,
    metrics: Metrics | None = None,
    **kw: Any,
) -> web.Application:
    return create_app(
        PolicyStore(policy),
        cache,
        metrics=metrics or Metrics(),
        binder=binder,
        pod_reader=binder.read_pod if binder else None,
        **kw,
    )
