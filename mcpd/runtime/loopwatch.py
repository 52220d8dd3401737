"""Seeing event-loop stalls: which calls were running when plugin code blocked the loop.

Every client of the daemon shares one trio loop, so an async tool that calls a blocking
function (``time.sleep``, ``requests.get``, a long computation) delays them all. ``watch_loop``
sleeps a short tick over and over and measures how late it wakes up. Each lag goes to a
``LagSink`` (the daemon's metrics). A lag beyond the threshold is a stall: it logs one
``loop.stalled`` warning, however many ticks in a row are late, naming the calls that ran at
some moment of the late tick (the flight tracker notes flights that come and go between two
ticks, so a blocker that finished just before the watch woke up is named too).

It measures the loop with the loop's own clock, so tests drive it with trio's ``MockClock``.
A loop wedged for good never wakes the watch: that is the systemd watchdog's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

import structlog
import trio

from mcpd.runtime.flights import Flight, FlightTracker

log = structlog.get_logger("mcpd.loop")

TICK: Final = 0.1  # seconds between measurements
NAMED_CALLS: Final = 20  # calls a loop.stalled event names; calls_total counts them all
ID_CHARS: Final = 64  # of a client's string request id, in the event


class LagSink(Protocol):
    """Where measurements go: every tick's lag, and whether a new stall began with it."""

    def loop_lag(self, seconds: float, stalled: bool) -> None: ...


async def watch_loop(
    tracker: FlightTracker,
    sink: LagSink,
    *,
    threshold: float,
    tick: float = TICK,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Measure the loop's lag every ``tick`` seconds until cancelled (see the module doc)."""
    tick = min(tick, threshold / 2)  # a stall must be longer than one tick to be seen
    stalled = False
    task_status.started()
    while True:
        tracker.mark()
        before = trio.current_time()
        await trio.sleep(tick)
        lag = max(0.0, trio.current_time() - before - tick)
        late = lag > threshold
        sink.loop_lag(lag, late and not stalled)
        if late and not stalled:
            report_stall(lag, threshold, tracker.seen_since_mark())
        stalled = late


def report_stall(lag: float, threshold: float, flights: Sequence[Flight]) -> None:
    """The one ``loop.stalled`` warning of a stall; tool calls are named before other requests."""
    ordered = sorted(flights, key=lambda flight: flight.label is None)
    log.warning(
        "loop.stalled",
        lag_seconds=round(lag, 3),
        threshold_seconds=threshold,
        calls=[_describe(flight) for flight in ordered[:NAMED_CALLS]],
        calls_total=len(ordered),
    )


def _describe(flight: Flight) -> dict[str, Any]:
    request_id = flight.request_id
    if isinstance(request_id, str):
        request_id = request_id[:ID_CHARS]  # the client chose it: keep the event small
    return {"tool": flight.label, "request_id": request_id}
