"""The example policy as a dict, for rule tests that change one setting."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.builders import EXAMPLE_POLICY


@pytest.fixture
def example_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE_POLICY.read_text())
    return doc
