"""Regression tests for mcpd.transport.hypercorn_fixes, against a real in-process hypercorn.

Each test fails (or, for a hang, runs into BOUND) without the fix it names. Real sockets need
real time, so the server runs with small configured timeouts; the only time limits here are
generous upper bounds that turn a hang into a failure, never assertions about elapsed time.
"""

from __future__ import annotations

import importlib.metadata
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h11
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.trio.tcp_server import TCPServer

from mcpd.transport import hypercorn_fixes
from mcpd.transport.app import serve_lifespan
from mcpd.transport.hypercorn_fixes import send_final_body

BOUND = 10.0
WRITE_TIMEOUT = 0.5
KEEP_ALIVE_TIMEOUT = 0.5
GRACE = 0.5
CHUNK = b"x" * 2**14

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@pytest.fixture(autouse=True)
def _fixes_applied() -> None:
    hypercorn_fixes.apply(write_timeout=WRITE_TIMEOUT)


# ---------------------------------------------------------------- the app under hypercorn


class DisconnectAwareApp:
    """A raw ASGI app that, like mcpd's endpoint, cancels its own work on http.disconnect.

    ``/small`` answers ``ok``; ``/held`` answers more than h2's initial 64 KiB flow-control
    window; ``/stream`` streams chunks until the client goes away.
    """

    def __init__(self) -> None:
        self.final_send_started = trio.Event()
        self.streaming = trio.Event()
        self.stream_ended = trio.Event()
        self.gate_entered = trio.Event()
        self.gate = trio.Event()

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            await self._respond(scope["path"], send)

    async def _respond(self, path: str, send: Send) -> None:
        if path == "/stream":
            await self._stream(send)
            return
        if path == "/gate":  # answers only once the test opens the gate
            self.gate_entered.set()
            await self.gate.wait()
        body = b"x" * 100_000 if path == "/held" else b"ok"
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        self.final_send_started.set()  # no checkpoint until send_final_body waits
        await send_final_body(send, grace=GRACE)

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        self.streaming.set()
        try:
            while True:
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
                # Once a stream is closed hypercorn's send returns without a checkpoint; without
                # one here the disconnect watcher would never run and this loop would spin.
                await trio.lowlevel.checkpoint()
        finally:
            self.stream_ended.set()


async def _cancel_on_disconnect(receive: Receive, work: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    work.cancel()


# ---------------------------------------------------------------- serving it


@dataclass
class Server:
    address: tuple[str, int]
    stop: trio.Event
    stopped: trio.Event


def make_config(*, graceful_timeout: float = 60.0, path: str = "lean") -> Config:
    """``path="hypercorn"``: a ``read_timeout`` keeps hypercorn's own HTTP/1.1 connection
    handling (and so its patched ``protocol_send``) instead of the lean path."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    config.graceful_timeout = graceful_timeout
    if path == "hypercorn":
        config.read_timeout = 60 * BOUND  # never reached: the tests end long before
    return config


# HTTP/1.1 runs on the lean path (mcpd.transport.lean_h11) unless a read_timeout is set;
# the defects' tests run on both.
PATHS = pytest.mark.parametrize("path", ["lean", "hypercorn"])


@asynccontextmanager
async def serving(app: DisconnectAwareApp, config: Config) -> AsyncIterator[Server]:
    """Run ``serve()`` in a nursery; a crash of ``serve()`` fails the test that uses it."""
    stop, stopped = trio.Event(), trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(_serve, app, config, stop, stopped))
        url = urlsplit(urls[0])
        assert url.hostname is not None
        assert url.port is not None
        try:
            yield Server((url.hostname, url.port), stop, stopped)
        finally:
            stop.set()
            with trio.move_on_after(BOUND):
                await stopped.wait()
            nursery.cancel_scope.cancel()


async def _serve(
    app: DisconnectAwareApp,
    config: Config,
    stop: trio.Event,
    stopped: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    asgi: Any = app  # hypercorn types ASGI messages as TypedDicts; this app uses plain dicts
    await serve(asgi, config, shutdown_trigger=stop.wait, task_status=task_status)
    stopped.set()


# ---------------------------------------------------------------- clients


async def http11_get(stream: trio.SocketStream, path: str) -> bytes:
    """One keep-alive HTTP/1.1 GET; returns the body, leaves the connection open."""
    client = h11.Connection(h11.CLIENT)
    request = h11.Request(method="GET", target=path, headers=[("host", "test")])
    await stream.send_all(client.send(request) + client.send(h11.EndOfMessage()))
    body = b""
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            client.receive_data(await stream.receive_some())
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return body
        elif isinstance(event, h11.ConnectionClosed):
            raise AssertionError("the server closed the connection mid-response")


async def read_until_closed(stream: trio.SocketStream) -> None:
    """Discard whatever the server sent until it closes (EOF) or resets the connection."""
    try:
        while await stream.receive_some():
            pass
    except trio.BrokenResourceError:
        pass


async def open_stalled_reader(address: tuple[str, int]) -> trio.SocketStream:
    """A connection whose tiny receive buffer fills at once; the caller never reads from it."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: sets the window
    await sock.connect(address)
    return trio.SocketStream(sock)


def abort(stream: trio.SocketStream) -> None:
    """Make the next close send RST instead of FIN."""
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def h2_request(conn: h2.connection.H2Connection, path: str) -> int:
    stream_id = conn.get_next_available_stream_id()
    headers = [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "test")]
    conn.send_headers(stream_id, headers, end_stream=True)
    return stream_id


