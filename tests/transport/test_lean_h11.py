"""The lean HTTP/1.1 path (mcpd.transport.lean_h11) against a real in-process hypercorn and raw
sockets: the HTTP behaviour hypercorn had must survive, and what the lean path adds must hold.

The only time limits are generous bounds that turn a hang into a failure.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h11
import pytest
import trio
import trio.lowlevel
import trio.testing
import trustme
from hypercorn.config import Config
from hypercorn.trio import serve

from mcpd.transport import hypercorn_fixes, lean_h11
from mcpd.transport.app import serve_lifespan
from mcpd.transport.hypercorn_h11 import HALF_CLOSED
from mcpd.transport.lean_io import ConnectionIO

BOUND = 10.0
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@pytest.fixture(autouse=True)
def _lean_path() -> None:
    hypercorn_fixes.apply(write_timeout=5.0)


class App:
    """``/echo`` answers the request body; ``/gate`` answers once the test opens the gate,
    from another task, while the handler waits in ``receive`` (as mcpd's endpoint does);
    ``/stream`` streams until the client leaves; ``/fail`` raises; ``/events`` answers the
    ASGI messages it received."""

    def __init__(self) -> None:
        self.gate = trio.Event()
        self.entered = trio.Event()
        self.after_body: list[str] = []
        self.disconnected = trio.Event()
        self.second_receive_returned = False
        self.stale_send_error: BaseException | None = None
        self.sends: list[Send] = []
        self.passes = Passes()
        self.served: list[tuple[bytes, int]] = []  # /pass: (body, the scheduler pass)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        self.sends.append(send)
        path = scope["path"]
        if path == "/fail":
            raise RuntimeError("the app failed")
        if path == "/stream":
            await _stream(receive, send)
            return
        body = await _body(receive)
        if body is None:
            return
        if path == "/gate":
            await self._gated(receive, send)
            return
        if path == "/pass":
            self.served.append((body, self.passes.count))
        if path == "/stale":
            try:
                await self.sends[0]({"type": "http.response.body", "body": b"x"})
            except Exception as exc:
                self.stale_send_error = exc
        await _answer(send, body if path == "/echo" else b"ok")

    async def _gated(self, receive: Receive, send: Send) -> None:
        async def respond() -> None:
            await self.gate.wait()
            await _answer(send, b"gated")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(respond)
            self.entered.set()
            while (kind := (await receive())["type"]) != "http.disconnect":
                self.after_body.append(kind)  # what comes before it (HALF_CLOSED at an EOF)
            self.after_body.append(kind)
            self.disconnected.set()

            async def again() -> None:
                await receive()
                self.second_receive_returned = True

            nursery.start_soon(again)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()


class Passes(trio.abc.Instrument):
    """Counts the scheduler's passes (each begins with a check for I/O)."""

    def __init__(self) -> None:
        self.count = 0

    def after_io_wait(self, timeout: float) -> None:
        self.count += 1


async def _body(receive: Receive) -> bytes | None:
    """The request body; None if the client went away first (as mcpd's read_body does)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    async with trio.open_nursery() as nursery:

        async def until_gone() -> None:
            await receive()
            nursery.cancel_scope.cancel()

        nursery.start_soon(until_gone)
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await trio.sleep_forever()


# ---------------------------------------------------------------- serving


def make_config(**settings: Any) -> Config:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.keep_alive_timeout = 30.0
    config.graceful_timeout = 30.0
    for name, value in settings.items():
        setattr(config, name, value)
    return config


@asynccontextmanager
async def serving(app: App, config: Config) -> AsyncIterator[tuple[str, int]]:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        asgi: Any = app
        urls = await nursery.start(partial(serve, asgi, config, shutdown_trigger=stop.wait))
        url = urlsplit(urls[0])
        assert url.hostname is not None
        assert url.port is not None
        try:
            yield url.hostname, url.port
        finally:
            stop.set()


def _sent_raw(client: h11.Connection) -> None:
    """Tell the client side's h11 that a (raw) request went out."""
    if client.our_state is h11.DONE and client.their_state is h11.DONE:
        client.start_next_cycle()
    client.send(h11.Request(method="POST", target="/", headers=[("host", "t")]))
    client.send(h11.EndOfMessage())


async def read_response(
    stream: trio.abc.Stream, client: h11.Connection, *, raw: bool = True
) -> tuple[Any, bytes]:
    """One response (head and body) as h11 sees it (by default the request went out raw)."""
    if raw:
        _sent_raw(client)
    head, body = None, b""
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            client.receive_data(await stream.receive_some())
        elif isinstance(event, h11.Response | h11.InformationalResponse) and head is None:
            head = event
            if isinstance(event, h11.InformationalResponse):
                return head, b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, body
        elif isinstance(event, h11.ConnectionClosed):
            raise AssertionError("closed mid-response")


def post(path: str, body: bytes, *extra: tuple[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: test", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_to_eof(stream: trio.abc.Stream) -> bytes:
    data = b""
    with trio.fail_after(BOUND):
        while chunk := await stream.receive_some():
            data += chunk
    return data


# ---------------------------------------------------------------- keep-alive, pipelining


async def test_keep_alive_requests_are_answered_with_reason_phrases() -> None:
    async with serving(App(), make_config()) as address, await trio.open_tcp_stream(*address) as s:
        client = h11.Connection(h11.CLIENT)
        for text in (b"one", b"two", b"three"):
            await s.send_all(post("/echo", text))
            with trio.fail_after(BOUND):
                head, body = await read_response(s, client)
            assert (head.status_code, head.reason, body) == (200, b"OK", text)


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with serving(App(), make_config()) as address, await trio.open_tcp_stream(*address) as s:
        await s.send_all(post("/echo", b"first") + post("/echo", b"second"))
        client = h11.Connection(h11.CLIENT)
        with trio.fail_after(BOUND):
            assert (await read_response(s, client))[1] == b"first"
            assert (await read_response(s, client))[1] == b"second"


async def test_each_connection_is_served_one_request_per_scheduler_pass() -> None:
    """Two clients pipeline ten requests each: each connection's requests are served in passes
    of their own, and the two connections' in the same passes, not one client after the other."""
    app = App()
    trio.lowlevel.add_instrument(app.passes)
    try:
        async with serving(app, make_config()) as address:
            a, b = await trio.open_tcp_stream(*address), await trio.open_tcp_stream(*address)
            async with a, b:
                await a.send_all(post("/pass", b"a") * 10)
                await b.send_all(post("/pass", b"b") * 10)
                for stream in (a, b):
                    client = h11.Connection(h11.CLIENT)
                    with trio.fail_after(BOUND):
                        for _ in range(10):
                            assert (await read_response(stream, client))[1] == b"ok"
    finally:
        trio.lowlevel.remove_instrument(app.passes)
    passes = {label: [n for body, n in app.served if body == label] for label in (b"a", b"b")}
    assert all(len(set(served)) == 10 for served in passes.values())
    assert min(passes[b"b"]) < max(passes[b"a"])
    assert min(passes[b"a"]) < max(passes[b"b"])


async def test_a_read_after_finding_nothing_passes_through_the_scheduler() -> None:
    """``receive_later`` (the read after an empty ``try_receive``) yields even if the bytes have
    arrived meanwhile; ``receive`` takes bytes already there without a pass."""
    left, right = trio.socket.socketpair()
    with left, right:
        io = ConnectionIO(trio.SocketStream(left), 5.0)
        await right.send(b"one")
        with trio.testing.assert_no_checkpoints():
            assert io.try_receive() == b"one"
        await right.send(b"two")
        with trio.testing.assert_checkpoints():
            assert await io.receive_later() == b"two"
        await right.send(b"three")
        with trio.testing.assert_no_checkpoints():
            assert await io.receive() == b"three"


async def test_chunked_request_body_arrives_whole() -> None:
    async with serving(App(), make_config()) as address, await trio.open_tcp_stream(*address) as s:
        head = b"POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n"
        await s.send_all(head + b"3\r\nabc\r\n")
        await trio.lowlevel.checkpoint()  # the rest in a later segment, if the stack allows
        await s.send_all(b"2\r\nde\r\n0\r\n\r\n")
        with trio.fail_after(BOUND):
            assert (await read_response(s, h11.Connection(h11.CLIENT)))[1] == b"abcde"


async def test_expect_100_continue_is_answered_before_the_body() -> None:
    async with serving(App(), make_config()) as address, await trio.open_tcp_stream(*address) as s:
        head = post("/echo", b"").replace(b"content-length: 0", b"content-length: 4")
        await s.send_all(head.replace(b"\r\n\r\n", b"\r\nexpect: 100-continue\r\n\r\n"))
        client = h11.Connection(h11.CLIENT)
        expect = [("host", "t"), ("content-length", "4"), ("expect", "100-continue")]
        client.send(h11.Request(method="POST", target="/echo", headers=expect))
        with trio.fail_after(BOUND):
            interim, _ = await read_response(s, client, raw=False)
            assert interim.status_code == 100
            await s.send_all(b"body")
            client.send(h11.Data(data=b"body"))
            client.send(h11.EndOfMessage())
            head_event, body = await read_response(s, client, raw=False)
        assert (head_event.status_code, body) == (200, b"body")


async def test_a_malformed_request_gets_400_and_the_connection_closes() -> None:
    async with serving(App(), make_config()) as address, await trio.open_tcp_stream(*address) as s:
        await s.send_all(b"GET / HTTP/1.1\r\nbad header line\r\n\r\n")
        data = await read_to_eof(s)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


async def test_a_body_cut_short_by_eof_gets_400() -> None:
    async with serving(App(), make_config()) as address, await trio.open_tcp_stream(*address) as s:
        await s.send_all(post("/echo", b"").replace(b"content-length: 0", b"content-length: 9"))
        await s.send_all(b"abc")
        await s.send_eof()
        data = await read_to_eof(s)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


async def test_an_app_failing_before_its_response_gets_500() -> None:
    async with serving(App(), make_config()) as address, await trio.open_tcp_stream(*address) as s:
        await s.send_all(b"GET /fail HTTP/1.1\r\nhost: test\r\n\r\n")
        data = await read_to_eof(s)
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


async def test_a_send_from_a_finished_request_cannot_reach_the_next_response() -> None:
    app = App()
    async with serving(app, make_config()) as address, await trio.open_tcp_stream(*address) as s:
        client = h11.Connection(h11.CLIENT)
        await s.send_all(post("/echo", b"first"))
        with trio.fail_after(BOUND):
            await read_response(s, client)
            await s.send_all(post("/stale", b""))
            assert (await read_response(s, client))[1] == b"ok"
    assert app.stale_send_error is not None


# ---------------------------------------------------------------- disconnects and half-closes


async def test_a_half_closed_request_is_answered_then_the_connection_closes() -> None:
    app = App()
    async with serving(app, make_config()) as address:
        sock = trio.socket.socket()
        await sock.connect(address)
        async with trio.SocketStream(sock) as s:
            await s.send_all(post("/gate", b""))
            with trio.fail_after(BOUND):
                await app.entered.wait()
            await s.send_eof()  # SHUT_WR: the request is complete, the client still reads
            await trio.testing.wait_all_tasks_blocked()
            app.gate.set()
            data = await read_to_eof(s)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"gated")
    # told of the EOF (so a real app can probe), then the disconnect after the answer
    assert app.after_body == [HALF_CLOSED, "http.disconnect"]


async def test_a_reset_is_one_disconnect_and_later_receives_wait() -> None:
    app = App()
    async with serving(app, make_config()) as address:
        s = await trio.open_tcp_stream(*address)
        await s.send_all(post("/gate", b""))
        with trio.fail_after(BOUND):
            await app.entered.wait()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await s.aclose()
        with trio.fail_after(BOUND):
            await app.disconnected.wait()
        await trio.testing.wait_all_tasks_blocked()
    assert app.after_body == ["http.disconnect"]
    assert not app.second_receive_returned


# ---------------------------------------------------------------- handed to the h2 path


async def test_h2c_prior_knowledge_is_handed_to_the_h2_path() -> None:
    async with serving(App(), make_config()) as address, await trio.open_tcp_stream(*address) as s:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        headers = [(":method", "GET"), (":path", "/x"), (":scheme", "http"), (":authority", "t")]
        conn.send_headers(1, headers, end_stream=True)
        await s.send_all(conn.data_to_send())
        with trio.fail_after(BOUND):
            assert await _h2_body(s, conn, 1) == b"ok"


async def test_an_h2c_upgrade_is_handed_to_the_h2_path() -> None:
    async with serving(App(), make_config()) as address, await trio.open_tcp_stream(*address) as s:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        settings = conn.initiate_upgrade_connection().decode()
        upgrade = "GET /x HTTP/1.1\r\nhost: t\r\nconnection: Upgrade, HTTP2-Settings\r\n"
        upgrade += f"upgrade: h2c\r\nhttp2-settings: {settings}\r\n\r\n"
        await s.send_all(upgrade.encode())
        seen = b""
        with trio.fail_after(BOUND):
            while b"\r\n\r\n" not in seen:
                seen += await s.receive_some()
            assert seen.startswith(b"HTTP/1.1 101 ")
            await s.send_all(conn.data_to_send())
            # The first read may have brought the h2 frames after the 101, the answer too.
            assert await _h2_body(s, conn, 1, seen.split(b"\r\n\r\n", 1)[1]) == b"ok"


async def _h2_body(
    s: trio.abc.Stream, conn: h2.connection.H2Connection, stream: int, already: bytes = b""
) -> bytes:
    """Stream ``stream``'s body, starting from bytes ``already`` read."""
    body = b""
    data = already
    while True:
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                body += event.data
            if isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                return body
        await s.send_all(conn.data_to_send())
        data = await s.receive_some()


async def test_tls_http11_and_tls_h2_are_each_served_by_their_path(tmp_path: Any) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    config = make_config(certfile=str(tmp_path / "cert.pem"), keyfile=str(tmp_path / "key.pem"))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with serving(App(), config) as address:
        for alpn in ("http/1.1", "h2"):
            context.set_alpn_protocols([alpn])
            tcp = await trio.open_tcp_stream(*address)
            async with trio.SSLStream(tcp, context, server_hostname="127.0.0.1") as s:
                await s.do_handshake()
                assert s.selected_alpn_protocol() == alpn
                if alpn == "h2":
                    await _h2_get_over(s)
                    continue
                await s.send_all(post("/echo", b"tls"))
                with trio.fail_after(BOUND):
                    assert (await read_response(s, h11.Connection(h11.CLIENT)))[1] == b"tls"


async def _h2_get_over(s: trio.abc.Stream) -> None:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [(":method", "GET"), (":path", "/x"), (":scheme", "https"), (":authority", "t")]
    conn.send_headers(1, headers, end_stream=True)
    await s.send_all(conn.data_to_send())
    with trio.fail_after(BOUND):
        assert await _h2_body(s, conn, 1) == b"ok"


# ---------------------------------------------------------------- closing and draining


async def test_a_streaming_get_response_says_connection_close() -> None:
    async with serving(App(), make_config()) as address, await trio.open_tcp_stream(*address) as s:
        await s.send_all(b"GET /stream HTTP/1.1\r\nhost: test\r\n\r\n")
        seen = b""
        with trio.fail_after(BOUND):
            while b"data: 1" not in seen:
                seen += await s.receive_some()
    assert b"\r\nconnection: close\r\n" in seen.lower()


async def test_draining_closes_idle_connections_and_says_connection_close() -> None:
    config = make_config()
    async with serving(App(), config) as address:
        idle = await trio.open_tcp_stream(*address)
        client = h11.Connection(h11.CLIENT)
        await idle.send_all(post("/echo", b"before"))
        with trio.fail_after(BOUND):
            assert (await read_response(idle, client))[1] == b"before"
        lean_h11.begin_drain(config)
        assert await read_to_eof(idle) == b""  # closed at once, not after keep_alive_timeout
        busy = await trio.open_tcp_stream(*address)  # the listener still accepts
        await busy.send_all(post("/echo", b"during"))
        data = await read_to_eof(busy)  # answered, then closed
        assert b"\r\nconnection: close\r\n" in data.lower()
        assert data.endswith(b"during")


async def test_draining_still_answers_a_request_its_client_sent_before_knowing() -> None:
    """The keep-alive race: a client sends its next request on a connection whose last
    response, sent before the drain, did not say close. It is answered (saying close), not
    cut off unread."""
    config = make_config()
    async with serving(App(), config) as address, await trio.open_tcp_stream(*address) as s:
        client = h11.Connection(h11.CLIENT)
        await s.send_all(post("/echo", b"before"))
        with trio.fail_after(BOUND):
            head, body = await read_response(s, client)
        assert body == b"before"
        assert (b"connection", b"close") not in head.headers
        lean_h11.begin_drain(config)
        await s.send_all(post("/echo", b"racing"))  # sent without having seen the drain
        data = await read_to_eof(s)
        assert b"\r\nconnection: close\r\n" in data.lower()
        assert data.endswith(b"racing")
