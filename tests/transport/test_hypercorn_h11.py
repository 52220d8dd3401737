"""Regression tests for mcpd.transport.hypercorn_h11: reason phrases, half-closed requests answered.

Raw sockets against an in-process hypercorn: the bytes on the wire are what is asserted. Each
test names the defect it guards; without the fix, the half-close tests get an empty answer
(the app was told ``http.disconnect``) or run into BOUND.
"""

from __future__ import annotations

import socket
import struct

import h11
import pytest
import trio
import trio.testing
from hypercorn.protocol.h11 import H11Protocol
from support.hypercorn_server import BOUND, Message, Receive, Send, make_config, serving

from mcpd.transport import hypercorn_fixes, hypercorn_h11
from mcpd.transport.app import serve_lifespan
from mcpd.transport.hypercorn_h11 import with_reason

WRITE_TIMEOUT = 0.5


@pytest.fixture(autouse=True)
def _fixes_applied() -> None:
    hypercorn_fixes.apply(write_timeout=WRITE_TIMEOUT)


class App:
    """``/status/N`` answers status N; ``/gate`` answers once the test opens the gate;
    ``/twice`` writes twice, the second time once the gate opens; ``/stream`` streams until
    told ``http.disconnect``. Like mcpd, it cancels its own work on ``http.disconnect``."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.gate = trio.Event()
        self.disconnected = trio.Event()

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, receive, nursery.cancel_scope)
            await self._respond(scope["path"], send)
            nursery.cancel_scope.cancel()

    async def _respond(self, path: str, send: Send) -> None:
        status = int(path.rpartition("/")[2]) if path.startswith("/status/") else 200
        self.entered.set()
        if path == "/gate":
            await self.gate.wait()
        await send({"type": "http.response.start", "status": status, "headers": []})
        if path == "/twice":  # one chunk, then one more once the gate opens, then silence
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            await self.gate.wait()
            await send({"type": "http.response.body", "body": b"second", "more_body": True})
            await trio.sleep_forever()
        if path == "/stream":
            while True:
                await send({"type": "http.response.body", "body": b"x" * 4096, "more_body": True})
                await trio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"answer"})

    async def _watch(self, receive: Receive, work: trio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected.set()
        work.cancel()


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


# ---------------------------------------------------------------- reason phrases


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (400, b"HTTP/1.1 400 Bad Request\r\n"),
        (404, b"HTTP/1.1 404 Not Found\r\n"),
        (503, b"HTTP/1.1 503 Service Unavailable\r\n"),
        (599, b"HTTP/1.1 599 \r\n"),  # no standard phrase: left empty
    ],
)
async def test_status_lines_carry_the_standard_reason_phrase(status: int, line: bytes) -> None:
    async with (
        serving(App(), make_config()) as server,
        await trio.open_tcp_stream(*server.address) as stream,
    ):
        await stream.send_all(request(f"/status/{status}"))
        with trio.fail_after(BOUND):
            received = await stream.receive_some()
    assert received.startswith(line)


async def test_hypercorns_own_error_responses_carry_a_reason_phrase() -> None:
    async with (
        serving(App(), make_config()) as server,
        await trio.open_tcp_stream(*server.address) as stream,
    ):
        await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        with trio.fail_after(BOUND):
            received = await read_to_eof(stream)
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_with_reason_keeps_a_phrase_that_is_set_and_other_events() -> None:
    response = h11.Response(status_code=200, headers=[], reason=b"Fine")
    assert with_reason(response) is response
    data = h11.Data(data=b"x")
    assert with_reason(data) is data


# ---------------------------------------------------------------- half-close


async def test_a_half_closed_complete_request_gets_its_full_answer() -> None:
    app = App()
    async with (
        serving(app, make_config()) as server,
        await trio.open_tcp_stream(*server.address) as stream,
    ):
        await stream.send_all(request("/gate"))
        await stream.send_eof()  # shutdown(SHUT_WR): the request is complete, we only read
        with trio.fail_after(BOUND):
            await app.entered.wait()
            await trio.testing.wait_all_tasks_blocked()  # the server has seen our EOF
            app.gate.set()
            received = await read_to_eof(stream)  # the server closes after the answer
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\n6\r\nanswer\r\n0\r\n\r\n")  # the whole chunked body


async def test_after_a_half_close_a_reset_still_ends_the_request() -> None:
    """A real disconnect (here: RST while the answer streams) is noticed by the failed write;
    the connection's reader must stop too, or graceful shutdown waits graceful_timeout."""
    app = App()
    async with serving(app, make_config(graceful_timeout=60.0)) as server:
        stream = await trio.open_tcp_stream(*server.address)
        await stream.send_all(request("/stream"))
        await stream.send_eof()
        with trio.fail_after(BOUND):
            assert (await stream.receive_some()).startswith(b"HTTP/1.1 200 OK\r\n")
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await stream.aclose()  # RST
            await app.disconnected.wait()
    # Stopping waits for every connection: a reader still parked would hold serve() for
    # graceful_timeout (60 s), past the BOUND that `serving` gives it.
    assert server.stopped.is_set()


async def test_a_client_that_closed_is_noticed_at_the_next_write() -> None:
    """A full close is a FIN like a half-close; the peer's kernel answers the next write with
    RST, and that one write must be enough (the app may write nothing after it)."""
    app = App()
    async with serving(app, make_config()) as server:
        stream = await trio.open_tcp_stream(*server.address)
        await stream.send_all(request("/twice"))
        with trio.fail_after(BOUND):
            received = b""
            while not received.endswith(b"5\r\nfirst\r\n"):
                received += await stream.receive_some()
            await stream.aclose()  # everything read: close() sends FIN, not RST
            await trio.testing.wait_all_tasks_blocked()  # the server has seen the EOF
            assert not app.disconnected.is_set()  # a FIN alone is not a disconnect
            app.gate.set()  # one more write, which the closed socket answers with RST
            await app.disconnected.wait()


async def test_an_eof_inside_a_request_is_still_a_disconnect() -> None:
    app = App()
    async with (
        serving(app, make_config()) as server,
        await trio.open_tcp_stream(*server.address) as stream,
    ):
        head = b"POST /gate HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc"
        await stream.send_all(head)
        await stream.send_eof()
        with trio.fail_after(BOUND):
            await app.disconnected.wait()
            received = await read_to_eof(stream)
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_apply_installs_the_reason_phrases_without_wrapping() -> None:
    hypercorn_fixes.apply(write_timeout=WRITE_TIMEOUT)
    hypercorn_fixes.apply(write_timeout=WRITE_TIMEOUT)
    assert H11Protocol._send_h11_event is hypercorn_h11._send_h11_event
