"""The CLI as the integration tests run it: JSON output, and `doctor` on a fleet's cluster."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extender.cli.main import main
from tests.integration.fleet import Fleet
from tests.integration.stack import EXAMPLE_POLICY


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """`gpuclass-extender ARGV -o json`: its exit code and decoded output."""
    code = main([*argv, "-o", "json"])
    return code, orjson.loads(capsys.readouterr().out)


def doctor(capsys: pytest.CaptureFixture[str], fleet: Fleet) -> tuple[int, Any]:
    """`doctor` on the fleet's cluster with the example policy."""
    kubeconfig = str(fleet.kube.kubeconfig)
    return run(capsys, "doctor", "--kubeconfig", kubeconfig, "--policy", str(EXAMPLE_POLICY))


def findings_on(report: Any, subject: str) -> dict[str, Any]:
    """A doctor report's findings on one subject, by code."""
    return {f["code"]: f for f in report["findings"] if f["subject"] == subject}
