"""Least privilege on the real control plane.

The second-scheduler variant is applied with `kubectl apply -k` (the install command), then
the extender and kube-scheduler run under tokens of the ServiceAccounts it creates
(TokenRequest API): they work, and are refused what they must not do.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import localcluster  # hack/, on pytest's pythonpath
import pytest
import yaml
from localcluster import ApiError, Kube

from tests.deploy.render import MANIFESTS, NAMESPACE, find, kubectl, render
from tests.integration.fleet import Fleet, wait_for
from tests.integration.stack import (
    EXAMPLE_POLICY,
    ExternalStack,
    LocalStack,
    SchedulerSettings,
    call_extender,
)

EXTENDER_SA = "gpuclass-extender"
SCHEDULER_SA = "gpu-scheduler"


@dataclass
class Deployed:
    stack: LocalStack
    applied: subprocess.CompletedProcess[str]
    dry_run: subprocess.CompletedProcess[str]

    def token(self, service_account: str) -> str:
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        }
        path = f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{service_account}/token"
        return str(self.stack.kube.request("POST", path, request)["status"]["token"])

    def kubeconfig(self, service_account: str, directory: Path) -> Path:
        """A kubeconfig with a fresh token of this ServiceAccount."""
        cluster = self.stack.cluster
        path = directory / f"{service_account}.kubeconfig"
        localcluster.write_kubeconfig(
            path, cluster.server_url, cluster.ca_file, self.token(service_account), service_account
        )
        return path

    def allowed(self, service_account: str, verb: str, resource: str, **attributes: str) -> bool:
        """SubjectAccessReview (as admin) for this ServiceAccount."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{NAMESPACE}:{service_account}",
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{NAMESPACE}",
                    "system:authenticated",
                ],
                "resourceAttributes": {"verb": verb, "resource": resource, **attributes},
            },
        }
        path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
        result = self.stack.kube.request("POST", path, review)
        return bool(result["status"].get("allowed"))


def run_kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubectl()), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def deployed(stack: LocalStack | ExternalStack) -> Iterator[Deployed]:
    if not isinstance(stack, LocalStack):
        pytest.skip("installs cluster-wide RBAC and restarts the scheduler (local stack only)")
    admin = stack.cluster.kubeconfig
    applied = run_kubectl(admin, "apply", "-k", str(MANIFESTS / "second-scheduler"))
    assert applied.returncode == 0, applied.stderr
    # The other variant, checked by the same apiserver (it shares the base with this one).
    dry_run = run_kubectl(
        admin, "apply", "--dry-run=server", "-k", str(MANIFESTS / "cluster-scheduler")
    )
    try:
        yield Deployed(stack, applied, dry_run)
    finally:
        # The uninstall command; --wait=false: without kube-controller-manager the namespace
        # would stay Terminating.
        deleted = run_kubectl(
            admin, "delete", "--wait=false", "-k", str(MANIFESTS / "second-scheduler")
        )
        assert deleted.returncode == 0, deleted.stderr