async def h2c_client_aborting_mid_response(address: tuple[str, int], *, streams: int) -> None:
    """h2c prior knowledge: take some of several streamed responses, then GOAWAY and RST.

    The last window updates go out in the same write as the GOAWAY, so the server's sender
    wakes up with data to send just as it handles the GOAWAY by closing: the race of defect A.
    """
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    for _ in range(streams):
        h2_request(conn, "/stream")
    async with await trio.open_tcp_stream(*address) as stream:
        try:
            await stream.send_all(conn.data_to_send())
            await _receive_acknowledging(stream, conn, limit=2**17)
            conn.close_connection()
            await stream.send_all(conn.data_to_send())
        except trio.BrokenResourceError:
            pass  # the server reset us first: also an abort mid-response
        abort(stream)


async def _receive_acknowledging(
    stream: trio.SocketStream, conn: h2.connection.H2Connection, *, limit: int
) -> None:
    """Receive DATA until ``limit`` bytes, keeping the last window updates unsent."""
    received = 0
    while data := await stream.receive_some():
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                received += event.flow_controlled_length
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        if received >= limit:
            return
        await stream.send_all(conn.data_to_send())


async def h2c_client_vanishing_mid_final_send(
    address: tuple[str, int], final_send_started: trio.Event
) -> None:
    """Exhaust ``/held``'s flow-control window, so its final send waits to drain; vanish (FIN)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    h2_request(conn, "/held")
    window = conn.local_settings.initial_window_size  # what we grant the server
    async with await trio.open_tcp_stream(*address) as stream:
        await stream.send_all(conn.data_to_send())
        received = 0
        while received < window:
            data = await stream.receive_some()
            assert data, "the server closed the connection mid-response"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    received += event.flow_controlled_length
        await final_send_started.wait()


# ---------------------------------------------------------------- A


async def test_h2c_clients_aborting_mid_response_do_not_kill_the_server() -> None:
    app = DisconnectAwareApp()
    # Without the fix, serve() raised BusyResourceError within two bursts in every trial.
    async with serving(app, make_config()) as server:
        with trio.fail_after(BOUND):
            for _ in range(10):
                await _burst_of_aborting_h2c_clients(server.address, clients=20)
        async with await trio.open_tcp_stream(*server.address) as stream:
            with trio.fail_after(BOUND):
                assert await http11_get(stream, "/small") == b"ok"
    assert server.stopped.is_set()  # serve() returned rather than raised


async def _burst_of_aborting_h2c_clients(address: tuple[str, int], *, clients: int) -> None:
    async with trio.open_nursery() as burst:
        for _ in range(clients):
            burst.start_soon(partial(h2c_client_aborting_mid_response, address, streams=4))


# ---------------------------------------------------------------- B


async def test_idle_keep_alive_connection_is_closed_by_the_server() -> None:
    async with (
        serving(DisconnectAwareApp(), make_config()) as server,
        await trio.open_tcp_stream(*server.address) as stream,
    ):
        with trio.fail_after(BOUND):
            assert await http11_get(stream, "/small") == b"ok"
            assert await stream.receive_some() == b""


@PATHS
async def test_graceful_shutdown_does_not_wait_for_idle_keep_alive_connections(path: str) -> None:
    async with (
        serving(DisconnectAwareApp(), make_config(path=path)) as server,
        await trio.open_tcp_stream(*server.address) as stream,
    ):
        with trio.fail_after(BOUND):
            assert await http11_get(stream, "/small") == b"ok"
            server.stop.set()
            await server.stopped.wait()


async def test_graceful_shutdown_is_not_pinned_by_a_request_sent_during_it() -> None:
    """At shutdown h11 ends a finished cycle with Closed; a request the client had already
    sent behind it used to park the connection's reader until graceful_timeout ran out."""
    app = DisconnectAwareApp()
    async with (
        serving(app, make_config()) as server,
        await trio.open_tcp_stream(*server.address) as stream,
    ):
        client = h11.Connection(h11.CLIENT)
        first = h11.Request(method="GET", target="/gate", headers=[("host", "test")])
        await stream.send_all(client.send(first) + client.send(h11.EndOfMessage()))
        with trio.fail_after(BOUND):
            await app.gate_entered.wait()
        server.stop.set()  # graceful shutdown starts while /gate is in flight
        # The next request goes out on the same connection before the first is answered.
        second = b"GET /small HTTP/1.1\r\nhost: test\r\n\r\n"  # raw: h11 refuses to pipeline
        await stream.send_all(second)
        await trio.lowlevel.checkpoint()  # the bug shows whichever side reads it first
        app.gate.set()
        with trio.fail_after(BOUND):  # graceful_timeout is 60 s: a pinned reader fails here
            await read_until_closed(stream)
            await server.stopped.wait()


