"""The lean HTTP/2 path (mcpd.transport.lean_h2) against a real in-process hypercorn: raw ``h2``
clients (``support.h2c``) and httpx with http2, over h2c prior knowledge and TLS with ALPN h2.

What hypercorn's own h2 gave the app must hold (its scope, one http.disconnect, streaming,
flow control: the bounds themselves are tests/transport/test_hypercorn_h2.py), and what the
lean path adds: streams run side by side, a complete answer is one write. The only time
limits are generous bounds that turn a hang into a failure, or trio's MockClock.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import httpx
import pytest
import trio
import trio.testing
import trustme
from hypercorn.config import Config
from support.h2c import H2c, StreamState

from mcpd.transport import hypercorn_accept, hypercorn_fixes, lean_h11
from mcpd.transport.app import serve_lifespan
from mcpd.transport.hypercorn_fixes import send_final_body
from mcpd.transport.lean_h2 import LeanH2

BOUND = 10.0
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
FLOOD = b"f" * 2**16


@pytest.fixture(autouse=True)
def _lean_path() -> None:
    hypercorn_fixes.apply(write_timeout=5.0)


@dataclass
class App:
    """``/ok`` answers ``ok``; ``/len`` the length of the body; ``/ignore`` answers without
    reading the body; ``/hold`` runs a "tool" until the client leaves (as mcpd's endpoint
    does: a watcher in ``receive`` cancels it); ``/gate`` answers once the test opens the
    gate; ``/stream`` streams what the test puts into ``chunks``; ``/fail`` raises;
    ``/unfinished`` returns in the middle of its response."""

    scopes: list[Message] = field(default_factory=list)
    gate: trio.Event = field(default_factory=trio.Event)
    holding: int = 0
    disconnects: list[str] = field(default_factory=list)
    finally_ran: int = 0
    second_receive_returned: bool = False
    chunks: tuple[trio.MemorySendChannel[bytes], trio.MemoryReceiveChannel[bytes]] = field(
        default_factory=lambda: trio.open_memory_channel[bytes](10)
    )
    _moved: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)

    async def until(self, done: Callable[[App], bool]) -> None:
        """Wait (bounded) until ``done(self)``: checked each time the app's state moves."""
        with trio.fail_after(BOUND):
            while not done(self):
                await self._moved.park()

    def moved(self) -> None:
        self._moved.unpark_all()

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        self.scopes.append(scope)
        self.moved()
        path = scope["path"]
        if path == "/fail":
            raise RuntimeError("the app failed")
        if path == "/ignore":
            await _answer(send, b"ignored")
            return
        if path == "/flood":
            await self._flood(receive, send)
            return
        body = await _body(receive)
        if path == "/len":
            await _answer(send, str(len(body)).encode())
        elif path in {"/hold", "/gate"}:
            await self._watched(path, receive, send)
        elif path == "/stream":
            await self._stream(receive, send)
        elif path == "/unfinished":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"half", "more_body": True})
        else:
            await _answer(send, b"ok")

    async def _watched(self, path: str, receive: Receive, send: Send) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, path, receive, nursery.cancel_scope)
            if path == "/gate":
                await self.gate.wait()
                await _answer(send, b"gated")
                await trio.sleep_forever()  # the watcher ends it: the response completed
            self.holding += 1
            self.moved()
            try:
                await trio.sleep_forever()  # the tool call
            finally:
                self.finally_ran += 1
                self.moved()

    async def _watch(self, path: str, receive: Receive, work: trio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnects.append(path)
        self.moved()
        work.cancel()
        with trio.move_on_after(BOUND):  # cancelled at once: the nursery is done
            await receive()
            self.second_receive_returned = True

    async def _flood(self, receive: Receive, send: Send) -> None:
        """64 MiB in 64 KiB sends, until the client leaves."""
        await send({"type": "http.response.start", "status": 200, "headers": []})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, "/flood", receive, nursery.cancel_scope)
            for _ in range(1024):
                await send({"type": "http.response.body", "body": FLOOD, "more_body": True})
            await send_final_body(send)

    async def _stream(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, "/stream", receive, nursery.cancel_scope)
            async for chunk in self.chunks[1]:
                if not chunk:
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send_final_body(send, b"end")


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send_final_body(send, body)


