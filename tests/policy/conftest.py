"""Policy documents as plain dicts, to edit one field per test and load as YAML."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.builders import EXAMPLE_POLICY

MINIMAL_POLICY = """\
apiVersion: gpuclass.example.io/v1alpha1
kind: GpuClassPolicy
gpuClasses:
- {name: premium, products: [H100, A100-80GB]}
- {name: standard, products: [A100, L40S]}
- {name: economy, products: [T4]}
workloadClassification: {default: batch}
workloadClasses:
  batch: {}
  interactive: {}
"""


@pytest.fixture
def minimal_doc() -> dict[str, Any]:
    """The smallest valid policy: three classes, two workload classes, all else default."""
    doc: dict[str, Any] = yaml.safe_load(MINIMAL_POLICY)
    return doc


@pytest.fixture
def example_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE_POLICY.read_text())
    return doc
