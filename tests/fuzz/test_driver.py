"""The fuzz report: its verdict follows the thresholds, and its RSS course shows the run."""

from __future__ import annotations

from tests.fuzz.driver import FuzzReport


def report(before: int, after: int, samples: list[tuple[int, int]]) -> FuzzReport:
    done = FuzzReport(seed=1, sent=samples[-1][0] if samples else 0, seconds=10.0)
    done.rss_before_kib, done.rss_after_kib = before, after
    done.rss_samples = samples
    done.probe_unchanged = True
    return done


def test_rss_growth_beyond_the_limit_does_not_hold() -> None:
    assert report(100_000, 109_900, []).holds
    assert not report(100_000, 110_100, []).holds


def test_the_rss_course_picks_evenly_spaced_samples_and_the_last() -> None:
    samples = [(i * 2_500, 102_400 + i * 1_024) for i in range(1, 26)]

    course = report(102_400, 128_000, samples).rss_course(points=5)

    assert course == ("12,500: 105.0, 25,000: 110.0, 37,500: 115.0, 50,000: 120.0, 62,500: 125.0")
    assert report(1, 1, samples[:7]).rss_course(points=3).endswith("15,000: 106.0, 17,500: 107.0")
    assert report(1, 1, []).rss_course() == "not sampled"
