"""The simulator's `extender-profile` against the real kube-scheduler with `serve`, on a
small slice of the openb trace (hack/sim_to_real.py; `make sim-to-real` runs a larger one
and writes docs/sim-to-real.md)."""

from __future__ import annotations

from pathlib import Path

import localcluster
import pytest
import sim_to_real

# A real run is one more draw of the scheduler's random tie-breaks: it must look like one
# of the model's seeds, give or take the tolerance of the full comparison.
SLICE_NODES = 30


def test_the_model_places_a_trace_slice_as_the_real_scheduler_does(tmp_path: Path) -> None:
    if not localcluster.binaries_available():
        pytest.fail("kube-apiserver/kube-scheduler not built: run `make controlplane`")
    found = sim_to_real.compare(SLICE_NODES, 1.2, 400, 42, tmp_path)

    assert found.disagreements == 0, "the real cluster placed pods our books call impossible"
    assert found.real.placed > 0
    for measure, tolerance in sim_to_real.TOLERANCE.items():
        real = getattr(found.real, measure)
        seeds = [getattr(model, measure) for model in found.models]
        assert min(seeds) - tolerance <= real <= max(seeds) + tolerance, (
            f"{measure}: real {real:.2f}, model seeds {min(seeds):.2f}..{max(seeds):.2f}"
        )
    assert found.real.gpu_colocated == 0.0
