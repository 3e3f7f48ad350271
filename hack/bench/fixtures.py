"""Realistic Nodes, Pods, caches and request bodies, the same in every process.

Nodes look like a GPU node the scheduler's informer holds: GFD and NFD labels, topology,
annotations, capacity, five conditions, addresses, nodeInfo and ~25 images (6-8 KB of
JSON each). Pods look like what the scheduler sends: labels, annotations, an owner,
tolerations, volumes, resources. Everything is a pure function of its index, so the
server, the load generator and the end-to-end run agree on names without talking.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from extender.policy import Policy
from extender.state import ClusterCache
from extender.wire import Node, Pod
from tests.builders import PREFIX, example_policy

# (product key, GFD product label, memory MiB, GPUs per node, GPU family); 10 slots: 30%
# premium H100, 20% A100-40GB and 20% L40S (standard), 30% T4 (economy, 4 per node).
_FLEET = (
    ("H100", "NVIDIA-H100-80GB-HBM3", "81559", 8, "hopper"),
    ("A100-40GB", "NVIDIA-A100-SXM4-40GB", "40960", 8, "ampere"),
    ("T4", "Tesla-T4", "15360", 4, "turing"),
    ("H100", "NVIDIA-H100-80GB-HBM3", "81559", 8, "hopper"),
    ("L40S", "NVIDIA-L40S", "46068", 8, "ada-lovelace"),
    ("T4", "Tesla-T4", "15360", 4, "turing"),
    ("A100-40GB", "NVIDIA-A100-SXM4-40GB", "40960", 8, "ampere"),
    ("H100", "NVIDIA-H100-80GB-HBM3", "81559", 8, "hopper"),
    ("L40S", "NVIDIA-L40S", "46068", 8, "ada-lovelace"),
    ("T4", "Tesla-T4", "15360", 4, "turing"),
)
PODS_PER_NODE = 10
NAMESPACE = "ml"
PAGE = 500  # the watch lists in pages of 500; decode the same way

_IMAGES = [
    ("nvcr.io/nvidia/k8s-device-plugin", "v0.17.1", 132_000_000),
    ("nvcr.io/nvidia/gpu-feature-discovery", "v0.17.1", 118_000_000),
    ("nvcr.io/nvidia/k8s/dcgm-exporter", "3.3.9-3.6.1-ubuntu22.04", 1_210_000_000),
    ("nvcr.io/nvidia/cuda", "12.6.2-base-ubuntu22.04", 97_000_000),
    ("nvcr.io/nvidia/pytorch", "24.10-py3", 11_400_000_000),
    ("nvcr.io/nvidia/tritonserver", "24.10-py3", 8_900_000_000),
    ("vllm/vllm-openai", "v0.6.4", 4_700_000_000),
    ("registry.k8s.io/kube-proxy", "v1.36.3", 31_000_000),
    ("registry.k8s.io/pause", "3.10", 320_000),
    ("docker.io/calico/node", "v3.29.1", 143_000_000),
    ("docker.io/calico/cni", "v3.29.1", 94_000_000),
    ("quay.io/prometheus/node-exporter", "v1.8.2", 12_000_000),
    ("docker.io/fluent/fluent-bit", "3.2.2", 39_000_000),
    ("example.com/ml/embedder", "2024.11.3", 6_300_000_000),
    ("example.com/ml/chat-server", "1.42.0", 9_800_000_000),
    ("example.com/ml/batch-scorer", "0.19.7", 5_100_000_000),
    ("example.com/ml/finetune", "3.1.0", 12_100_000_000),
    ("registry.k8s.io/csi-secrets-store/driver", "v1.4.7", 62_000_000),
    ("registry.k8s.io/sig-storage/csi-node-driver-registrar", "v2.12.0", 21_000_000),
    ("public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver", "v1.37.0", 88_000_000),
    ("docker.io/library/busybox", "1.37", 4_300_000),
    ("quay.io/jetstack/cert-manager-controller", "v1.16.2", 47_000_000),
    ("ghcr.io/kedacore/keda", "2.16.0", 98_000_000),
    ("docker.io/istio/proxyv2", "1.24.1", 96_000_000),
    ("nvcr.io/nvidia/cloud-native/dcgm", "3.3.9-1-ubuntu22.04", 1_860_000_000),
]


def node_name(i: int) -> str:
    return f"gpu-{i:05}"


def node_names(n: int) -> list[str]:
    return [node_name(i) for i in range(n)]


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


_IMAGE_DIGESTS = {repo: _digest(repo + tag) for repo, tag, _ in _IMAGES}


def node_dict(i: int, *, gpus: int | None = None) -> dict[str, Any]:
    """A GPU node as the scheduler's informer holds it (~7 KB of JSON)."""
    product, gfd, memory, per_node, family = _FLEET[i % len(_FLEET)]
    count = per_node if gpus is None else gpus
    name = node_name(i)
    zone = f"us-east-1{'abc'[i % 3]}"
    instance = {"H100": "p5.48xlarge", "A100-40GB": "p4d.24xlarge", "L40S": "g6e.48xlarge"}.get(
        product, "g4dn.12xlarge"
    )
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        "node.kubernetes.io/instance-type": instance,
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": zone,
        "topology.ebs.csi.aws.com/zone": zone,
        "karpenter.sh/nodepool": f"gpu-{product.lower()}",
        "karpenter.sh/capacity-type": "on-demand" if i % 4 else "spot",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": gfd,
        "nvidia.com/gpu.memory": memory,
        "nvidia.com/gpu.count": str(count),
        "nvidia.com/gpu.family": family,
        "nvidia.com/gpu.machine": instance,
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        "nvidia.com/cuda.driver.major": "560",
        "nvidia.com/cuda.driver.minor": "35",
        "nvidia.com/cuda.driver.rev": "03",
        "nvidia.com/cuda.runtime.major": "12",
        "nvidia.com/cuda.runtime.minor": "6",
        "nvidia.com/mig.capable": "true" if product != "T4" else "false",
        "nvidia.com/mig.strategy": "single",
        "feature.node.kubernetes.io/pci-10de.present": "true",
        "feature.node.kubernetes.io/cpu-model.vendor_id": "AMD",
        "feature.node.kubernetes.io/kernel-version.full": "6.1.0-27-cloud-amd64",
        "rack.example.com/id": f"rack-{i // 16:04}",
    }
    resources = {
        "cpu": "192",
        "ephemeral-storage": "3840Gi",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "2063731096Ki",
        "pods": "110",
        "nvidia.com/gpu": str(count),
    }
    stamp = "2026-11-25T10:00:00Z"
    conditions = [
        {
            "type": kind,
            "status": status,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": message,
        }
        for kind, status, reason, message in (
            ("NetworkUnavailable", "False", "CalicoIsUp", "Calico is running on this node"),
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            (
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        )
    ]
    images = [
        {"names": [f"{repo}@sha256:{_IMAGE_DIGESTS[repo]}", f"{repo}:{tag}"], "sizeBytes": size}
        for repo, tag, size in _IMAGES
    ]
    return {
        "metadata": {
            "name": name,
            "uid": f"{i:08x}-5f1c-4b7e-9a0d-{i:012x}",
            "resourceVersion": str(100_000 + i),
            "creationTimestamp": "2026-11-01T08:00:00Z",
            "labels": labels,
            "annotations": {
                "alpha.kubernetes.io/provided-node-ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",  # noqa: E501
                "csi.volume.kubernetes.io/nodeid": f'{{"ebs.csi.aws.com":"i-{i:017x}"}}',
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "karpenter.sh/nodeclaim": f"gpu-{product.lower()}-{i:05}",
            },
        },
        "spec": {
            "podCIDR": f"100.{64 + i // 65536 % 64}.{i // 256 % 256}.0/24",
            "podCIDRs": [f"100.{64 + i // 65536 % 64}.{i // 256 % 256}.0/24"],
            "providerID": f"aws:///{zone}/i-{i:017x}",
        },
        "status": {
            "capacity": dict(resources),
            "allocatable": resources,
            "conditions": conditions,
            "addresses": [
                {
                    "type": "InternalIP",
                    "address": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                },
                {
                    "type": "InternalDNS",
                    "address": f"ip-10-0-{i // 256 % 256}-{i % 256}.ec2.internal",
                },
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{i:032x}",
                "systemUUID": f"ec2{i:05x}-0000-0000-0000-{i:012x}",
                "bootID": f"{i:08x}-0000-4000-8000-{i:012x}",
                "kernelVersion": "6.1.0-27-cloud-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": "v1.36.3",
                "kubeProxyVersion": "v1.36.3",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": images,
        },
    }


def pod_workload(i: int, j: int) -> str:
    return "interactive" if (i + j) % 3 == 0 else "batch"


def pod_dict(
    name: str,
    workload: str,
    *,
    node: str = "",
    uid: str = "",
    gpus: int = 1,
    namespace: str = NAMESPACE,
    scheduler: str = "gpu-scheduler",
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A GPU pod as the scheduler sends it (managedFields stripped), ~2.5 KB of JSON."""
    interactive = workload == "interactive"
    app = "chat-server" if interactive else "batch-scorer"
    owner_kind = "ReplicaSet" if interactive else "Job"
    resources: dict[str, Any] = {
        "requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": str(gpus)},
        "limits": {"memory": "64Gi", "nvidia.com/gpu": str(gpus)},
    }
    spec: dict[str, Any] = {
        "schedulerName": scheduler,
        "priorityClassName": "inference-critical" if interactive else "",
        "priority": 1_000_000 if interactive else 0,
        "serviceAccountName": app,
        "restartPolicy": "Always" if interactive else "Never",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": False,
        "preemptionPolicy": "PreemptLowerPriority",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
        "containers": [
            {
                "name": "main",
                "image": f"example.com/ml/{app}:1.42.0",
                "args": ["--model", "/models/current", "--port", "8000"],
                "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
                "env": [
                    {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
                    {"name": "HF_HOME", "value": "/cache"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                "resources": resources,
                "volumeMounts": [
                    {"name": "models", "mountPath": "/models", "readOnly": True},
                    {"name": "cache", "mountPath": "/cache"},
                    {
                        "name": "kube-api-access",
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        "readOnly": True,
                    },
                ],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8000}, "periodSeconds": 5},
                "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            },
            {
                "name": "metrics",
                "image": "quay.io/prometheus/statsd-exporter:v0.27.2",
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
            },
        ],
        "volumes": [
            {
                "name": "models",
                "persistentVolumeClaim": {"claimName": f"{app}-models", "readOnly": True},
            },
            {"name": "cache", "emptyDir": {"sizeLimit": "50Gi"}},
            {
                "name": "kube-api-access",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                    ],
                },
            },
        ],
    }
    if node:
        spec["nodeName"] = node
    labels = {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/part-of": "ml-platform",
        f"{PREFIX}workload": workload,
        **(
            {"pod-template-hash": "7d9f8c6b5"}
            if interactive
            else {"batch.kubernetes.io/job-name": app}
        ),
        **(extra_labels or {}),
    }
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"uid-{name}",
            "resourceVersion": "2000001",
            "creationTimestamp": "2026-11-25T10:00:00Z",
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9102",
                "kubectl.kubernetes.io/default-container": "main",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1" if interactive else "batch/v1",
                    "kind": owner_kind,
                    "name": f"{app}-7d9f8c6b5" if interactive else app,
                    "uid": "5b0f6e1e-0000-4000-8000-000000000001",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
        "status": {"phase": "Running" if node else "Pending", "qosClass": "Burstable"},
    }


def bound_pods(i: int) -> int:
    """How many of node i's 10 pods are bound to it (the rest are pending): 5..8 on 8-GPU
    nodes, 2..4 on 4-GPU ones, so some nodes are full and most have room."""
    per_node = _FLEET[i % len(_FLEET)][3]
    return 5 + i % 4 if per_node == 8 else 2 + i % 3


def cluster_pod_dicts(
    nodes: int, start: int = 0, stop: int | None = None
) -> Iterator[dict[str, Any]]:
    """The cache's pod mix: 10 one-GPU pods per node, interactive and batch, some pending."""
    for i in range(start, nodes if stop is None else stop):
        bound = bound_pods(i)
        for j in range(PODS_PER_NODE):
            name = f"w-{i:05}-{j}"
            yield pod_dict(
                name, pod_workload(i, j), node=node_name(i) if j < bound else "", uid=f"u-{i}-{j}"
            )


def pending_uids(nodes: int, limit: int) -> list[tuple[str, str]]:
    """(pod name, uid) of pending pods of the mix, for bind bodies."""
    found = []
    for i in range(nodes):
        for j in range(bound_pods(i), PODS_PER_NODE):
            found.append((f"w-{i:05}-{j}", f"u-{i}-{j}"))
            if len(found) == limit:
                return found
    return found


def _pages(dicts: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    import orjson

    page: list[dict[str, Any]] = []
    for d in dicts:
        page.append(d)
        if len(page) == PAGE:
            yield orjson.dumps(page)
            page = []
    if page:
        yield orjson.dumps(page)


def build_cache(nodes: int, policy: Policy | None = None) -> tuple[Policy, ClusterCache]:
    """The cache `serve` would hold after listing these nodes and pods: objects decoded
    from JSON pages of 500 into the wire types, as the watch does, then replace_*()."""
    policy = policy or example_policy()
    gc.disable()  # hundreds of thousands of young objects: collections would only slow us
    try:
        return policy, _fill(ClusterCache(policy), nodes)
    finally:
        gc.enable()
        gc.collect()


def _fill(cache: ClusterCache, nodes: int) -> ClusterCache:
    """Page by page, as the watch's List applies them (a page is dropped once applied)."""
    node_decoder = msgspec.json.Decoder(list[Node])
    pod_decoder = msgspec.json.Decoder(list[Pod])
    names: set[str] = set()
    for page in _pages(node_dict(i) for i in range(nodes)):
        for node in node_decoder.decode(page):
            cache.upsert_node(node)
            names.add(node.metadata.name)
    cache.retain_nodes(names)
    uids: set[str] = set()
    for page in _pages(cluster_pod_dicts(nodes)):
        for pod in pod_decoder.decode(page):
            cache.upsert_pod(pod)
            uids.add(pod.metadata.uid)
    cache.retain_pods(uids)
    return cache


# ---- request bodies ------------------------------------------------------------------------

PROBES = ("interactive", "batch")


def probe_pod(workload: str, k: int = 0) -> dict[str, Any]:
    return pod_dict(f"probe-{workload}-{k}", workload, uid=f"probe-{workload}-{k}")


# Orders the bench names the nodes in: kube-scheduler checks nodes in parallel and names
# those that passed in the order its checks finished, another order for every pod.
ORDERS = 4


def cache_mode_body(nodes: int, workload: str, order: int = 0) -> bytes:
    """A filter/prioritize request naming every node: in node order (`order` 0), else in
    the shuffled order number `order`."""
    import random

    import orjson

    names = node_names(nodes)
    if order:
        random.Random(order).shuffle(names)
    return orjson.dumps({"Pod": probe_pod(workload), "Nodes": None, "NodeNames": names})


def write_cache_mode_bodies(directory: Path, nodes: int, stem: str = "cache") -> list[str]:
    """Request files for the load generator, which sends them in turn: each probe pod, with
    the nodes in each of the ORDERS shuffled orders, interleaved as the pods alternate."""
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for order in range(1, ORDERS + 1):
        for workload in PROBES:
            path = directory / f"{stem}-{nodes}-{workload}-{order}.json"
            path.write_bytes(cache_mode_body(nodes, workload, order))
            files.append(str(path))
    return files


def full_mode_body(nodes: int, workload: str) -> bytes:
    import orjson

    items = [node_dict(i) for i in range(nodes)]
    return orjson.dumps(
        {"Pod": probe_pod(workload), "Nodes": {"metadata": {}, "items": items}, "NodeNames": None}
    )


def bind_bodies(nodes: int, count: int = 64) -> list[bytes]:
    import orjson

    return [
        orjson.dumps(
            {
                "PodName": name,
                "PodNamespace": NAMESPACE,
                "PodUID": uid,
                "Node": node_name(k % nodes),
            }
        )
        for k, (name, uid) in enumerate(pending_uids(nodes, count))
    ]
