"""Sessions and flights on trio's MockClock: expiry and cancellation without real time.

Every test takes pytest-trio's ``autojump_clock`` fixture directly: a clock requested only
through another fixture is not used for the test's run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
import trio
import trio.testing

from mcpd.protocol.errors import InvalidRequest, ServerUnavailable, SessionNotFound
from mcpd.protocol.handshake import parse_initialize
from mcpd.runtime.flights import (
    SESSION_DELETED,
    SESSION_EXPIRED,
    SHUTDOWN,
    Done,
    Flight,
    FlightTracker,
    describe,
    fly,
)
from mcpd.runtime.sessions import RETAINED_STREAMS, Session, SessionLimits, SessionManager

T = TypeVar("T")
IDLE = 60.0
INIT = parse_initialize(
    {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}}
)


async def run(session: Session, flight: Flight, work: Callable[[], Awaitable[T]]) -> Done[T] | None:
    """Start work in the session as the endpoint does, and wait for its outcome."""
    done: Done[T] = Done()
    finished = trio.Event()

    async def task() -> None:
        try:
            await fly(flight, work, done)
        finally:
            finished.set()

    session.start(flight, task)
    await finished.wait()
    return done.outcome


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    async with trio.open_nursery() as nursery:
        sessions = SessionManager(idle_timeout=IDLE, max_sessions=3)
        await nursery.start(sessions.run)
        yield sessions
        nursery.cancel_scope.cancel()


async def test_idle_session_expires(
    manager: SessionManager, autojump_clock: trio.testing.MockClock
) -> None:
    session = await manager.create(INIT)
    await trio.sleep(IDLE / 2)
    session.touch()
    await trio.sleep(IDLE * 0.9)
    assert manager.get(session.id) is session  # touched, so not yet expired
    await trio.sleep(IDLE)
    with pytest.raises(SessionNotFound):
        manager.get(session.id)
    assert session.end_reason == SESSION_EXPIRED


async def test_busy_session_does_not_expire(
    manager: SessionManager, autojump_clock: trio.testing.MockClock
) -> None:
    session = await manager.create(INIT)

    async def work() -> str:
        await trio.sleep(IDLE * 3)
        return "done"

    done = await run(session, Flight(1), work)
    assert done is not None
    assert done.value == "done"
    assert manager.get(session.id) is session
    await trio.sleep(IDLE * 2)
    with pytest.raises(SessionNotFound):
        manager.get(session.id)


async def test_close_cancels_work_with_reason_and_runs_finally(
    manager: SessionManager, autojump_clock: trio.testing.MockClock
) -> None:
    session = await manager.create(INIT)
    seen: list[str] = []

    async def work() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled as cancelled:
            seen.append(str(cancelled))
            raise
        finally:
            seen.append("finally")

    async with trio.open_nursery() as nursery:
        flight = Flight("r1")
        results: list[object] = []

        async def call() -> None:
            results.append(await run(session, flight, work))

        nursery.start_soon(call)
        await trio.sleep(1)
        session.close(SESSION_DELETED)
    assert results == [None]
    assert flight.reason == SESSION_DELETED
    assert SESSION_DELETED in seen[0]
    assert seen[-1] == "finally"
    await session.wait_closed()
    with pytest.raises(SessionNotFound):
        manager.get(session.id)


async def test_cancel_by_id_only_hits_that_request(
    manager: SessionManager, autojump_clock: trio.testing.MockClock
) -> None:
    session = await manager.create(INIT)
    outcomes: dict[str, object] = {}

    async def work(seconds: float) -> float:
        await trio.sleep(seconds)
        return seconds

    async def call(request_id: str, seconds: float) -> None:
        done = await run(session, Flight(request_id), lambda: work(seconds))
        outcomes[request_id] = None if done is None else done.value

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "a", 100.0)
        nursery.start_soon(call, "b", 10.0)
        await trio.sleep(1)
        assert session.cancel("a", "cancelled by the client")
        assert not session.cancel("zzz", "unknown ids are ignored")
    assert outcomes == {"a": None, "b": 10.0}


async def test_errors_are_handed_back_and_duplicates_refused(
    manager: SessionManager, autojump_clock: trio.testing.MockClock
) -> None:
    session = await manager.create(INIT)

    async def boom() -> None:
        raise ValueError("bad")

    done = await run(session, Flight(1), boom)
    assert done is not None
    assert isinstance(done.error, ValueError)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, session, Flight(7), trio.sleep_forever)
        await trio.sleep(1)
        with pytest.raises(InvalidRequest):
            await run(session, Flight(7), boom)
        session.close(SESSION_DELETED)


async def test_session_limit(
    manager: SessionManager, autojump_clock: trio.testing.MockClock
) -> None:
    for _ in range(3):
        await manager.create(INIT)
    with pytest.raises(ServerUnavailable):
        await manager.create(INIT)


async def test_close_all_waits_for_unwinding(
    manager: SessionManager, autojump_clock: trio.testing.MockClock
) -> None:
    sessions = [await manager.create(INIT) for _ in range(3)]
    await manager.close_all(SHUTDOWN)
    assert len(manager) == 0
    assert all(s.end_reason == SHUTDOWN for s in sessions)


async def test_tracker_drains_then_cancels(autojump_clock: trio.testing.MockClock) -> None:
    tracker = FlightTracker()
    flights = [Flight(i) for i in range(3)]
    finished: list[int] = []

    async def run(flight: Flight, seconds: float) -> None:
        tracker.add(flight)
        try:
            with flight.scope:
                await trio.sleep(seconds)
                finished.append(int(flight.request_id))
        finally:
            tracker.discard(flight)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, flights[0], 1.0)
        nursery.start_soon(run, flights[1], 1000.0)
        nursery.start_soon(run, flights[2], 1000.0)
        await trio.sleep(0.5)
        assert len(tracker) == 3
        with trio.move_on_after(10):
            await tracker.wait_idle()
        assert finished == [0]
        tracker.cancel_all(SHUTDOWN)
        await tracker.wait_idle()
    assert [f.reason for f in flights] == [None, SHUTDOWN, SHUTDOWN]


async def test_finished_streams_are_kept_for_the_window_and_bounded(
    manager: SessionManager, autojump_clock: trio.testing.MockClock
) -> None:
    session = await manager.create(INIT)
    keys = [session.new_stream_key() for _ in range(RETAINED_STREAMS + 8)]
    for key in keys:
        session.resumable[key] = object()
        session.forget_stream(key, 30.0)
    # Only the newest finished streams stay resumable...
    assert list(session.resumable) == keys[-RETAINED_STREAMS:]
    await trio.sleep(29)
    assert len(session.resumable) == RETAINED_STREAMS
    # ...and only for the resume window.
    await trio.sleep(2)
    assert session.resumable == {}
    assert len({*keys}) == len(keys)  # keys are unique within the session


async def test_thousands_of_finished_streams_cost_one_task_not_one_each(
    manager: SessionManager, autojump_clock: trio.testing.MockClock
) -> None:
    session = await manager.create(INIT)
    nursery = session._nursery
    assert nursery is not None
    before = len(nursery.child_tasks)
    for _ in range(1000):
        key = session.new_stream_key()
        session.resumable[key] = object()
        session.forget_stream(key, 30.0)
        await trio.sleep(0.001)
    assert len(nursery.child_tasks) == before + 1  # the one that drops them as windows end
    assert len(session.resumable) == RETAINED_STREAMS
    await trio.sleep(31)
    assert session.resumable == {}
    assert len(nursery.child_tasks) == before  # and it ends once nothing is left


class _Stream:
    """Stands in for an exchange in ``Session.resumable``: only its replay size matters."""

    def __init__(self, replay_bytes: int) -> None:
        self.replay_bytes = replay_bytes


async def test_finished_streams_are_bounded_in_bytes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limits = SessionLimits(replay_session_bytes=1000)
    async with trio.open_nursery() as nursery:
        sessions = SessionManager(idle_timeout=IDLE, max_sessions=3, limits=limits)
        await nursery.start(sessions.run)
        session = await sessions.create(INIT)
        keys = [session.new_stream_key() for _ in range(5)]
        for key in keys:
            session.resumable[key] = _Stream(400)
            session.forget_stream(key, 30.0)
        # 400 bytes each, 1000 in all: the two newest stay.
        assert list(session.resumable) == keys[-2:]
        # One stream larger than the whole budget is still kept alone (it was just sent).
        big = session.new_stream_key()
        session.resumable[big] = _Stream(5000)
        session.forget_stream(big, 30.0)
        assert list(session.resumable) == [big]
        nursery.cancel_scope.cancel()


async def test_requests_in_flight_are_capped_per_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        sessions = SessionManager(
            idle_timeout=IDLE, max_sessions=3, limits=SessionLimits(max_requests=2)
        )
        await nursery.start(sessions.run)
        session = await sessions.create(INIT)
        for request_id in (1, 2):
            nursery.start_soon(run, session, Flight(request_id), trio.sleep_forever)
        await trio.sleep(1)
        with pytest.raises(ServerUnavailable, match="in flight"):
            session.start(Flight(3), trio.sleep_forever)
        session.close(SESSION_DELETED)
        await session.wait_closed()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "raised",
    [KeyboardInterrupt(), SystemExit(2), GeneratorExit(), BaseExceptionGroup("g", [SystemExit()])],
)
async def test_fly_hands_back_any_base_exception(raised: BaseException) -> None:
    async def work() -> None:
        raise raised

    done: Done[None] = Done()
    await fly(Flight(1), work, done)
    assert done.error is raised


async def test_fly_lets_cancellation_through_and_keeps_the_failure() -> None:
    flight = Flight(1)

    async def child() -> None:
        flight.cancel(SHUTDOWN)  # the flight is being cancelled as the plugin fails
        raise KeyboardInterrupt

    async def work() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
            await trio.sleep_forever()

    done: Done[None] = Done()
    await fly(flight, work, done)
    assert isinstance(done.error, BaseExceptionGroup)
    assert done.error.subgroup(KeyboardInterrupt) is not None
    assert done.error.subgroup(trio.Cancelled) is None


async def test_abandoning_answers_and_forgets_stuck_flights(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tracker = FlightTracker()
    answered: list[object] = []
    stuck = Flight("stuck", "hang")

    async def answer() -> None:
        answered.append(stuck.request_id)

    stuck.abandon = answer
    tracker.add(stuck)
    given_up = await tracker.abandon_all()
    assert given_up == [stuck]
    assert stuck.abandoned
    assert answered == ["stuck"]
    assert len(tracker) == 0
    assert describe(given_up) == [{"request_id": "stuck", "tool": "hang", "cancel_reason": None}]
