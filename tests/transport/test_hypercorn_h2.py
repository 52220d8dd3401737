"""Regression tests for mcpd.transport.hypercorn_h2: bounded HTTP/2 send buffers, stalls timed out.

A raw h2c client (``support.h2c``) never opens a window unless the test says so, against an
in-process hypercorn whose app counts the body bytes hypercorn accepted from it. Once every
task is blocked (``wait_all_tasks_blocked``: the client has everything the windows let
through, the app waits in ``send``), accepted minus received is what hypercorn holds. Without
the fix the app's sends never wait and that difference reaches everything the app wanted to
send; and the connection is never ended, so the test runs into BOUND.
"""

from __future__ import annotations

from typing import Any

import h2.errors
import h11
import hypercorn.protocol
import hypercorn.protocol.h2
import pytest
import trio
import trio.testing
from support.h2c import H2c
from support.hypercorn_server import BOUND, Message, Receive, Send, make_config, serving

from mcpd.transport import hypercorn_fixes
from mcpd.transport.app import serve_lifespan
from mcpd.transport.hypercorn_h2 import STREAM_BUFFER_BYTES, BoundedH2Protocol, SendBuffer

WRITE_TIMEOUT = 0.5
MAX_BUFFER = 4 * STREAM_BUFFER_BYTES  # small enough for a few streams to fill it
CHUNK = b"x" * 2**14
LIMIT = 4 * 2**20  # what one /flood response would send, unbounded (64 chunks per window)
DEFAULT_WINDOW = 65_535
CANCEL = h2.errors.ErrorCodes.CANCEL


@pytest.fixture(autouse=True)
def _fixes_applied() -> None:
    hypercorn_fixes.apply(write_timeout=WRITE_TIMEOUT, h2_max_buffer_bytes=MAX_BUFFER)


