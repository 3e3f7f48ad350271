"""The end-to-end CPU profile's categories: each sample counted once, in the first that fits."""

from __future__ import annotations

import pytest
from bench.cpuprofile import EVENT_LOOP, OTHER, categorise

LOOP = "main (x.py:1);Runner.run (asyncio/runners.py:118)"
STACKS = "\n".join(
    [
        f"{LOOP};errors_and_metrics (app.py:1);filter_handler (app.py:2);_group (engine.py:3) 6",
        f"{LOOP};RequestHandler.finish_response (p.py:1);StreamResponse.write_eof (w.py:2) 3",
        f"{LOOP} 2",
        f"{LOOP};ClientRequest.write_bytes (c.py:1) 1",
        f"{LOOP};errors_and_metrics (app.py:1);MetricWrapperBase.labels (m.py:1) 1",
        f"{LOOP};mystery (m.py:9) 1",
        "not a stack line",
    ]
)


def test_each_sample_counts_once_in_the_first_category_that_fits() -> None:
    profile = categorise(STACKS, "shipped", 1000)
    assert profile.samples == 14
    assert profile.shares == pytest.approx(
        {
            "filter verb: decode, rules, answer": 6 / 14,  # not also middleware
            "answers written to the scheduler (send included)": 3 / 14,
            EVENT_LOOP: 2 / 14,
            "API calls: TLS writes and reads": 1 / 14,
            "middleware: limits, metrics, errors": 1 / 14,
            OTHER: 1 / 14,
        }
    )
    leaf, share = profile.top[0]
    assert leaf == "_group (engine.py:3)"
    assert share == pytest.approx(6 / 14)


def test_an_empty_profile_has_no_shares() -> None:
    profile = categorise("", "floor", 1000)
    assert (profile.samples, profile.shares, profile.top) == (0, {}, [])
