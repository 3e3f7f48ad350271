"""The EventRecorder: series within the window, new Events after it, spam filter, bounded
queue, note limit; with a fake sink and a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from extender.errors import KubeError
from extender.state.events import (
    NOTE_LIMIT_BYTES,
    EventBody,
    EventRecorder,
    ObjectRef,
    Observation,
    Outcome,
    truncate_note,
)

POD = ObjectRef(namespace="ml", name="infer", uid="u-1")


@dataclass
class FakeSink:
    """Keeps what an apiserver would: Events by name, and every call."""

    events: dict[str, EventBody] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # (verb, name, count)
    fail_with: int | None = None

    async def create(self, event: EventBody) -> None:
        if self.fail_with is not None:
            raise KubeError("create refused", self.fail_with)
        self.calls.append(("create", event.name, event.count))
        self.events[event.name] = event
        self.counts[event.name] = event.count

    async def patch_series(
        self, *, namespace: str, name: str, count: int, last_observed: float
    ) -> None:
        if self.fail_with is not None:
            raise KubeError("patch refused", self.fail_with)
        self.calls.append(("patch", name, count))
        if name not in self.events:
            raise KubeError("not found", 404)
        self.counts[name] = count


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    recorder: EventRecorder
    sink: FakeSink
    clock: Clock
    outcomes: list[Outcome]

    async def settle(self) -> None:
        await self.recorder.drain()
        await self.recorder.flush()


def setup(**options: float) -> Setup:
    sink, clock = FakeSink(), Clock()
    outcomes: list[Outcome] = []
    recorder = EventRecorder(
        sink,
        controller="gpuclass.example.io/extender",
        instance="extender-0",
        clock=clock,
        on_outcome=outcomes.append,
        **options,  # type: ignore[arg-type]
    )
    return Setup(recorder, sink, clock, outcomes)


def seen(
    note: str = "0/3 nodes: 3 wrong GPU class (need premium)", pod: ObjectRef = POD
) -> Observation:
    return Observation(pod, "Warning", "GpuClassUnschedulable", "Scheduling", note)


async def test_a_first_observation_creates_one_event_with_the_reporter() -> None:
    s = setup()
    s.recorder.record(seen())
    await s.settle()
    [(verb, name, count)] = s.sink.calls
    assert (verb, count) == ("create", 1)
    assert name.startswith("infer.")
    event = s.sink.events[name]
    assert event.observation == seen()
    assert (event.controller, event.instance) == ("gpuclass.example.io/extender", "extender-0")
    assert event.event_time == s.clock.now
    assert s.outcomes == ["recorded"]


async def test_repeats_within_the_window_patch_the_series_instead_of_creating() -> None:
    s = setup(patch_interval=30)
    s.recorder.record(seen())
    await s.settle()
    s.clock.now += 10
    assert s.recorder.record(seen()) == "aggregated"
    await s.settle()
    name = s.sink.calls[0][1]
    assert s.sink.calls[1] == ("patch", name, 2)  # the first repeat at once
    for _ in range(3):
        s.clock.now += 5
        s.recorder.record(seen())
    await s.settle()
    assert len(s.sink.calls) == 2  # later repeats wait for the patch interval
    s.clock.now += 30
    await s.settle()
    assert s.sink.calls[2:] == [("patch", name, 5)]
    assert s.sink.counts == {name: 5}
    assert [c[0] for c in s.sink.calls].count("create") == 1
    assert s.outcomes == ["recorded", "aggregated", "aggregated", "aggregated", "aggregated"]


async def test_repeats_before_the_create_is_written_go_out_with_a_series() -> None:
    s = setup()
    s.recorder.record(seen())
    s.recorder.record(seen())
    s.recorder.record(seen())
    await s.settle()
    [(verb, _, count)] = s.sink.calls
    assert (verb, count) == ("create", 3)


async def test_a_different_note_is_a_different_event() -> None:
    s = setup()
    s.recorder.record(seen("0/3 nodes: 3 wrong GPU class (need premium)"))
    s.recorder.record(seen("0/3 nodes: 2 wrong GPU class (need premium), 1 not enough free GPUs"))
    await s.settle()
    assert [c[0] for c in s.sink.calls] == ["create", "create"]
    assert len(s.sink.events) == 2


async def test_after_the_window_a_new_event_is_created() -> None:
    s = setup(window=360)
    s.recorder.record(seen())
    await s.settle()
    s.clock.now += 361
    await s.settle()  # the quiet series is forgotten
    s.recorder.record(seen())
    await s.settle()
    assert [c[0] for c in s.sink.calls] == ["create", "create"]
    assert len(s.sink.events) == 2


async def test_the_window_runs_from_the_last_observation_not_the_first() -> None:
    s = setup(window=360, patch_interval=1000)
    s.recorder.record(seen())
    await s.settle()
    for _ in range(4):
        s.clock.now += 300
        s.recorder.record(seen())
        await s.settle()
    assert [c[0] for c in s.sink.calls] == ["create", "patch"]


async def test_a_quiet_series_is_patched_with_its_last_count_before_it_is_forgotten() -> None:
    s = setup(window=360, patch_interval=1000)
    s.recorder.record(seen())
    await s.settle()
    s.recorder.record(seen())
    s.recorder.record(seen())
    s.recorder.record(seen())
    await s.settle()
    s.clock.now += 361
    await s.settle()
    name = s.sink.calls[0][1]
    assert s.sink.counts == {name: 4}


async def test_the_spam_filter_limits_new_events_per_object_and_refills() -> None:
    s = setup(burst=3, refill_seconds=300)
    outcomes = [s.recorder.record(seen(f"note {i}")) for i in range(5)]
    assert outcomes == [None, None, None, "rate_limited", "rate_limited"]
    other = ObjectRef(namespace="ml", name="other", uid="u-2")
    assert s.recorder.record(seen("note 0", pod=other)) is None  # its own bucket
    s.clock.now += 300
    assert s.recorder.record(seen("note 9")) is None  # one token back
    assert s.recorder.record(seen("note 10")) == "rate_limited"
    await s.settle()
    assert len(s.sink.events) == 5
    assert s.outcomes.count("rate_limited") == 3


async def test_repeats_of_an_open_series_are_not_rate_limited() -> None:
    s = setup(burst=1)
    s.recorder.record(seen())
    await s.settle()
    assert [s.recorder.record(seen()) for _ in range(10)] == ["aggregated"] * 10


async def test_a_full_queue_drops_and_counts_the_observation() -> None:
    s = setup(queue_size=2)
    assert s.recorder.record(seen("a")) is None
    assert s.recorder.record(seen("b")) is None
    assert s.recorder.record(seen("c")) == "dropped"
    assert s.outcomes == ["dropped"]
    await s.settle()
    assert sorted(e.observation.note for e in s.sink.events.values()) == ["a", "b"]
    # Dropped, not remembered: the next observation is a new Event.
    assert s.recorder.record(seen("c")) is None


async def test_a_long_note_is_cut_to_the_api_limit() -> None:
    s = setup()
    s.recorder.record(seen("é" * 2000))
    await s.settle()
    [event] = s.sink.events.values()
    note = event.observation.note
    assert len(note.encode()) <= NOTE_LIMIT_BYTES
    assert note.endswith("...")


@pytest.mark.parametrize(
    ("note", "limit", "expected"),
    [("short", 10, "short"), ("0123456789ab", 10, "0123456..."), ("ééééé", 8, "éé...")],
    ids=["fits", "cut", "never-half-a-character"],
)
def test_truncate_note(note: str, limit: int, expected: str) -> None:
    assert truncate_note(note, limit) == expected


async def test_an_event_deleted_meanwhile_is_created_again_with_its_series() -> None:
    s = setup()
    s.recorder.record(seen())
    await s.settle()
    s.sink.events.clear()  # the apiserver's event TTL
    s.recorder.record(seen())
    await s.settle()
    assert [(c[0], c[2]) for c in s.sink.calls] == [("create", 1), ("patch", 2), ("create", 2)]
    assert len(s.sink.events) == 1


async def test_api_failures_are_counted_never_raised_and_retried_later() -> None:
    s = setup()
    s.sink.fail_with = 403
    s.recorder.record(seen())
    await s.settle()
    assert s.outcomes == ["failed"]
    s.sink.fail_with = None
    assert s.recorder.record(seen()) is None  # forgotten: a new Event
    await s.settle()
    assert [c[0] for c in s.sink.calls] == ["create"]


async def test_the_number_of_open_series_is_bounded() -> None:
    s = setup(max_series=3, burst=100)
    for i in range(10):
        s.recorder.record(seen(f"note {i}"))
        await s.settle()
    assert len(s.recorder._series) == 3


async def test_a_repeat_that_finds_the_queue_full_is_patched_when_due() -> None:
    s = setup(queue_size=1, patch_interval=30)
    s.recorder.record(seen())
    await s.settle()
    s.recorder.record(seen("other"))  # fills the queue
    assert s.recorder.record(seen()) == "aggregated"
    await s.recorder.drain()
    name = s.sink.calls[0][1]
    assert ("patch", name, 2) not in s.sink.calls
    s.clock.now += 30
    await s.settle()
    assert ("patch", name, 2) in s.sink.calls