class FloodApp:
    """``/flood`` sends CHUNKs until LIMIT or ``http.disconnect``; ``/small`` answers ``ok``."""

    def __init__(self) -> None:
        self.accepted: dict[int, int] = {}  # per /flood request: body bytes hypercorn accepted
        self.disconnected = 0  # /flood requests that were told http.disconnect

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] != "/flood":
            await send({"type": "http.response.body", "body": b"ok"})
            return
        key = len(self.accepted)
        self.accepted[key] = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, receive, nursery.cancel_scope)
            while self.accepted[key] < LIMIT:
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
                self.accepted[key] += len(CHUNK)
            await trio.sleep_forever()

    async def _watch(self, receive: Receive, work: trio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected += 1
        work.cancel()


async def _held_once_blocked(app: FloodApp, client: H2c) -> int:
    """Once nothing can move: the bytes hypercorn accepted from the app but has not sent."""
    await trio.testing.wait_all_tasks_blocked()
    return sum(app.accepted.values()) - client.received


async def test_a_closed_window_holds_the_app_not_the_server_memory() -> None:
    app = FloodApp()
    async with serving(app, make_config()) as server:
        client = await H2c.connect(server.address)
        await client.request("GET", "/flood")
        with trio.fail_after(BOUND):
            await client.until(lambda: client.received >= DEFAULT_WINDOW)
            held = await _held_once_blocked(app, client)
            # Back-pressure: the app waits in send with at most one stream's share buffered.
            assert 0 < held <= STREAM_BUFFER_BYTES
            assert app.accepted[0] < LIMIT
            # The window stays shut past the write timeout: the connection's window is the
            # one that is closed, so the whole connection goes (GOAWAY, then EOF).
            await client.until(lambda: False)
            await trio.testing.wait_all_tasks_blocked()
        assert client.terminated is not None
        assert client.terminated.error_code == CANCEL
        assert app.disconnected == 1  # the app heard http.disconnect, as for a client reset
        assert client.received == DEFAULT_WINDOW


async def test_many_stalled_streams_share_the_connection_bound() -> None:
    app = FloodApp()
    async with serving(app, make_config()) as server:
        client = await H2c.connect(server.address)
        for _ in range(12):  # 12 streams x 64 KiB would be three times MAX_BUFFER
            await client.request("GET", "/flood")
        with trio.fail_after(BOUND):
            await client.until(lambda: client.received >= DEFAULT_WINDOW)
            held = await _held_once_blocked(app, client)
            assert held <= MAX_BUFFER
            assert all(sent < LIMIT for sent in app.accepted.values())
            await client.until(lambda: False)
            await trio.testing.wait_all_tasks_blocked()
        assert client.terminated is not None
        assert app.disconnected == 12


async def test_a_stalled_stream_is_reset_while_its_connection_serves_others() -> None:
    app = FloodApp()
    async with serving(app, make_config()) as server:
        # Every stream's window starts at 0; the connection's own window stays open.
        client = await H2c.connect(server.address, initial_window=0)
        flood = await client.request("GET", "/flood")
        small = await client.request("GET", "/small")
        await client.open_window(small, 100)
        with trio.fail_after(BOUND):
            await client.until(lambda: client.streams[small].ended)
            assert bytes(client.streams[small].data) == b"ok"  # served beside the stall
            held = await _held_once_blocked(app, client)
            assert 0 < held <= STREAM_BUFFER_BYTES
            await client.until(lambda: client.streams[flood].reset is not None)
        assert client.streams[flood].reset == CANCEL
        assert client.terminated is None  # only the stream was reset
        # The connection lives on: a new stream is served on it.
        again = await client.request("GET", "/small")
        await client.open_window(again, 100)
        with trio.fail_after(BOUND):
            await client.until(lambda: client.streams[again].ended)
        assert bytes(client.streams[again].data) == b"ok"
        assert app.disconnected == 1


async def test_a_client_that_keeps_reading_gets_everything() -> None:
    """Back-pressure only delays: a slow reader with small windows receives the whole body."""
    app = BigApp(3 * MAX_BUFFER)
    async with serving(app, make_config()) as server:
        client = await H2c.connect(server.address, initial_window=2**12)
        stream = await client.request("GET", "/big")
        with trio.fail_after(BOUND):
            while not client.streams[stream].ended:
                before = client.received
                await client.receive()
                taken = client.received - before
                if taken:
                    await client.open_window(stream, taken)
                    await client.open_window(None, taken)
        assert bytes(client.streams[stream].data) == app.body
        assert client.streams[stream].reset is None


class BigApp:
    """Answers one large body in a single send."""

    def __init__(self, size: int) -> None:
        self.body = bytes(range(256)) * (size // 256)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": self.body})


async def test_other_connections_are_served_while_one_is_stalled() -> None:
    app = FloodApp()
    async with serving(app, make_config()) as server:
        stalled = await H2c.connect(server.address)
        await stalled.request("GET", "/flood")
        with trio.fail_after(BOUND):
            await stalled.until(lambda: stalled.received >= DEFAULT_WINDOW)
            assert await _http11_get(server.address, "/small") == b"ok"
            assert not stalled.closed


async def _http11_get(address: tuple[str, int], path: str) -> bytes:
    client = h11.Connection(h11.CLIENT)
    async with await trio.open_tcp_stream(*address) as stream:
        request = h11.Request(method="GET", target=path, headers=[("host", "test")])
        await stream.send_all(client.send(request) + client.send(h11.EndOfMessage()))
        body = b""
        while True:
            event: Any = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return body


def test_apply_installs_the_bounded_protocol_without_wrapping() -> None:
    hypercorn_fixes.apply(write_timeout=WRITE_TIMEOUT, h2_max_buffer_bytes=MAX_BUFFER)
    hypercorn_fixes.apply(write_timeout=2.0, h2_max_buffer_bytes=MAX_BUFFER // 2)
    assert hypercorn.protocol.H2Protocol is BoundedH2Protocol  # what ProtocolWrapper builds
    assert hypercorn.protocol.h2.StreamBuffer is SendBuffer  # what _create_stream builds
    assert (BoundedH2Protocol.max_buffer_bytes, BoundedH2Protocol.stall_timeout) == (
        MAX_BUFFER // 2,
        2.0,
    )