# ---------------------------------------------------------------- serving


def make_config(**settings: Any) -> Config:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.keep_alive_timeout = 30.0
    config.graceful_timeout = 30.0
    for name, value in settings.items():
        setattr(config, name, value)
    return config


@dataclass
class Server:
    address: tuple[str, int]
    stop: trio.Event
    stopped: trio.Event


@asynccontextmanager
async def serving(app: App, config: Config) -> AsyncIterator[Server]:
    """Serve ``app`` as the daemon does until the block ends (or the test sets ``stop``)."""
    stop, stopped = trio.Event(), trio.Event()

    async def serve(*, task_status: trio.TaskStatus[list[str]]) -> None:
        asgi: Any = app
        await hypercorn_accept.serve(
            asgi, config, shutdown_trigger=stop.wait, task_status=task_status
        )
        stopped.set()

    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(serve)
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


async def _get(client: H2c, path: str, body: bytes = b"") -> bytes:
    stream = await client.request("POST" if body else "GET", path, body=body)
    with trio.fail_after(BOUND):
        await client.until(lambda: client.streams[stream].ended)
    return bytes(client.streams[stream].data)


def _lean_connections(config: Config) -> list[LeanH2]:
    return [conn for conn in lean_h11.drain_state(config).connections if type(conn) is LeanH2]


# ---------------------------------------------------------------- which path, which scope


async def test_h2c_prior_knowledge_is_served_by_the_lean_path() -> None:
    config = make_config()
    async with serving(App(), config) as server:
        client = await H2c.connect(server.address)
        assert await _get(client, "/ok") == b"ok"
        assert len(_lean_connections(config)) == 1
        await client.aclose()


async def test_tls_alpn_h2_is_served_by_the_lean_path_for_httpx(tmp_path: Any) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    config = make_config(certfile=str(tmp_path / "cert.pem"), keyfile=str(tmp_path / "key.pem"))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    app = App()
    async with serving(app, config) as server:
        host, port = server.address
        async with httpx.AsyncClient(http2=True, verify=context) as client:
            with trio.fail_after(BOUND):
                answers = [await client.post(f"https://{host}:{port}/len", content=b"xyz")]
                answers.append(await client.get(f"https://{host}:{port}/ok"))
            assert len(_lean_connections(config)) == 1
    assert [(a.http_version, a.text) for a in answers] == [("HTTP/2", "3"), ("HTTP/2", "ok")]
    assert app.scopes[0]["scheme"] == "https"


async def test_an_h2c_upgrade_is_served_by_the_lean_path_as_stream_one() -> None:
    config = make_config()
    app = App()
    async with serving(app, config) as server:
        stream = await trio.open_tcp_stream(*server.address)
        client = H2c(stream, initial_window=None)
        client.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        settings = client.conn.initiate_upgrade_connection().decode()  # no preface yet
        client.streams[1] = StreamState()
        upgrade = "GET /ok?x=1 HTTP/1.1\r\nhost: t\r\nconnection: Upgrade, HTTP2-Settings\r\n"
        upgrade += f"upgrade: h2c\r\nhttp2-settings: {settings}\r\n\r\n"
        await stream.send_all(upgrade.encode())
        seen = b""
        with trio.fail_after(BOUND):
            while b"\r\n\r\n" not in seen:
                seen += await stream.receive_some()
            head, _, rest = seen.partition(b"\r\n\r\n")
            await client.flush()  # the client's preface, after the 101
            for event in client.conn.receive_data(rest):
                client._record(event)
            await client.until(lambda: client.streams[1].ended)
            assert len(_lean_connections(config)) == 1
            assert await _get(client, "/len", b"after") == b"5"  # a stream of its own
        await client.aclose()
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert bytes(client.streams[1].data) == b"ok"
    scope = app.scopes[0]
    assert (scope["http_version"], scope["method"], scope["path"]) == ("2", "GET", "/ok")
    assert scope["query_string"] == b"x=1"
    assert scope["headers"][0] == (b"host", b"t")