async def test_final_send_to_a_vanished_h2_client_does_not_pin_shutdown() -> None:
    # The shield in send_final_body must be bounded: once an h2 connection is gone, hypercorn
    # never wakes a final send that waits for the stream's buffer to drain. (With an unbounded
    # shield this test hangs rather than fails: nothing can cancel the stuck app task.)
    app = DisconnectAwareApp()
    async with serving(app, make_config()) as server:
        with trio.fail_after(BOUND):
            await h2c_client_vanishing_mid_final_send(server.address, app.final_send_started)
            server.stop.set()
            await server.stopped.wait()


# ---------------------------------------------------------------- C


@PATHS
async def test_stalled_reader_is_dropped_after_write_timeout(path: str) -> None:
    app = DisconnectAwareApp()
    async with (
        serving(app, make_config(path=path)) as server,
        await open_stalled_reader(server.address) as stream,
    ):
        await stream.send_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        with trio.fail_after(BOUND):
            await app.stream_ended.wait()  # only http.disconnect ends /stream
            await read_until_closed(stream)


@PATHS
async def test_graceful_shutdown_is_not_blocked_by_a_stalled_reader(path: str) -> None:
    app = DisconnectAwareApp()
    async with (
        serving(app, make_config(path=path)) as server,
        await open_stalled_reader(server.address) as stream,
    ):
        await stream.send_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        await app.streaming.wait()
        server.stop.set()
        with trio.fail_after(BOUND):
            await server.stopped.wait()


# ---------------------------------------------------------------- apply()


def test_apply_replaces_rather_than_wraps() -> None:
    # Every server test above already ran after repeated apply() calls (autouse fixture).
    hypercorn_fixes.apply(write_timeout=WRITE_TIMEOUT)
    hypercorn_fixes.apply(write_timeout=WRITE_TIMEOUT)
    assert TCPServer.protocol_send.__module__ == hypercorn_fixes.__name__
    assert TCPServer.protocol_send.__closure__ is not None
    assert [cell.cell_contents for cell in TCPServer.protocol_send.__closure__] == [WRITE_TIMEOUT]


def test_apply_refuses_other_hypercorn_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda _: "0.19.0")
    with pytest.raises(RuntimeError, match=r"0\.18\.0"):
        hypercorn_fixes.apply(write_timeout=WRITE_TIMEOUT)


@pytest.mark.parametrize("write_timeout", [0.0, -1.0, float("nan")])
def test_apply_refuses_a_write_timeout_that_is_not_positive(write_timeout: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        hypercorn_fixes.apply(write_timeout=write_timeout)
