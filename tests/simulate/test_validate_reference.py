"""hack/validate_reference.py: seed ranges, the comparison table, a run on a tiny trace."""

from __future__ import annotations

from pathlib import Path

import pytest
import validate_reference as validate

from extender.simulate import reference_policy


def test_seed_ranges_and_lists_are_expanded() -> None:
    assert validate.parse_seeds("42-44,50") == [42, 43, 44, 50]


def test_the_table_flags_checked_policies_off_by_more_than_the_tolerance() -> None:
    outcomes = [
        validate.Outcome("default", "FGD", 42, 6.0, 0, 1, 0.1),  # published 4.77
        validate.Outcome("default", "DotProd", 42, 11.0, 0, 1, 0.1),  # not checked
        validate.Outcome("default", "BestFit", 42, 7.5, 0, 1, 0.1),  # published 7.09
    ]
    table, misses = validate.markdown(outcomes, tolerance=1.0)
    assert misses == ["default FGD: +1.23"]
    assert "| default | FGD | 6.00 | 6.00-6.00 | 4.77 | +1.23 **!** | 0.1 |" in table
    assert "| default | BestFit | 7.50 | 7.50-7.50 | 7.09 | +0.41 | 0.1 |" in table


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown policy"):
        reference_policy("Tetris")


def test_a_run_on_a_tiny_trace_writes_the_table(tmp_path: Path) -> None:
    (tmp_path / validate.NODE_FILE).write_text(
        "sn,cpu_milli,memory_mib,gpu,model\n"
        + "".join(f"n{i},32000,131072,{2 + 2 * (i % 2)},T4\n" for i in range(6))
    )
    (tmp_path / "openb_pod_list_default.csv").write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"
        "p0,4000,8192,1,300\np1,8000,16384,1,1000\np2,2000,4096,0,0\np3,4000,8192,2,1000\n"
    )
    out = tmp_path / "table.md"
    args = ["--data-dir", str(tmp_path), "--traces", "default", "--policies", "BestFit,FGD"]
    status = validate.main([*args, "--seeds", "42-43", "--output", str(out), "--check"])
    table = out.read_text()
    assert "| default | BestFit |" in table
    assert "| default | FGD |" in table
    assert status in (0, 1)  # a toy trace is not expected to match the paper