async def test_the_scope_is_the_one_hypercorns_h2_gave() -> None:
    app = App()
    async with serving(app, make_config()) as server:
        client = await H2c.connect(server.address)
        stream = await client.request("GET", "/a%20b?x=1", [("x-test", "yes")])
        with trio.fail_after(BOUND):
            await client.until(lambda: client.streams[stream].ended)
        await client.aclose()
    scope = app.scopes[0]
    assert {key: scope[key] for key in ("type", "http_version", "method", "scheme")} == {
        "type": "http",
        "http_version": "2",
        "method": "GET",
        "scheme": "http",
    }
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/a b", b"/a%20b", b"x=1")
    assert scope["headers"] == [(b"host", b"127.0.0.1"), (b"x-test", b"yes")]
    assert scope["asgi"] == {"spec_version": "2.1", "version": "3.0"}
    assert scope["client"][0] == scope["server"][0] == "127.0.0.1"
    assert scope["server"][1] == server.address[1]
    assert scope["root_path"] == ""
    assert scope["extensions"] == {}


# ---------------------------------------------------------------- streams and writes


async def test_a_slow_stream_does_not_hold_the_others_on_its_connection() -> None:
    app = App()
    async with serving(app, make_config()) as server:
        client = await H2c.connect(server.address)
        slow = await client.request("GET", "/gate")
        assert await _get(client, "/ok") == b"ok"
        assert await _get(client, "/len", b"12345") == b"5"
        assert not client.streams[slow].ended
        app.gate.set()
        with trio.fail_after(BOUND):
            await client.until(lambda: client.streams[slow].ended)
        assert bytes(client.streams[slow].data) == b"gated"
        # The response completed: the app heard http.disconnect once.
        await trio.testing.wait_all_tasks_blocked()
        assert app.disconnects == ["/gate"]
        await client.aclose()


async def test_a_complete_answer_is_one_write_of_headers_and_data() -> None:
    async with serving(App(), make_config()) as server:
        client = await H2c.connect(server.address)
        assert await _get(client, "/ok") == b"ok"  # settings exchanged
        await client.request("GET", "/ok")
        await trio.testing.wait_all_tasks_blocked()  # the server has written all it will
        events = client.conn.receive_data(await client.stream.receive_some())
        await client.aclose()
    kinds = [type(event) for event in events]
    assert kinds == [h2.events.ResponseReceived, h2.events.DataReceived, h2.events.StreamEnded]
    headers = dict(events[0].headers)  # type: ignore[attr-defined]
    assert headers[b":status"] == b"200"
    assert b"connection" not in headers  # connection-specific: not allowed on h2


async def test_a_body_larger_than_the_window_arrives_whole() -> None:
    async with serving(App(), make_config()) as server:
        client = await H2c.connect(server.address)
        assert await _get(client, "/len", b"b" * 300_000) == b"300000"
        await client.aclose()


async def test_bodies_the_app_never_reads_do_not_shrink_the_connection_window() -> None:
    """Each body is acknowledged once its app is done, read or not: otherwise the
    connection's window (65,535 bytes) would be gone after the second one."""
    async with serving(App(), make_config()) as server:
        client = await H2c.connect(server.address)
        for _ in range(4):
            assert await _get(client, "/ignore", b"i" * 40_000) == b"ignored"
        await client.aclose()


async def test_a_streamed_answer_flows_chunk_by_chunk() -> None:
    app = App()
    async with serving(app, make_config()) as server:
        client = await H2c.connect(server.address)
        stream = await client.request("GET", "/stream")
        state = client.streams[stream]
        with trio.fail_after(BOUND):
            await client.until(lambda: bool(state.headers))  # the head before any chunk
            for chunk in (b"one ", b"two "):
                await app.chunks[0].send(chunk)
                await client.until(lambda: state.data.endswith(chunk))  # noqa: B023
            await app.chunks[0].send(b"")
            await client.until(lambda: state.ended)
        assert bytes(state.data) == b"one two end"
        await trio.testing.wait_all_tasks_blocked()
        assert app.disconnects == ["/stream"]  # once the response completed
        await client.aclose()


