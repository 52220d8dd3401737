"""A session taken out of one process and brought back in another, on trio's MockClock.

Each test takes pytest-trio's ``autojump_clock`` directly. Records go through the real file
format (encode, then decode) on their way, as they do across a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from mcpd.persist.records import (
    Budget,
    ConnectionRecord,
    StateDocument,
    decode_state,
    encode_state,
)
from mcpd.protocol.errors import SessionNotFound
from mcpd.protocol.handshake import Event, Phase, parse_initialize
from mcpd.protocol.jsonrpc import JsonObject, Response
from mcpd.runtime.flights import SESSION_EXPIRED, Flight
from mcpd.runtime.sessions import Session, SessionManager

IDLE = 60.0
WALL = 1_800_000_000.0  # the wall clock at the snapshot
KEY = b"k" * 32
INIT = parse_initialize(
    {
        "protocolVersion": "2025-11-25",
        "capabilities": {"elicitation": {}, "sampling": {}},
        "clientInfo": {"name": "restore-tests", "version": "2"},
    }
)


@pytest.fixture
async def managers() -> AsyncIterator[tuple[SessionManager, SessionManager]]:
    """Two session managers: the process that stops and the one that starts."""
    async with trio.open_nursery() as nursery:
        before = SessionManager(idle_timeout=IDLE, max_sessions=10)
        after = SessionManager(idle_timeout=IDLE, max_sessions=10)
        await nursery.start(before.run)
        await nursery.start(after.run)
        yield before, after
        nursery.cancel_scope.cancel()


def across_a_restart(session: Session, wall_now: float = WALL) -> Any:
    """The session's record as the next process reads it from the state file."""
    document = StateDocument(WALL, "test", {}, {}, (session.snapshot(WALL),))
    data = encode_state(document, KEY, Budget(1 << 20, 1 << 16)).data
    return decode_state(data, KEY).sessions[0]


class Outbound:
    """Where ``Session.ask`` sends its question: kept here for the test to read."""

    def __init__(self) -> None:
        self.sent: list[JsonObject] = []

    async def notify(self, message: JsonObject) -> None:
        self.sent.append(message)


