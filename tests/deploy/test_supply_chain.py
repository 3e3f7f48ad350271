"""Supply chain: no dependency of ours (runtime and dev, as installed from pyproject.toml's
pins) has a known vulnerability, per pip-audit's PyPI advisory service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PIP_AUDIT = Path(sys.executable).parent / "pip-audit"


def test_no_installed_dependency_has_a_known_vulnerability(tmp_path: Path) -> None:
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(frozen)
    audit = subprocess.run(
        [str(PIP_AUDIT), "--requirement", str(requirements), "--no-deps", "--disable-pip",
         "--format", "json", "--progress-spinner", "off"],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    try:
        report = json.loads(audit.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pip-audit gave no report (exit {audit.returncode}): {audit.stderr[-2000:]}")
    dependencies = report["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    vulnerable = {
        f"{d['name']} {d['version']}": [v["id"] for v in d["vulns"]] for d in audited if d["vulns"]
    }
    assert vulnerable == {}, f"known vulnerabilities: {vulnerable}"
    if not audited:
        # The advisory service must answer for at least our dependencies to call this a pass.
        reasons = {d.get("skip_reason", "") for d in dependencies}
        pytest.skip(
            f"the advisory service could not audit any dependency here: {sorted(reasons)[:2]}"
        )