async def test_an_answer_a_shut_window_holds_goes_out_whole_once_it_opens() -> None:
    async with serving(App(), make_config()) as server:
        client = await H2c.connect(server.address, initial_window=0)
        stream = await client.request("GET", "/ok")
        await trio.testing.wait_all_tasks_blocked()  # the app has answered; the bytes wait
        with trio.fail_after(BOUND):
            await client.until(lambda: bool(client.streams[stream].headers))
        assert not client.streams[stream].data
        await client.open_window(stream, 100)
        with trio.fail_after(BOUND):
            await client.until(lambda: client.streams[stream].ended)
        assert bytes(client.streams[stream].data) == b"ok"
        await client.aclose()


async def test_a_peer_that_stops_reading_is_aborted_after_the_write_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Wide-open windows, but the client never reads its socket: the server's write makes no
    progress for write_timeout (5 s here), so the connection is aborted and the app told."""
    app = App()
    async with serving(app, make_config()) as server:
        client = await H2c.connect(server.address, initial_window=2**30)
        await client.open_window(None, 2**30)
        await client.request("GET", "/flood")
        await app.until(lambda a: a.disconnects == ["/flood"])
        received, reset = 0, False
        with trio.fail_after(BOUND):
            try:  # what the socket buffers held, then the reset
                while data := await client.stream.receive_some():
                    received += len(data)
            except trio.BrokenResourceError:
                reset = True
        assert reset
        assert received < 1024 * len(FLOOD)


# ---------------------------------------------------------------- disconnects


async def test_a_client_reset_cancels_the_call_with_one_disconnect() -> None:
    app = App()
    async with serving(app, make_config()) as server:
        client = await H2c.connect(server.address)
        held = await client.request("POST", "/hold", body=b"{}")
        await app.until(lambda a: a.holding >= 1)
        client.conn.reset_stream(held, error_code=h2.errors.ErrorCodes.CANCEL)
        await client.flush()
        await app.until(lambda a: a.finally_ran >= 1)
        await trio.testing.wait_all_tasks_blocked()
        assert app.disconnects == ["/hold"]
        assert not app.second_receive_returned  # later receives wait
        assert await _get(client, "/ok") == b"ok"  # the connection serves on
        await client.aclose()


async def test_a_lost_connection_tells_each_of_its_streams_once() -> None:
    app = App()
    async with serving(app, make_config()) as server:
        client = await H2c.connect(server.address)
        for _ in range(3):
            await client.request("POST", "/hold", body=b"{}")
        await app.until(lambda a: a.holding >= 3)
        await client.aclose()
        await app.until(lambda a: a.finally_ran >= 3)
        await trio.testing.wait_all_tasks_blocked()
    assert app.disconnects == ["/hold"] * 3
    assert not app.second_receive_returned


async def test_an_app_failing_before_its_answer_gets_500_and_one_leaving_midway_a_reset() -> None:
    async with serving(App(), make_config()) as server:
        client = await H2c.connect(server.address)
        failed = await client.request("GET", "/fail")
        unfinished = await client.request("GET", "/unfinished")
        with trio.fail_after(BOUND):
            await client.until(lambda: client.streams[unfinished].reset is not None)
            await client.until(lambda: client.streams[failed].ended)
        assert dict(client.streams[failed].headers)[b":status"] == b"500"
        assert client.streams[unfinished].reset == h2.errors.ErrorCodes.INTERNAL_ERROR
        assert bytes(client.streams[unfinished].data) == b"half"
        await client.aclose()


async def test_a_host_outside_server_names_gets_404_without_the_app() -> None:
    app = App()
    async with serving(app, make_config(server_names=["mcp.example"])) as server:
        client = await H2c.connect(server.address)  # :authority 127.0.0.1
        stream = await client.request("GET", "/ok")
        with trio.fail_after(BOUND):
            await client.until(lambda: client.streams[stream].ended)
        assert dict(client.streams[stream].headers)[b":status"] == b"404"
        assert app.scopes == []
        await client.aclose()


# ---------------------------------------------------------------- idle, caps, shutdown


async def test_only_a_connection_without_streams_is_closed_when_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = App()
    async with serving(app, make_config(keep_alive_timeout=5.0)) as server:
        client = await H2c.connect(server.address)
        stream = await client.request("GET", "/gate")
        await trio.sleep(60)  # a stream open for twelve keep-alive timeouts
        assert not client.closed
        app.gate.set()
        with trio.fail_after(BOUND):
            await client.until(lambda: client.streams[stream].ended)
            await client.until(lambda: client.closed)  # idle from now: closed
        assert client.terminated is not None
        assert (client.terminated.error_code, client.terminated.last_stream_id) == (NO_ERROR, 1)


async def test_after_keep_alive_max_requests_the_connection_says_goaway() -> None:
    async with serving(App(), make_config(keep_alive_max_requests=2)) as server:
        client = await H2c.connect(server.address)
        assert await _get(client, "/ok") == b"ok"
        assert await _get(client, "/ok") == b"ok"
        with trio.fail_after(BOUND):
            await client.until(lambda: client.closed)
        assert client.terminated is not None
        assert (client.terminated.error_code, client.terminated.last_stream_id) == (NO_ERROR, 3)


async def test_more_streams_than_h2_max_concurrent_streams_end_the_connection() -> None:
    """As on hypercorn's h2: the h2 library treats the excess stream as a protocol error."""
    app = App()
    async with serving(app, make_config(h2_max_concurrent_streams=2)) as server:
        client = await H2c.connect(server.address)
        with trio.fail_after(BOUND):
            await client.until(lambda: client.conn.remote_settings.max_concurrent_streams == 2)
        for _ in range(2):
            await client.request("POST", "/hold", body=b"{}")
        await app.until(lambda a: a.holding >= 2)
        client.conn.remote_settings = h2.settings.Settings(client=False)  # ignore the limit
        await client.request("GET", "/ok")
        with trio.fail_after(BOUND):
            await client.until(lambda: client.closed)
        await app.until(lambda a: a.finally_ran >= 2)
        assert client.terminated is not None
        assert client.terminated.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
        assert [scope["path"] for scope in app.scopes] == ["/hold", "/hold"]


