"""Render the kustomize variants in manifests/ with the kubectl that `make controlplane`
builds (its `kubectl kustomize` is the kustomize users get with `kubectl apply -k`)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import localcluster  # hack/, on pytest's pythonpath
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
VARIANTS = ("second-scheduler", "cluster-scheduler")
NAMESPACE = "gpuclass-system"


def kubectl() -> Path:
    """The cached kubectl; fails on CI (where `make test` builds it first), else skips."""
    path = localcluster.default_bin_dir() / "kubectl"
    if not os.access(path, os.X_OK):
        message = f"{path} not built: run `make controlplane`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


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


def render(variant: str) -> list[dict[str, Any]]:
    """The variant's objects, in kustomize's order."""
    return [doc for doc in yaml.safe_load_all(render_text(variant)) if doc is not None]


def find(
    objects: list[dict[str, Any]], kind: str, name: str | None = None, hashed: bool = False
) -> dict[str, Any]:
    """The one object of this kind (and name; `hashed`: a generated name-<hash>)."""

    def named(obj: dict[str, Any]) -> bool:
        actual = str(obj["metadata"]["name"])
        if name is None:
            return True
        if hashed:
            return re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", actual) is not None
        return actual == name

    matches = [o for o in objects if o["kind"] == kind and named(o)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, got {len(matches)}"
    return matches[0]
