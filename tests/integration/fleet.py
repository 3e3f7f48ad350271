"""One test's GPU nodes, namespace and pods, created through the API and cleaned up after.

Every pod carries a nodeSelector for its own fleet, so tests never place pods on another
test's nodes, nor on a real cluster's nodes when the suite runs against one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from localcluster import ApiError, Kube, gfd_labels

from tests.integration.stack import SCHEDULER_NAME, ExternalStack, LocalStack

PREFIX = "gpuclass.example.io/"
FLEET_LABEL = "gpuclass-e2e/fleet"


class Fleet:
    def __init__(self, stack: LocalStack | ExternalStack) -> None:
        self.stack = stack
        self.kube: Kube = stack.kube
        self.id = uuid.uuid4().hex[:6]
        self.namespace = f"e2e-{self.id}"
        self.nodes: list[str] = []
        self.pods: list[str] = []
        self.kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": self.namespace}})

    # ---- nodes ---------------------------------------------------------------------------

    def node(
        self,
        name: str,
        product: str | None = "H100",
        gpus: int = 8,
        labels: dict[str, str] | None = None,
        cpu: str = "64",
        labeller: Callable[[str, int], dict[str, str]] = gfd_labels,
    ) -> str:
        """A kubelet-less Ready node with nvidia.com/gpu capacity and the GPU labels
        `labeller` gives (GPU Feature Discovery's unless told otherwise)."""
        full = f"{self.id}-{name}"
        all_labels = {
            "kubernetes.io/hostname": full,
            "kubernetes.io/os": "linux",
            FLEET_LABEL: self.id,
        }
        if product is not None:
            all_labels |= labeller(product, gpus)
        all_labels |= labels or {}
        self.kube.request(
            "POST", "/api/v1/nodes", {"metadata": {"name": full, "labels": all_labels}}
        )
        self.nodes.append(full)
        capacity = {"cpu": cpu, "memory": "512Gi", "pods": "110"}
        if gpus:
            capacity["nvidia.com/gpu"] = str(gpus)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "fake node (e2e)",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
            }
        }
        self.kube.request(
            "PATCH", f"/api/v1/nodes/{full}/status", status, "application/merge-patch+json"
        )
        return full

    def label_node(self, node: str, labels: dict[str, str | None]) -> None:
        patch = {"metadata": {"labels": labels}}
        self.kube.request("PATCH", f"/api/v1/nodes/{node}", patch, "application/merge-patch+json")

    def await_cached(self) -> None:
        """Wait until the extender's cache holds every node of this fleet."""
        if not isinstance(self.stack, LocalStack):
            time.sleep(2.0)
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(self.stack.debug_cache(n) is not None for n in self.nodes):
                return
            time.sleep(0.02)
        raise AssertionError(f"extender cache never saw nodes {self.nodes}")

    def await_pods_cached(self, node: str, count: int) -> None:
        """Wait until the extender's cache charges `count` GPU pods to `node`."""
        if not isinstance(self.stack, LocalStack):
            time.sleep(2.0)
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            cached = self.stack.debug_cache(node)
            if cached is not None and len(cached["pods"]) >= count:
                return
            time.sleep(0.02)
        raise AssertionError(f"extender cache never saw {count} pods on {node}")

    # ---- pods ----------------------------------------------------------------------------

    def pod_template(
        self,
        gpus: int = 1,
        workload: str | None = None,
        annotations: dict[str, str] | None = None,
        cpu: str = "1",
        node_selector: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Metadata and spec of a pod for our scheduler that selects the fleet's nodes, and
        `node_selector` besides (for pods, and the templates of workloads)."""
        labels = {f"{PREFIX}workload": workload} if workload else {}
        resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": "1Gi"}}
        if gpus:
            resources["requests"]["nvidia.com/gpu"] = str(gpus)
            resources["limits"] = {"nvidia.com/gpu": str(gpus)}
        spec: dict[str, Any] = {
            "schedulerName": SCHEDULER_NAME,
            "nodeSelector": {FLEET_LABEL: self.id, **(node_selector or {})},
            # On a cluster with a controller-manager (kind), kubelet-less nodes soon get
            # these taints; the pods never run, so tolerating them changes nothing else.
            "tolerations": [
                {"key": f"node.kubernetes.io/{taint}", "operator": "Exists"}
                for taint in ("not-ready", "unreachable")
            ],
            "containers": [{"name": "main", "image": "example/app:1", "resources": resources}],
        }
        metadata = {
            "labels": labels,
            "annotations": {PREFIX + k: v for k, v in (annotations or {}).items()},
        }
        return {"metadata": metadata, "spec": spec}

    def pod(
        self,
        name: str,
        gpus: int = 1,
        workload: str | None = None,
        annotations: dict[str, str] | None = None,
        node_name: str | None = None,
        cpu: str = "1",
        node_selector: dict[str, str] | None = None,
        replica_set: str | None = None,
    ) -> str:
        """Create a pod of `pod_template` (or bound to `node_name` directly), owned by
        `replica_set` if given (as a Deployment's pods are)."""
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            **self.pod_template(gpus, workload, annotations, cpu, node_selector),
        }
        manifest["metadata"]["name"] = name
        if replica_set:
            owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set}
            uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.namespace}/{replica_set}"))
            manifest["metadata"]["ownerReferences"] = [{**owner, "uid": uid, "controller": True}]
        if node_name:
            manifest["spec"]["nodeName"] = node_name
        self.kube.request("POST", f"/api/v1/namespaces/{self.namespace}/pods", manifest)
        self.pods.append(name)
        return name

    def get_pod(self, name: str) -> Any:
        return self.kube.request("GET", f"/api/v1/namespaces/{self.namespace}/pods/{name}")

    def failed_scheduling(self, name: str) -> list[str]:
        selector = f"involvedObject.name={name},reason=FailedScheduling"
        events = self.kube.request(
            "GET", f"/api/v1/namespaces/{self.namespace}/events?fieldSelector={selector}"
        )
        return [e["message"] for e in events["items"]]

    def bound(self, name: str, timeout: float = 20) -> str:
        """The node the pod was bound to; fails with its scheduling events if it was not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = self.get_pod(name)["spec"].get("nodeName")
            if node:
                return str(node)
            time.sleep(0.05)
        raise AssertionError(f"pod {name} not bound in {timeout} s: {self.failed_scheduling(name)}")

    def pending_reason(self, name: str, timeout: float = 20) -> str:
        """The pod's FailedScheduling message; fails if the pod gets bound instead."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = self.get_pod(name)["spec"].get("nodeName")
            if node:
                raise AssertionError(f"pod {name} was expected to stay Pending, bound to {node}")
            messages = self.failed_scheduling(name)
            if messages:
                return messages[-1]
            time.sleep(0.05)
        raise AssertionError(f"pod {name}: no FailedScheduling event in {timeout} s")

    def still_pending(self, name: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            node = self.get_pod(name)["spec"].get("nodeName")
            assert not node, f"pod {name} was expected to stay Pending, bound to {node}"
            time.sleep(0.1)

    # ---- cleanup -------------------------------------------------------------------------

    def cleanup(self) -> None:
        for pod in self.pods:
            self._delete(f"/api/v1/namespaces/{self.namespace}/pods/{pod}?gracePeriodSeconds=0")
        for node in self.nodes:
            self._delete(f"/api/v1/nodes/{node}")
        self._delete(f"/api/v1/namespaces/{self.namespace}")

    def _delete(self, path: str) -> None:
        try:
            self.kube.request("DELETE", path)
        except ApiError as exc:
            if exc.status != 404:
                raise


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until `condition` holds; fails saying `what` did not happen in time."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started