async def test_shutting_down_refuses_new_streams_and_closes_once_the_last_one_ends() -> None:
    app = App()
    async with serving(app, make_config()) as server:
        idle = await H2c.connect(server.address)
        assert await _get(idle, "/ok") == b"ok"
        busy = await H2c.connect(server.address)
        gated = await busy.request("GET", "/gate")
        await app.until(lambda a: bool(a.scopes) and a.scopes[-1]["path"] == "/gate")
        server.stop.set()  # hypercorn's graceful shutdown
        with trio.fail_after(BOUND):
            await idle.until(lambda: idle.closed)  # idle: closed at once
            refused = await busy.request("GET", "/ok")
            await busy.until(lambda: busy.streams[refused].reset is not None)
            assert not busy.closed
            app.gate.set()
            await busy.until(lambda: busy.closed)
            await server.stopped.wait()
        assert busy.streams[refused].reset == h2.errors.ErrorCodes.REFUSED_STREAM
        assert bytes(busy.streams[gated].data) == b"gated"
        assert busy.terminated is not None
        assert (busy.terminated.error_code, busy.terminated.last_stream_id) == (NO_ERROR, 1)


async def test_draining_serves_streams_then_says_goaway() -> None:
    config = make_config()
    app = App()
    async with serving(app, config) as server:
        idle = await H2c.connect(server.address)
        assert await _get(idle, "/ok") == b"ok"
        busy = await H2c.connect(server.address)
        gated = await busy.request("GET", "/gate")
        await app.until(lambda a: bool(a.scopes) and a.scopes[-1]["path"] == "/gate")
        lean_h11.begin_drain(config)
        with trio.fail_after(BOUND):
            assert await _get(busy, "/ok") == b"ok"  # a stream opened while draining: served
            await idle.until(lambda: idle.closed)  # idle: closed after DRAIN_LINGER
            assert not busy.closed
            app.gate.set()
            await busy.until(lambda: busy.closed)  # its last stream done: GOAWAY
            await lean_h11.wait_lingering(config)
        assert bytes(busy.streams[gated].data) == b"gated"
        assert busy.terminated is not None
        assert busy.terminated.last_stream_id == 3
        assert idle.terminated is not None
        assert idle.terminated.error_code == NO_ERROR
        assert _lean_connections(config) == []
