"""Render the kustomize variants in manifests/ with the kubectl that `make controlplane`
builds (its `kubectl kustomize` is the kustomize users get with `kubectl apply -k`), and the
Helm chart in charts/ with the helm that `make helm` builds; and the checks both must pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import localcluster  # hack/, on pytest's pythonpath
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
CHART = REPO / "charts" / "gpuclass-extender"
VARIANTS = ("second-scheduler", "cluster-scheduler")
NAMESPACE = "gpuclass-system"
# Oldest and newest minor versions we support, and every one between (kubernetes-validate
# ships one schema set per minor). kubescheduler.config.k8s.io/v1 is the only config API
# left from 1.29 on; the local control plane runs 1.36.
SCHEMA_VERSIONS = tuple(f"1.{minor}.0" for minor in range(29, 37))
HELM_VERSION = "v3.22.0"  # hack/build-helm.sh builds this one
RUN_AS_USER = 65532

Obj = dict[str, Any]


def _cached_tool(path: Path, make_target: str) -> Path:
    """`path` if built; fails on CI (where `make test` builds it first), else skips."""
    if not os.access(path, os.X_OK):
        message = f"{path} not built: run `make {make_target}`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def kubectl() -> Path:
    """The kubectl of hack/build-controlplane.sh."""
    return _cached_tool(localcluster.default_bin_dir() / "kubectl", "controlplane")


def helm() -> Path:
    """The helm of hack/build-helm.sh (same cache dir and HELM_BIN_DIR override)."""
    if os.environ.get("HELM_BIN_DIR"):
        bin_dir = Path(os.environ["HELM_BIN_DIR"])
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        bin_dir = Path(cache) / "gpuclass-extender" / "helm" / HELM_VERSION
    return _cached_tool(bin_dir / "helm", "helm")


def run_helm(*args: str, values: Obj | None = None) -> subprocess.CompletedProcess[str]:
    """`helm ARGS CHART -f VALUES` (values as a file: JSON is YAML); the caller checks it."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values_file:
        json.dump(values or {}, values_file)
        values_file.flush()
        return subprocess.run(
            [str(helm()), *args, str(CHART), "-f", values_file.name],
            capture_output=True,
            text=True,
            timeout=60,
        )


def helm_template(values: Obj | None = None) -> list[Obj]:
    """The chart's objects for these values, installed as release gpuclass-extender into
    the namespace of the kustomize variants."""
    result = run_helm("template", "gpuclass-extender", "-n", NAMESPACE, values=values)
    if result.returncode != 0:
        raise AssertionError(f"helm template {values} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def render_text(variant: str) -> str:
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(MANIFESTS / variant)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {variant} failed:\n{result.stderr}")
    return result.stdout


def render(variant: str) -> list[Obj]:
    """The variant's objects, in kustomize's order."""
    return [doc for doc in yaml.safe_load_all(render_text(variant)) if doc is not None]


def find(objects: list[Obj], kind: str, name: str | None = None, hashed: bool = False) -> Obj:
    """The one object of this kind (and name; `hashed`: a generated name-<hash>)."""

    def named(obj: Obj) -> bool:
        actual = str(obj["metadata"]["name"])
        if name is None:
            return True
        if hashed:
            return re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", actual) is not None
        return actual == name

    matches = [o for o in objects if o["kind"] == kind and named(o)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, got {len(matches)}"
    return matches[0]


def pod_specs(objects: list[Obj]) -> list[tuple[str, Obj]]:
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    ]


def containers(objects: list[Obj]) -> list[tuple[str, Obj, Obj]]:
    """(workload/container, container, pod spec) for every container and init container."""
    return [
        (f"{workload}/{c['name']}", c, spec)
        for workload, spec in pod_specs(objects)
        for c in spec.get("initContainers", []) + spec["containers"]
    ]


def container(objects: list[Obj], name: str) -> tuple[Obj, Obj]:
    found = [(c, spec) for _, c, spec in containers(objects) if c["name"] == name]
    assert len(found) == 1, f"expected one container {name}, got {len(found)}"
    return found[0]


def assert_locked_down(objects: list[Obj]) -> None:
    """Every container runs as non-root with a read-only root filesystem, nothing to
    escalate to, bounded memory and probes; no pod shares the host's namespaces."""
    found = containers(objects)
    assert found
    for where, c, spec in found:
        pod = spec.get("securityContext", {})
        own = c.get("securityContext", {})

        def effective(key: str, own: Obj = own, pod: Obj = pod) -> Any:
            return own.get(key, pod.get(key))

        assert effective("runAsNonRoot") is True, where
        assert effective("runAsUser") == RUN_AS_USER, where  # numeric: kubelet can check it
        assert effective("seccompProfile") == {"type": "RuntimeDefault"}, where
        assert own.get("readOnlyRootFilesystem") is True, where
        assert own.get("allowPrivilegeEscalation") is False, where
        assert own.get("capabilities") == {"drop": ["ALL"]}, where
        assert own.get("privileged") in (None, False), where
        assert "memory" in c["resources"]["limits"], where
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
        assert "livenessProbe" in c, where
        assert "readinessProbe" in c, where
    for workload, spec in pod_specs(objects):
        assert not spec.get("hostNetwork"), workload
        assert not spec.get("hostPID"), workload
