"""A slice of the fuzz campaign (`make fuzz` runs 1,000,000 requests) against the real
`serve` process of the local stack, whose cache follows a real kube-apiserver."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz.driver import fuzz
from tests.integration.fleet import Fleet
from tests.integration.stack import LocalStack

REQUESTS = int(os.environ.get("GPUCLASS_FUZZ_REQUESTS", "20000"))
SECONDS = float(os.environ.get("GPUCLASS_FUZZ_SECONDS", "600"))
SEED = int(os.environ.get("GPUCLASS_FUZZ_SEED", "20261126"))
REPORT = os.environ.get("GPUCLASS_FUZZ_REPORT", "")
COMMAND = os.environ.get("GPUCLASS_FUZZ_COMMAND", "make fuzz")


def test_the_extender_holds_under_fuzzed_requests(local: LocalStack, fleet: Fleet) -> None:
    known = [fleet.node("h100", "H100"), fleet.node("l40s", "L40S", 4), fleet.node("t4", "T4", 2)]
    fleet.await_cached()

    report = fuzz(
        local.extender_url,
        local.extender.pid,
        known,
        seed=SEED,
        requests_wanted=REQUESTS,
        seconds=SECONDS,
    )

    print(report.summary())
    if REPORT:  # `make fuzz`: the report writes itself, verdict and thresholds included
        Path(REPORT).write_text(report.markdown(command=COMMAND))
    assert report.sent == REQUESTS or report.seconds >= SECONDS  # all sent, or out of time
    assert report.violations == []
    assert report.probe_unchanged
    assert report.rss_growth <= 0.10, report.summary()
    # Every kind of request was exercised, well-formed and not.
    kinds = {"filter", "prioritize", "bind", "explain", "mutate", "body", "raw"}
    assert set(report.kinds) == kinds
    assert {"200", "400"} <= set(report.statuses)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-s"])
