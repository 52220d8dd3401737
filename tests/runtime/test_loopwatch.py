"""The loop watch on trio's MockClock: a test task "blocks the loop" by jumping the clock in one
step (no checkpoint in between), which is exactly what the watch sees when plugin code blocks.

Every test takes pytest-trio's ``autojump_clock`` fixture directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from mcpd.metrics import Metrics
from mcpd.runtime.flights import Flight, FlightTracker
from mcpd.runtime.loopwatch import NAMED_CALLS, TICK, report_stall, watch_loop

THRESHOLD = 0.5


class Sink:
    """Records what the watch measures."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.stalls = 0

    def loop_lag(self, seconds: float, stalled: bool) -> None:
        self.lags.append(seconds)
        self.stalls += stalled


@asynccontextmanager
async def watching(
    tracker: FlightTracker, sink: Sink, threshold: float = THRESHOLD
) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(watch_loop, tracker, sink, threshold=threshold))
        yield
        nursery.cancel_scope.cancel()


def stalls(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == "loop.stalled"]


async def test_a_healthy_loop_reports_nothing(autojump_clock: trio.testing.MockClock) -> None:
    sink = Sink()
    with capture_logs() as logs:
        async with watching(FlightTracker(), sink):
            await trio.sleep(10 * TICK + TICK / 2)
    assert len(sink.lags) == 10
    assert max(sink.lags) < 1e-9  # on time (up to float rounding)
    assert sink.stalls == 0
    assert stalls(logs) == []


async def test_a_stall_is_reported_once_with_its_lag_and_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker, sink = FlightTracker(), Sink()
    running = Flight("call-1", label="crunch")
    tracker.add(running)
    with capture_logs() as logs:
        async with watching(tracker, sink):
            await trio.sleep(TICK * 3.5)
            autojump_clock.jump(2.0)  # the loop is stuck in this task for two seconds
            await trio.sleep(TICK * 3)
    (event,) = stalls(logs)
    assert event["log_level"] == "warning"
    assert THRESHOLD < event["lag_seconds"] <= 2.0
    assert event["threshold_seconds"] == THRESHOLD
    assert event["calls"] == [{"tool": "crunch", "request_id": "call-1"}]
    assert event["calls_total"] == 1
    assert sink.stalls == 1
    assert round(max(sink.lags), 3) == event["lag_seconds"]


async def test_late_ticks_in_a_row_are_one_stall_and_a_new_one_counts_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = Sink()
    with capture_logs() as logs:
        async with watching(FlightTracker(), sink):
            for _ in range(5):  # blocked again at every chance: one long stall
                autojump_clock.jump(0.7)
                await trio.lowlevel.checkpoint()
            await trio.sleep(TICK * 3)  # healthy again
            autojump_clock.jump(1.0)  # a second stall
            await trio.sleep(TICK * 3)
    assert len(stalls(logs)) == 2
    assert sink.stalls == 2
    assert sum(lag > THRESHOLD for lag in sink.lags) > 2  # more late ticks than stalls


async def test_a_call_that_ended_during_the_stall_is_named(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = FlightTracker()
    with capture_logs() as logs:
        async with watching(tracker, Sink()):
            await trio.sleep(TICK * 2.5)
            blocker = Flight(41, label="blocker")
            tracker.add(blocker)
            autojump_clock.jump(1.0)  # it blocks the loop...
            tracker.discard(blocker)  # ...and is gone before the watch wakes up
            await trio.sleep(TICK * 3)
    (event,) = stalls(logs)
    assert event["calls"] == [{"tool": "blocker", "request_id": 41}]


async def test_a_threshold_below_the_tick_shortens_the_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink = Sink()
    async with watching(FlightTracker(), sink, threshold=0.04):
        await trio.sleep(1.01)
    assert len(sink.lags) == 50  # every 0.02 s


def test_tool_calls_are_named_first_and_the_list_is_capped() -> None:
    flights = [Flight(n) for n in range(NAMED_CALLS)] + [Flight("t", label="tool_a")]
    flights.append(Flight("x" * 500, label="tool_b"))
    with capture_logs() as logs:
        report_stall(1.0, THRESHOLD, flights)
    (event,) = logs
    assert event["calls"][:2] == [
        {"tool": "tool_a", "request_id": "t"},
        {"tool": "tool_b", "request_id": "x" * 64},
    ]
    assert len(event["calls"]) == NAMED_CALLS
    assert event["calls_total"] == NAMED_CALLS + 2


def test_the_tracker_notes_nothing_until_marked() -> None:
    tracker = FlightTracker()
    gone = Flight(1)
    tracker.add(gone)
    tracker.discard(gone)
    assert tracker.seen_since_mark() == []  # nobody watches: nothing is kept
    tracker.mark()
    kept, passing = Flight(2), Flight(3)
    tracker.add(kept)
    tracker.add(passing)
    tracker.discard(passing)
    assert tracker.seen_since_mark() == [kept, passing]
    tracker.mark()
    assert tracker.seen_since_mark() == [kept]


@pytest.mark.parametrize(("lags", "stalled"), [((0.01, 0.02), 0), ((0.01, 0.9, 0.8), 1)])
def test_lags_and_stalls_are_metrics(lags: tuple[float, ...], stalled: int) -> None:
    metrics = Metrics()
    for n, lag in enumerate(lags):
        metrics.loop_lag(lag, stalled=lag > THRESHOLD and lags[n - 1] <= THRESHOLD)
    registry = metrics.registry
    assert registry.get_sample_value("mcpd_event_loop_lag_seconds_count") == len(lags)
    assert registry.get_sample_value("mcpd_event_loop_stalls_total") == stalled