async def test_everything_a_client_relies_on_comes_back(
    managers: tuple[SessionManager, SessionManager], autojump_clock: trio.testing.MockClock
) -> None:
    before, after = managers
    old = await before.create(INIT, principal="key:laptop")
    old.advance(Event.INITIALIZED)
    old.set_log_level("warning")
    old.subscriptions.update({"fixture://text", "fixture://numbers/5"})
    for n in range(3):
        old.get_log.record(f'{{"n":{n}}}'.encode())
    for _ in range(4):
        old.new_stream_key()
    old.post({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    old.connection = ConnectionRecord("sse-connection-id", "mcpd-sse-0123")

    [new] = await after.restore([across_a_restart(old)], WALL)
    assert after.get(old.id, "key:laptop") is new
    assert new.id == old.id
    assert new.principal == "key:laptop"
    assert new.connection == ConnectionRecord("sse-connection-id", "mcpd-sse-0123")
    assert (new.version, new.capabilities, new.client_info) == (
        old.version,
        old.capabilities,
        old.client_info,
    )
    assert new.log_level == "warning"
    assert new.subscriptions == {"fixture://text", "fixture://numbers/5"}
    assert new.handshake.phase is Phase.READY
    # Event ids go on: a client resuming from the last id it saw misses nothing, one that
    # missed the last event gets it, and the next event and POST stream have new numbers.
    assert new.get_log.after(3) == []
    assert new.get_log.after(2) == old.get_log.after(2)
    assert len(old.get_log.after(2) or ()) == 1
    assert new.get_log.record(b"{}").startswith(b"id: g.4\n")
    assert new.new_stream_key() == "p5"
    with trio.fail_after(1):
        assert (await new.next_posted())["method"] == "notifications/tools/list_changed"


async def test_the_principal_round_trips_and_anonymous_stays_anonymous(
    managers: tuple[SessionManager, SessionManager], autojump_clock: trio.testing.MockClock
) -> None:
    before, after = managers
    owned = await before.create(INIT, principal="sub:0b5e-7a1c", limit_key="sub:0b5e-7a1c")
    anonymous = await before.create(INIT)
    records = [across_a_restart(owned), across_a_restart(anonymous)]
    assert [r.principal for r in records] == ["sub:0b5e-7a1c", None]
    assert [r.limit_key for r in records] == ["sub:0b5e-7a1c", None]
    restored = await after.restore(records, WALL)
    assert {s.id: s.principal for s in restored} == {owned.id: "sub:0b5e-7a1c", anonymous.id: None}
    # Each answers its own principal only: another one is told the session does not exist.
    assert after.get(owned.id, "sub:0b5e-7a1c").id == owned.id
    assert after.get(anonymous.id).id == anonymous.id
    with pytest.raises(SessionNotFound):
        after.get(owned.id)
    with pytest.raises(SessionNotFound):
        after.get(anonymous.id, "sub:0b5e-7a1c")


async def test_questions_to_the_client_get_ids_never_used_before(
    managers: tuple[SessionManager, SessionManager], autojump_clock: trio.testing.MockClock
) -> None:
    """A late answer to a question of the old process must not answer a new one."""
    before, after = managers
    old = await before.create(INIT)
    outbound = Outbound()

    async def ask_and_answer(session: Session) -> str:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.ask, "roots/list", {}, outbound, 10.0)
            await trio.sleep(1)
            request_id = outbound.sent[-1]["id"]
            assert session.answer(Response(request_id, {"roots": []}, None))
        return str(request_id)

    assert await ask_and_answer(old) == "mcpd-1"
    assert await ask_and_answer(old) == "mcpd-2"
    [new] = await after.restore([across_a_restart(old)], WALL)
    assert await ask_and_answer(new) == "mcpd-3"


async def test_the_idle_deadline_counts_the_time_between_the_processes(
    managers: tuple[SessionManager, SessionManager], autojump_clock: trio.testing.MockClock
) -> None:
    before, after = managers
    old = await before.create(INIT)
    await trio.sleep(40)  # idle for 40 of its 60 seconds
    record = across_a_restart(old)
    assert record.idle_deadline == pytest.approx(WALL + 20)
    # The next process starts 5 s later (wall clock): 15 s of idleness are left.
    [new] = await after.restore([record], WALL + 5)
    await trio.sleep(14)
    assert after.get(new.id) is new
    await trio.sleep(2)
    with pytest.raises(SessionNotFound):
        after.get(new.id)
    assert new.end_reason == SESSION_EXPIRED


async def test_a_busy_session_has_its_whole_idle_timeout_ahead(
    managers: tuple[SessionManager, SessionManager], autojump_clock: trio.testing.MockClock
) -> None:
    before, _ = managers
    session = await before.create(INIT)
    await trio.sleep(50)
    started = trio.Event()

    async def work() -> None:
        started.set()
        await trio.sleep_forever()

    session.start(Flight("long"), work)
    await started.wait()
    assert session.snapshot(WALL).idle_deadline == pytest.approx(WALL + IDLE)
    session.close("test over")


async def test_restore_keeps_ids_in_use_and_the_session_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        before = SessionManager(idle_timeout=IDLE, max_sessions=10)
        after = SessionManager(idle_timeout=IDLE, max_sessions=2)
        await nursery.start(before.run)
        await nursery.start(after.run)
        old = [await before.create(INIT) for _ in range(4)]
        records = [across_a_restart(s) for s in old]
        first = await after.restore(records[:1], WALL)
        again = await after.restore(records, WALL)  # the first id is taken; room for one more
        assert [s.id for s in first + again] == [old[0].id, old[1].id]
        assert len(after) == 2
        nursery.cancel_scope.cancel()


async def test_a_session_that_was_not_initialized_yet_stays_so(
    managers: tuple[SessionManager, SessionManager], autojump_clock: trio.testing.MockClock
) -> None:
    before, after = managers
    old = await before.create(INIT)
    [new] = await after.restore([across_a_restart(old)], WALL)
    assert new.handshake.phase is Phase.INITIALIZING
    new.list_changed("tools")  # not announced before notifications/initialized
    new.advance(Event.INITIALIZED)
    new.list_changed("prompts")
    with trio.fail_after(1):
        assert (await new.next_posted())["method"] == "notifications/prompts/list_changed"


async def test_closing_sessions_are_not_saved(
    managers: tuple[SessionManager, SessionManager], autojump_clock: trio.testing.MockClock
) -> None:
    before, _ = managers
    kept, ending = await before.create(INIT), await before.create(INIT)
    ending.close("deleted")
    assert [r.id for r in before.snapshot(WALL)] == [kept.id]
