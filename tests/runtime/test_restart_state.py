"""``RestartState`` on a real state directory: save, restore, refuse, and the requestState keys.

Sessions run on trio's MockClock (each test takes ``autojump_clock``); wall-clock time is a
clock the test moves. A real state directory under ``tmp_path`` holds the files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from mcpd.config import ServerSettings, Settings, ToolsSettings
from mcpd.persist.records import StateRejected, decode_state
from mcpd.persist.store import StateStore
from mcpd.protocol.errors import InvalidParams
from mcpd.protocol.handshake import Event, parse_initialize
from mcpd.runtime.inputs import RequestStates
from mcpd.runtime.restart import RestartState
from mcpd.runtime.sessions import SessionManager

IDLE = 600.0
TTL = 60.0
LISTS = {"tools": "t1", "prompts": "p1", "resources": "r1"}
INIT = parse_initialize({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}})
METHOD, PARAMS = "tools/call", {"name": "ask", "arguments": {}}


class Wall:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settings(directory: Path, **server: Any) -> Settings:
    return Settings(
        server=ServerSettings(state_dir=str(directory), session_idle_timeout=IDLE, **server),
        tools=ToolsSettings(input_timeout=TTL),
    )


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


async def manager(nursery: trio.Nursery) -> SessionManager:
    sessions = SessionManager(idle_timeout=IDLE, max_sessions=100)
    await nursery.start(sessions.run)
    return sessions


def event(logs: list[MutableMapping[str, Any]], name: str) -> MutableMapping[str, Any]:
    found = [entry for entry in logs if entry["event"] == name]
    assert len(found) == 1, logs
    return found[0]


async def test_sessions_and_used_nonces_survive_and_lists_that_changed_are_announced(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    wall = Wall()
    first = RestartState.open(settings(tmp_path), {}, clock=wall)
    states = first.request_states()
    before = await manager(nursery)
    session = await before.create(INIT)
    session.advance(Event.INITIALIZED)
    session.principal = "key:ci"
    token = states.seal(METHOD, PARAMS, {})
    states.open(token, METHOD, PARAMS)  # used once in the first process
    with capture_logs() as logs:
        await first.save(before, states, LISTS, [{"request_id": 7, "tool": "slow"}])
    assert event(logs, "state.saved")["sessions"] == 1
    assert event(logs, "state.requests_lost")["requests"] == 1

    wall.now += 5
    second = RestartState.open(settings(tmp_path), {}, clock=wall)
    states = second.request_states()
    after = await manager(nursery)
    with capture_logs() as logs:
        [restored] = await second.restore(after, states, {**LISTS, "tools": "t2"})
    assert restored.id == session.id
    assert restored.principal == "key:ci"
    found = event(logs, "state.restored")
    assert (found["sessions"], found["nonces"], found["lists_changed"]) == (1, 1, ["tools"])
    with trio.fail_after(1):
        assert (await restored.next_posted())["method"] == "notifications/tools/list_changed"
    # Single use holds across the restart, and the key is the same: the seal still opens.
    with pytest.raises(InvalidParams, match="already used"):
        states.open(token, METHOD, PARAMS)
    assert states.open(states.seal(METHOD, PARAMS, {}), METHOD, PARAMS) == {}
    # The file was taken: a crash of this process would not bring the sessions back again.
    assert not StateStore(tmp_path).state_path.exists()


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: data.replace(b'"log_level":"info"', b'"log_level":"INFO"'), "tampered"),
        (lambda data: b"\x00\xff garbage", "unreadable"),
    ],
)
async def test_a_spoilt_state_file_is_logged_moved_aside_and_the_start_goes_on(
    tmp_path: Path,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    spoil: Callable[[bytes], bytes],
    reason: str,
) -> None:
    state = RestartState.open(settings(tmp_path), {})
    before = await manager(nursery)
    await before.create(INIT)
    await state.save(before, state.request_states(), LISTS)
    path = StateStore(tmp_path).state_path
    spoilt = spoil(path.read_bytes())
    path.write_bytes(spoilt)
    with capture_logs() as logs:
        restored = await state.restore(await manager(nursery), state.request_states(), LISTS)
    assert restored == []
    assert event(logs, "state.rejected")["reason"] == reason
    assert (tmp_path / "mcpd-state.json.rejected").read_bytes() == spoilt
    assert not path.exists()


async def test_a_state_file_from_another_state_directory_is_foreign(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    elsewhere = RestartState.open(settings(tmp_path / "other"), {})
    sessions = await manager(nursery)
    await sessions.create(INIT)
    await elsewhere.save(sessions, elsewhere.request_states(), LISTS)
    ours = RestartState.open(settings(tmp_path / "ours"), {})
    foreign = (tmp_path / "other" / "mcpd-state.json").read_bytes()
    (tmp_path / "ours" / "mcpd-state.json").write_bytes(foreign)
    (tmp_path / "ours" / "mcpd-state.json").chmod(0o600)
    with capture_logs() as logs:
        assert await ours.restore(await manager(nursery), ours.request_states(), LISTS) == []
    assert event(logs, "state.rejected")["reason"] == "foreign"


async def test_state_size_and_age_bounds(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    wall = Wall()
    small = settings(tmp_path, state_max_bytes=8192, state_max_age=100.0)
    state = RestartState.open(small, {}, clock=wall)
    sessions = await manager(nursery)
    for _ in range(60):
        await sessions.create(INIT)
    with capture_logs() as logs:
        await state.save(sessions, state.request_states(), LISTS)
    saved = event(logs, "state.saved")
    assert saved["log_level"] == "warning"  # sessions were left out: said so
    assert 0 < saved["sessions"] < 60
    assert saved["over_budget"] == 60 - saved["sessions"]
    assert saved["bytes"] <= 8192
    wall.now += 101
    with capture_logs() as logs:
        assert await state.restore(await manager(nursery), state.request_states(), LISTS) == []
    assert event(logs, "state.restored")["too_old"] == saved["sessions"]


async def test_with_persist_sessions_off_a_state_file_is_removed_unread(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    on = RestartState.open(settings(tmp_path), {})
    sessions = await manager(nursery)
    await sessions.create(INIT)
    await on.save(sessions, on.request_states(), LISTS)
    off = RestartState.open(settings(tmp_path, persist_sessions=False), {})
    assert await off.restore(await manager(nursery), off.request_states(), LISTS) == []
    assert not StateStore(tmp_path).state_path.exists()
    await off.save(sessions, off.request_states(), LISTS)
    assert not StateStore(tmp_path).state_path.exists()


def test_without_a_state_directory_nothing_is_kept(tmp_path: Path) -> None:
    with capture_logs() as logs:
        state = RestartState.open(Settings(), {})
    assert event(logs, "state.disabled")["log_level"] == "info"
    assert state.store is None
    token = state.request_states().seal(METHOD, PARAMS, {})
    with pytest.raises(InvalidParams):  # another process's random key
        RestartState.open(Settings(), {}).request_states().open(token, METHOD, PARAMS)
    # $STATE_DIRECTORY (systemd) is used when the config names none.
    assert RestartState.open(Settings(), {"STATE_DIRECTORY": str(tmp_path)}).store is not None


def test_an_unusable_state_directory_is_logged_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "mcpd-keys.json").write_text("{}")
    (tmp_path / "mcpd-keys.json").chmod(0o600)
    with capture_logs() as logs:
        state = RestartState.open(settings(tmp_path), {})
    assert "mcpd-keys.json" in event(logs, "state.unavailable")["error"]
    assert state.store is None


def test_the_key_is_made_once_and_a_configured_key_wins(tmp_path: Path) -> None:
    token = RestartState.open(settings(tmp_path), {}).request_states().seal(METHOD, PARAMS, {})
    again = RestartState.open(settings(tmp_path), {}).request_states()
    assert again.open(token, METHOD, PARAMS) == {}  # the next process opens it
    configured = dataclasses.replace(
        settings(tmp_path), tools=ToolsSettings(input_timeout=TTL, request_state_key="c" * 40)
    )
    with pytest.raises(InvalidParams, match="integrity"):
        RestartState.open(configured, {}).request_states().open(token, METHOD, PARAMS)


async def test_a_rotated_key_seals_from_the_next_reload_and_the_old_one_still_opens(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    wall = Wall()
    state = RestartState.open(settings(tmp_path), {}, clock=wall)
    states = RequestStates(TTL, key=state.request_states()._key, clock=wall)
    old_token = states.seal(METHOD, PARAMS, {})
    StateStore(tmp_path).rotate_keyring(wall.now)
    with capture_logs() as logs:
        await state.rekey(states)
    assert event(logs, "state.key_rotated")["previous_accepted"] == 1
    new_token = states.seal(METHOD, PARAMS, {})
    # A process that only knows the new key: the old one is no longer current.
    fresh = RestartState.open(settings(tmp_path), {}, clock=wall).request_states()
    fresh.use_keys(fresh._key)  # no retired keys
    with pytest.raises(InvalidParams, match="integrity"):
        fresh.open(old_token, METHOD, PARAMS)
    assert fresh.open(states.seal(METHOD, PARAMS, {}), METHOD, PARAMS) == {}
    # The rotated daemon opens both, the old one only until its retirement plus the ttl.
    assert states.open(new_token, METHOD, PARAMS) == {}
    assert states.open(old_token, METHOD, PARAMS) == {}
    late = states.seal(METHOD, PARAMS, {"q0": {}})
    wall.now += TTL + 1
    await state.rekey(states)
    with pytest.raises(InvalidParams, match="expired"):
        states.open(late, METHOD, PARAMS)
    with pytest.raises(StateRejected):
        decode_state(b"", b"k" * 32)