class Extender(localcluster.ExtenderProcess):
    """`gpuclass-extender serve` with the given kubeconfig, on its own port."""

    def __init__(
        self, kubeconfig: Path, directory: Path, scheduler_name: str = "gpu-scheduler"
    ) -> None:
        policy = directory / "policy.yaml"
        policy.write_text(EXAMPLE_POLICY.read_text())
        super().__init__(
            kubeconfig=kubeconfig,
            policy=policy,
            log=directory / f"extender-{kubeconfig.stem}.log",
            extra_args=("--scheduler-name", scheduler_name),
        )

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return call_extender(self.url, method, path, body)

    def wait_cached(self, node: str, timeout: float = 15) -> None:
        """Until the node, created after the extender listed, arrives through its watch."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call("GET", f"/debug/cache?node={node}")[0] == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"extender never saw node {node}:\n{self.log.read_text()}")


@pytest.fixture
def fleet_of(deployed: Deployed) -> Iterator[Fleet]:
    created = Fleet(deployed.stack)
    try:
        yield created
    finally:
        created.cleanup()


def forbidden(kube: Kube, method: str, path: str, body: Any = None) -> bool:
    content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
    try:
        kube.request(method, path, body, content_type)
    except ApiError as exc:
        return exc.status == 403
    return False


# ---- the manifests on the real apiserver -------------------------------------------------------


def test_both_variants_are_admitted_by_the_apiserver(deployed: Deployed) -> None:
    # No PodSecurity ("restricted") or deprecation warnings for any object.
    assert "Warning" not in deployed.applied.stderr, deployed.applied.stderr
    assert deployed.dry_run.returncode == 0, deployed.dry_run.stderr
    assert "Warning" not in deployed.dry_run.stderr, deployed.dry_run.stderr
    # And the namespace label is enforced: a pod without the hardening is refused.
    kube = deployed.stack.kube
    pod = {
        "metadata": {"name": "unhardened"},
        "spec": {"containers": [{"name": "main", "image": "example/app:1"}]},
    }
    with pytest.raises(ApiError, match="violates PodSecurity") as refused:
        kube.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod)
    assert refused.value.status == 403


# ---- the extender's own ServiceAccount (variant b) ---------------------------------------------


def test_the_extender_works_as_its_service_account_and_no_more(
    deployed: Deployed, fleet_of: Fleet, tmp_path: Path
) -> None:
    kubeconfig = deployed.kubeconfig(EXTENDER_SA, tmp_path)
    # It binds pods of a scheduler that does not run here, so none races it.
    extender = Extender(kubeconfig, tmp_path, scheduler_name="nobody")
    try:
        extender.start()  # waits until it listed nodes and pods
        node = fleet_of.node("h100", "H100")
        extender.wait_cached(node)  # watches nodes

        # A pending pod no running scheduler picks up; the extender's bind verb binds it
        # (reading it first with its own token: only pods of its schedulers, still unbound).
        name = "bind-me"
        pod = {
            "metadata": {"name": name},
            "spec": {
                "schedulerName": "nobody",
                "containers": [{"name": "main", "image": "example/app:1"}],
            },
        }
        kube = fleet_of.kube
        created = kube.request("POST", f"/api/v1/namespaces/{fleet_of.namespace}/pods", pod)
        fleet_of.pods.append(name)
        args = {
            "PodName": name,
            "PodNamespace": fleet_of.namespace,
            "PodUID": created["metadata"]["uid"],
            "Node": node,
        }
        assert extender.call("POST", "/bind", args) == (200, {"Error": ""})
        assert fleet_of.get_pod(name)["spec"]["nodeName"] == node
        # Bound now: a bind elsewhere is refused, before any API call.
        status, answer = extender.call("POST", "/bind", {**args, "Node": "elsewhere"})
        assert status == 200
        assert f"refused: the pod is already bound to {node}" in answer["Error"]

        # Its Events, written with its own token (the pod need not exist for an Event): a
        # pod our filter leaves without a node gets the GpuClassUnschedulable summary.
        gpu_pod = {
            "metadata": {
                "name": "unplaceable",
                "namespace": fleet_of.namespace,
                "uid": "u-unplaceable",
                "annotations": {"gpuclass.example.io/required-classes": "economy"},
            },
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "resources": {
                            "requests": {"nvidia.com/gpu": "1"},
                            "limits": {"nvidia.com/gpu": "1"},
                        },
                    }
                ]
            },
        }
        # No node fits: before saying so, the filter reads the node (get nodes, its token).
        status, answer = extender.call("POST", "/filter", {"Pod": gpu_pod, "NodeNames": [node]})
        assert (status, answer["NodeNames"]) == (200, [])
        events = f"/apis/events.k8s.io/v1/namespaces/{fleet_of.namespace}/events"
        wait_for(
            lambda: kube.request("GET", f"{events}?fieldSelector=regarding.name=unplaceable")[
                "items"
            ],
            10,
            "the extender's GpuClassUnschedulable event",
        )

        # What it must not do, with its own token.
        own = Kube(kubeconfig)
        ns = fleet_of.namespace
        refused: dict[str, tuple[Any, ...]] = {
            "patch a node": ("PATCH", f"/api/v1/nodes/{node}", {"metadata": {"labels": {}}}),
            "delete a node": ("DELETE", f"/api/v1/nodes/{node}"),
            "create a pod": ("POST", f"/api/v1/namespaces/{ns}/pods", pod),
            "list events": ("GET", f"/apis/events.k8s.io/v1/namespaces/{ns}/events"),
            "delete a pod": ("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}"),
            "list secrets": ("GET", "/api/v1/secrets"),
            "read configmaps": ("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps"),
            "create a lease": (
                "POST",
                f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases",
                {"metadata": {"name": "x"}},
            ),
            "mint the scheduler's token": (
                "POST",
                f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SCHEDULER_SA}/token",
                {"spec": {}},
            ),
            "grant itself more": (
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                {
                    "metadata": {"name": "x"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "cluster-admin",
                    },
                    "subjects": [
                        {"kind": "ServiceAccount", "name": EXTENDER_SA, "namespace": NAMESPACE}
                    ],
                },
            ),
        }
        not_refused = [what for what, call in refused.items() if not forbidden(own, *call)]
        assert not_refused == []
        # /debug/doctor lists nodes, pods and node templates with the same identity.
        status, report = extender.call("GET", "/debug/doctor")
        assert status == 200
        assert [f for f in report["findings"] if f["code"] == "templates-unreadable"] == []
        assert own.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")["spec"]["nodeName"]
    finally:
        extender.stop()
    log = extender.log.read_text()
    assert forbidden_answers(log) == [], log


def forbidden_answers(log: str) -> list[str]:
    """Log lines reporting an API answer 403 or Forbidden (KubeError's `what: 403 ...`), not
    a port, resource version or path that happens to contain the digits."""
    return [line for line in log.splitlines() if re.search(r": 403\b|forbidden", line, re.I)]
    assert "forbidden" not in log.lower(), log


def test_subject_access_reviews_of_the_extender(deployed: Deployed) -> None:
    def may(verb: str, resource: str, **attributes: str) -> bool:
        return deployed.allowed(EXTENDER_SA, verb, resource, **attributes)

    assert may("list", "nodes")
    assert may("watch", "nodes")
    assert may("list", "pods")
    assert may("watch", "pods")
    assert may("get", "pods", namespace="team-a")
    assert may("create", "pods", subresource="binding", namespace="team-a")
    assert may("list", "nodepools", group="karpenter.sh")
    assert may("list", "machinedeployments", group="cluster.x-k8s.io")
    assert not may("get", "nodepools", group="karpenter.sh")
    assert not may("update", "nodepools", group="karpenter.sh")
    assert may("get", "nodes")  # a filter that admits none of a few nodes reads them
    assert not may("update", "nodes")
    assert not may("update", "pods", subresource="status", namespace="team-a")
    assert not may("delete", "pods", namespace="team-a")
    assert not may("create", "pods", subresource="eviction", namespace="team-a")
    # Its Events on pods: events.k8s.io only, create and patch (a series), nothing more.
    events = {"group": "events.k8s.io", "namespace": "team-a"}
    assert may("create", "events", **events)
    assert may("patch", "events", **events)
    assert not may("get", "events", **events)
    assert not may("list", "events", **events)
    assert not may("delete", "events", **events)
    assert not may("create", "events", namespace="team-a")  # core/v1 events: not used
    assert not may("get", "secrets", namespace=NAMESPACE)
    assert not may("*", "*")


# ---- kube-scheduler's ServiceAccount (variant a; the sidecar shares it) ------------------------


def test_the_scheduler_and_its_sidecar_work_as_the_scheduler_service_account(
    deployed: Deployed, fleet_of: Fleet, tmp_path: Path
) -> None:
    stack = deployed.stack
    kubeconfig = deployed.kubeconfig(SCHEDULER_SA, tmp_path)
    # The sidecar's identity is the pod's: the scheduler's ServiceAccount.
    extender = Extender(kubeconfig, tmp_path)
    log = stack.cluster.logs["kube-scheduler"]
    offset = log.stat().st_size if log.exists() else 0
    try:
        extender.start()
        # The shipped config, from the rendered ConfigMap; only the sidecar's port differs.
        rendered = find(
            render("second-scheduler"), "ConfigMap", "gpu-scheduler-config", hashed=True
        )
        config = yaml.safe_load(rendered["data"]["scheduler-config.yaml"])
        config["extenders"][0]["urlPrefix"] = extender.url
        config_path = tmp_path / "scheduler-config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        # As in the pod: leader election on (Lease gpuclass-system/gpu-scheduler), the
        # ServiceAccount for the API and for delegated authn/authz of the secure port.
        stack.cluster.restart_scheduler(config_path, kubeconfig=kubeconfig, leader_elect=True)
        node = fleet_of.node("h100", "H100")
        fleet_of.node("t4", "T4")
        extender.wait_cached(node)
        pod = fleet_of.pod("chat", gpus=1, workload="interactive")
        assert fleet_of.bound(pod) == node  # scheduled through the extender, bound by it

        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/gpu-scheduler"
        lease = stack.kube.request("GET", lease_path)
        assert lease["spec"]["holderIdentity"]
    finally:
        extender.stop()
        # Back to the stack's own scheduler (admin, no leader election) for other tests.
        stack.settings = None
        stack.configure_scheduler(SchedulerSettings())
    scheduler_log = log.read_text(errors="replace")[offset:]
    refusals = [line for line in scheduler_log.splitlines() if "forbidden" in line.lower()]
    assert refusals == [], "\n".join(refusals[:10])
    assert "forbidden" not in extender.log.read_text().lower()


def test_subject_access_reviews_of_the_scheduler(deployed: Deployed) -> None:
    def may(verb: str, resource: str, **attributes: str) -> bool:
        return deployed.allowed(SCHEDULER_SA, verb, resource, **attributes)

    lease = {"group": "coordination.k8s.io", "namespace": NAMESPACE}
    # Its own Lease (Role gpu-scheduler-leader-election), not any other.
    assert may("create", "leases", **lease)
    assert may("get", "leases", name="gpu-scheduler", **lease)
    assert may("update", "leases", name="gpu-scheduler", **lease)
    assert not may("update", "leases", name="someone-else", **lease)
    assert not may("delete", "leases", name="gpu-scheduler", **lease)
    # system:kube-scheduler and system:volume-scheduler.
    assert may("create", "pods", subresource="binding", namespace="team-a")
    assert may("watch", "pods")
    assert may("watch", "nodes")
    assert may("list", "storageclasses", group="storage.k8s.io")
    assert may("update", "persistentvolumes")
    # extension-apiserver-authentication-reader: that one ConfigMap only.
    auth = {"namespace": "kube-system"}
    assert may("get", "configmaps", name="extension-apiserver-authentication", **auth)
    assert not may("get", "configmaps", name="kubeadm-config", **auth)
    # Nothing cluster-admin-like.
    assert not may("*", "*")
    assert not may("get", "secrets", namespace="kube-system")
    assert not may("create", "pods", namespace="team-a")
    assert not may("delete", "nodes")
    assert not may("create", "clusterrolebindings", group="rbac.authorization.k8s.io")
    assert not may("impersonate", "users")
    assert not may("create", "serviceaccounts", subresource="token", namespace=NAMESPACE)
