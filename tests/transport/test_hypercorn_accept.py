"""mcpd.transport.hypercorn_accept's accept loop, on trio's MockClock: pause once, back off, resume.

``trio.serve_listeners`` (what hypercorn calls) serves a listener whose ``accept`` fails with
the errors a process meets at its descriptor limit, then succeeds. Without the fix trio logs
every failure with a traceback (through the stdlib logger ``trio.serve_listeners``) and
retries every 100 ms; here the test asserts one ``accept.paused``, one ``accept.resumed`` and
the backoff, on the mock clock. The real limit is exercised in tests/e2e/test_fd_limits.py.
Connections waiting together are accepted in one scheduler pass, up to ``ACCEPT_BURST``.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from mcpd.transport import hypercorn_accept
from mcpd.transport.hypercorn_accept import ACCEPT_BURST, FIRST_RETRY, MAX_RETRY

BOUND = 10.0


class ScriptedListener(trio.abc.Listener[trio.abc.Stream]):
    """``accept`` fails or succeeds as scripted (an errno, or None for a connection), then waits."""

    def __init__(self, script: list[int | None]) -> None:
        self._script: Iterator[int | None] = iter(script)
        self.accepted = 0
        self.done = trio.Event()

    async def accept(self) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        step = next(self._script, "end")
        if step == "end":
            self.done.set()
            await trio.sleep_forever()
        if step is not None:
            raise OSError(step, "scripted")
        self.accepted += 1
        return trio.testing.memory_stream_pair()[0]

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def _handler(stream: trio.abc.Stream) -> None:
    await stream.aclose()


async def _serve(listener: ScriptedListener) -> list[dict[str, Any]]:
    with capture_logs() as events:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners, _handler, [listener]))
            await listener.done.wait()
            nursery.cancel_scope.cancel()
    return [e for e in events if e["event"].startswith("accept.")]


@pytest.fixture
def pauses() -> list[None]:
    seen: list[None] = []
    hypercorn_accept.install(lambda: seen.append(None))
    return seen


async def test_descriptor_exhaustion_pauses_once_and_resumes(
    autojump_clock: trio.testing.MockClock,
    pauses: list[None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = 8
    listener = ScriptedListener([None, *[errno.EMFILE] * failures, None, None])
    with caplog.at_level(logging.DEBUG, logger="trio.serve_listeners"):
        events = await _serve(listener)
    assert [e["event"] for e in events] == ["accept.paused", "accept.resumed"]
    paused, resumed = events
    assert paused["errno"] == "EMFILE"
    assert resumed["retries"] == failures - 1
    # The backoff doubles from FIRST_RETRY and stays at MAX_RETRY: 0.1 0.2 0.4 0.8 1 1 1 1
    delays = [min(FIRST_RETRY * 2**n, MAX_RETRY) for n in range(failures)]
    assert resumed["paused_seconds"] == pytest.approx(sum(delays), abs=1e-3)
    assert listener.accepted == 3
    assert pauses == [None]  # the metric's hook, once per pause
    assert caplog.records == []  # trio's own logger: not one traceback


async def test_each_exhaustion_is_one_pause_of_its_own(
    autojump_clock: trio.testing.MockClock, pauses: list[None]
) -> None:
    script = [errno.ENFILE, errno.ENFILE, None, errno.ENOBUFS, None]
    events = await _serve(ScriptedListener(script))
    names = [e["event"] for e in events]
    assert names == ["accept.paused", "accept.resumed", "accept.paused", "accept.resumed"]
    assert [events[0]["errno"], events[2]["errno"]] == ["ENFILE", "ENOBUFS"]
    assert events[3]["retries"] == 0  # the backoff starts over with each pause
    assert len(pauses) == 2


async def test_other_accept_errors_still_propagate(pauses: list[None]) -> None:
    with pytest.raises(BaseExceptionGroup) as caught:
        await _serve(ScriptedListener([errno.EBADF]))
    assert caught.group_contains(OSError, match="scripted")
    assert pauses == []


class Passes(trio.abc.Instrument):
    """Counts the scheduler's passes (each begins with a check for I/O)."""

    def __init__(self) -> None:
        self.count = 0

    def after_io_wait(self, timeout: float) -> None:
        self.count += 1


async def test_connections_waiting_together_are_accepted_in_one_pass(pauses: list[None]) -> None:
    """A burst of connections in the backlog starts its handlers in one pass, up to the bound
    (trio alone accepts one per pass: the last of 64 waited 64 passes of a busy loop)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(ACCEPT_BURST + 6)]
    passes, started, all_started = Passes(), Counter[int](), trio.Event()

    async def handler(stream: trio.abc.Stream) -> None:
        started[passes.count] += 1
        if started.total() == len(clients):
            all_started.set()
        await stream.aclose()

    trio.lowlevel.add_instrument(passes)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners, handler, listeners))
            with trio.fail_after(BOUND):
                await all_started.wait()
            nursery.cancel_scope.cancel()
    finally:
        trio.lowlevel.remove_instrument(passes)
        for client in clients:
            client.close()
    # The first accept and the burst behind it; then the next accept and the rest.
    assert [count for _, count in sorted(started.items())] == [ACCEPT_BURST + 1, 5]
