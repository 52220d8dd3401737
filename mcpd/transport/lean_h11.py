"""The lean HTTP/1.1 path: hypercorn's trio connections, served without a task per request.

hypercorn 0.18.0 serves each HTTP/1.1 request by spawning a task for the app, passing every
ASGI event through a memory channel, and writing headers, body and end of message as separate
locked, shielded ``send_all`` calls; on trio that machinery costs about as much as the HTTP
work itself. ``install`` replaces ``TCPServer.run`` so that a plain-HTTP/1.1 connection (TCP,
or TLS with ALPN ``http/1.1``) is served by ``LeanConnection``: the connection's own task parses
each request with h11, runs the app, and writes each complete response in one ``sendmsg``
(``mcpd.transport.lean_cycle``, ``mcpd.transport.lean_io``).

HTTP/2 has a lean path of its own (``mcpd.transport.lean_h2``): TLS with ALPN ``h2``, and a
connection that opens with the h2 preface (h2c, prior knowledge) or an ``Upgrade: h2c``
request, handed over with every byte read so far. Everything else is still hypercorn's: its
config, binds, TLS, graceful shutdown, and its own protocols for any other ``Upgrade``
request (WebSocket), handed to hypercorn's ``ProtocolWrapper`` with every byte of that
request. A configured ``read_timeout`` keeps upstream's connection handling entirely.

Kept from hypercorn: keep-alive with ``keep_alive_timeout`` (an idle connection is closed that
long after its last response, and at once when graceful shutdown starts), ``Connection: close``
after ``keep_alive_max_requests``, ``h11_max_incomplete_size``, pipelining, server names, error
responses for malformed requests, 500 when the app fails before responding, "Error in ASGI
Framework" logs, the access log. Added: standard reason phrases, ``Connection: close`` on
responses while the server is shutting down or draining (``begin_drain``) and on streaming
responses to GET (long-lived streams whose connections must not look reusable when they end).
A connection whose last response went out before the drain without saying so is not closed
under its client: it serves one more request (``DRAIN_LINGER``), which says it.
"""

from __future__ import annotations

import weakref
from time import time
from typing import Any, Final, Protocol
from urllib.parse import unquote

import h11
import trio
from hypercorn.config import Config
from hypercorn.events import RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.typing import ConnectionState
from hypercorn.utils import parse_socket_addr

from mcpd.transport import lean_h2
from mcpd.transport.hypercorn_idle import IdleDeadline
from mcpd.transport.lean_app import AppCaller
from mcpd.transport.lean_cycle import DETACH, Cycle, State, response
from mcpd.transport.lean_io import ConnectionIO, Gone

_UPSTREAM_RUN: Final = TCPServer.run
# Draining, a connection whose last response did not say ``Connection: close`` (it was sent
# before the drain) may already carry its client's next request: it is served, with
# ``Connection: close``, if it comes within this long (at most keep_alive_timeout). Closing
# such a connection at once would lose the request: the keep-alive race, measured on 8
# busy httpx clients at a restart, lost requests on 3 to 5 of their 8 connections.
DRAIN_LINGER: Final = 1.0
LINGER_POLL: Final = 0.002
_ASGI: Final = {"spec_version": "2.1", "version": "3.0"}
_ERROR_HEADERS: Final = [(b"content-length", b"0"), (b"connection", b"close")]

_settings = {"write_timeout": 30.0}


class Lingering(Protocol):
    """A connection the drain waits for: done once it has told its client it closes."""

    told_close: bool


class Drain:
    """Per server config: whether the daemon is draining, the idle deadlines of its
    connections (to close the idle ones), and the connections themselves (to know which still
    owe their client an answer)."""

    __slots__ = ("connections", "draining", "idle")

    def __init__(self) -> None:
        self.draining = False
        self.idle: weakref.WeakSet[IdleDeadline] = weakref.WeakSet()
        self.connections: weakref.WeakSet[Lingering] = weakref.WeakSet()


_DRAINS: weakref.WeakKeyDictionary[Config, Drain] = weakref.WeakKeyDictionary()


def drain_state(config: Config) -> Drain:
    drain = _DRAINS.get(config)
    if drain is None:
        drain = _DRAINS[config] = Drain()
    return drain


def begin_drain(config: Config) -> None:
    """From now on, lean connections served with ``config`` answer with ``Connection: close``
    and close once idle; idle ones close at once. The listener keeps accepting."""
    drain = drain_state(config)
    drain.draining = True
    for idle in list(drain.idle):
        idle.terminate()


async def wait_lingering(config: Config) -> None:
    """Return once no connection drained by ``begin_drain`` still owes its client an answer
    (``DRAIN_LINGER`` from now at most): one whose last response did not say
    ``Connection: close`` may carry a request its client sent without knowing of the drain,
    or be about to (one that has just answered and is not idle yet, one reading or serving
    its next request); it is done once it has said ``close`` or is gone, which an idle one is
    after its linger. Polled: this runs once, at the end of a drain."""
    drain = drain_state(config)
    if not drain.draining:
        return
    give_up = trio.current_time() + DRAIN_LINGER
    while any(not conn.told_close for conn in list(drain.connections)):
        if trio.current_time() >= give_up:
            return
        await trio.sleep(LINGER_POLL)


def install(*, write_timeout: float) -> None:
    """Serve hypercorn's HTTP/1.1 connections on the lean path (idempotent)."""
    _settings["write_timeout"] = write_timeout
    TCPServer.run = _run  # type: ignore[method-assign]


async def _run(self: TCPServer) -> None:
    if self.config.read_timeout is not None:
        await _UPSTREAM_RUN(self)
        return
    detached = False
    try:
        opened = await _open(self)
        if opened is None:
            return
        ssl, alpn = opened
        sock = self.stream.transport_stream.socket if ssl else self.stream.socket
        client = parse_socket_addr(sock.family, sock.getpeername())
        server = parse_socket_addr(sock.family, sock.getsockname())
        if alpn == "h2":
            await _serve_h2(self, ssl, client=client, server=server, initial=b"")
            return
        lean = LeanConnection(self, ssl=ssl, client=client, address=server)
        await lean.serve()
        if lean.detached:
            # Its response goes on elsewhere (Cycle.detach): no EOF, only our descriptor closes.
            detached = True
            await self.stream.aclose()
            return
        if lean.handover is not None and lean_h2.takes(lean.handover):  # prior knowledge, h2c
            await _serve_h2(self, ssl, client=client, server=server, initial=lean.handover)
        elif lean.handover is not None:  # another upgrade (WebSocket, say): hypercorn's
            await _serve_hypercorn(
                self, ssl, "http/1.1", client=client, server=server, initial=lean.handover
            )
    except OSError:
        pass
    finally:
        if not detached:
            await self._close()


async def _open(self: TCPServer) -> tuple[bool, str] | None:
    """TLS handshake if it is TLS: (ssl, ALPN protocol), or None if the handshake failed."""
    if not isinstance(self.stream, trio.SSLStream):
        return False, "http/1.1"
    try:
        with trio.fail_after(self.config.ssl_handshake_timeout):
            await self.stream.do_handshake()
    except (trio.BrokenResourceError, trio.TooSlowError):
        return None
    return True, self.stream.selected_alpn_protocol() or "http/1.1"


async def _serve_h2(
    self: TCPServer, ssl: bool, *, client: Any, server: Any, initial: bytes
) -> None:
    """The lean HTTP/2 path (``mcpd.transport.lean_h2``), starting with ``initial`` bytes."""
    await lean_h2.serve(
        self,
        ssl,
        client=client,
        address=server,
        initial=initial,
        drain=drain_state(self.config),
        write_timeout=_settings["write_timeout"],
        linger=min(DRAIN_LINGER, self.config.keep_alive_timeout),
    )


async def _serve_hypercorn(
    self: TCPServer, ssl: bool, alpn: str, *, client: Any, server: Any, initial: bytes
) -> None:
    """hypercorn's own handling of the connection, starting with ``initial`` bytes."""
    async with TaskGroup() as task_group:
        self._task_group = task_group
        self.protocol = ProtocolWrapper(
            self.app,
            self.config,
            self.context,
            task_group,
            ConnectionState(self.state),
            ssl,
            client,
            server,
            self.protocol_send,
            alpn,
        )
        await self.protocol.initiate()
        await self.idle_task.restart(self._task_group, self._idle_timeout)
        if initial:
            # Fed by the reader once its idle handling is in place (hypercorn_idle).
            self._mcpd_initial = RawData(initial)  # type: ignore[attr-defined]
        await self._read_data()


class LeanConnection:
    """One HTTP/1.1 connection served in its own task, request after request."""

    def __init__(self, server: TCPServer, *, ssl: bool, client: Any, address: Any) -> None:
        config: Config = server.config
        self.server = server
        self.config = config
        self.io = ConnectionIO(server.stream, _settings["write_timeout"])
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=config.h11_max_incomplete_size
        )
        self.max_buffered: int = config.h11_max_incomplete_size
        self._call_app = AppCaller(server.app, config)
        self._lock = trio.Lock()
        self._terminated: Any = server.context.terminated
        self._drain = drain_state(config)
        self._idle = IdleDeadline(
            config.keep_alive_timeout, linger=min(DRAIN_LINGER, config.keep_alive_timeout)
        )
        self.told_close = False  # a response said Connection: close: no request follows
        self._life: trio.CancelScope | None = None
        self._requests = 0
        self._scheme = "https" if ssl else "http"
        self._client = client
        self._server_address = address
        self._state = ConnectionState(server.state)
        self._date: tuple[int, list[tuple[bytes, bytes]]] = (0, [])
        # Every byte of a request hypercorn must serve (an upgrade, the h2 preface).
        self.handover: bytes | None = None
        self.detached = False  # a response was detached (Cycle.detach): the socket is not ours

    # -- the connection ---------------------------------------------------------------------

    async def serve(self) -> None:
        idle_sets = [self._drain.idle, getattr(self._terminated, "idle", None)]
        for idle in idle_sets:
            if idle is not None:
                idle.add(self._idle)
        self._drain.connections.add(self)
        try:
            with trio.CancelScope() as self._life:
                self._idle.scope = self._life
                while await self._cycle():
                    pass
        finally:
            self._drain.connections.discard(self)
            self._idle.scope = None
            for idle in idle_sets:
                if idle is not None:
                    idle.discard(self._idle)

    def closing(self) -> bool:
        """Whether this response should end the connection (shutdown, drain, request cap)."""
        return (
            self._terminated.is_set()
            or self._drain.draining
            or self._requests >= self.config.keep_alive_max_requests
        )

    async def _cycle(self) -> bool:
        """Serve one request; False once the connection is done (or handed over)."""
        raw: list[bytes] = [self.h11.trailing_data[0]]
        request = await self._next_request(raw)
        if request is None:
            return False
        if request.method == b"PRI" or any(name == b"upgrade" for name, _ in request.headers):
            self.handover = b"".join(raw)
            return False
        self._requests += 1
        if self.server.context.max_requests is not None:
            await self.server.context.mark_request()
        if self.config.server_names and not _valid_server_name(self.config, request):
            await self.refuse(404)
            return False
        cycle = Cycle(self, self._scope(request), wants_close=self.closing())
        if request.method == b"GET" and self.io.raw_socket is not None:
            cycle.scope["extensions"][DETACH] = cycle.detach  # a stream someone may carry on
        await self._run_app(cycle)
        return self._recycle(cycle)

    async def _next_request(self, raw: list[bytes]) -> h11.Request | None:
        """The next request, after one scheduler pass at least (``_receive_idle``, or here for
        a request pipelined behind the last one): however fast a client sends, each
        connection is served one request per pass, so the others are served in between."""
        passed = self._requests == 0  # a new connection's task has just started
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as error:
                await self.refuse(error.error_status_hint)
                return None
            if type(event) is h11.Request:
                if not passed:
                    await trio.lowlevel.checkpoint()
                return self._busy(event)
            if event is not h11.NEED_DATA:
                return None  # the client closed the connection between requests
            passed = True
            data = await self._receive_idle()
            if data is None:
                return None
            raw.append(data)
            self.h11.receive_data(data)

    async def _receive_idle(self) -> bytes | None:
        """The next bytes of a request, waiting at most until the idle deadline."""
        try:
            # Either way one scheduler pass comes first: a client that answers faster than
            # we loop must not keep the other connections waiting.
            data = self.io.try_receive()
            if data is not None:
                await trio.lowlevel.checkpoint()  # a request already there
            else:
                # Shutting down, a connection that has served requests is closed once idle;
                # a fresh one (accepted while draining) gets to send its request.
                closing = self._terminated.is_set() or self._drain.draining
                self._idle.arm(now=closing and self._requests > 0)
                data = await self.io.receive_later()
        except Gone:
            return None
        return data

    def _busy(self, request: h11.Request) -> h11.Request | None:
        if self._idle.armed:
            self._idle.disarm()
            if self._life is not None and self._life.cancel_called:
                return None  # the idle deadline passed just as the request came in
        return request

    def _scope(self, request: h11.Request) -> dict[str, Any]:
        path, _, query_string = request.target.partition(b"?")
        headers = (
            request.headers.raw_items()
            if self.config.h11_pass_raw_headers
            else list(request.headers)
        )
        return {
            "type": "http",
            "http_version": request.http_version.decode(),
            "asgi": _ASGI,
            "method": request.method.decode("ascii").upper(),
            "scheme": self._scheme,
            "path": unquote(path.decode("ascii")),
            "raw_path": path,
            "query_string": query_string,
            "root_path": self.config.root_path,
            "headers": headers,
            "client": self._client,
            "server": self._server_address,
            "state": self._state.copy(),
            "extensions": {},
        }

    async def _run_app(self, cycle: Cycle) -> None:
        await self._call_app(cycle.scope, cycle.receive, cycle.send)
        if cycle.state is State.REQUEST:
            await self.refuse(cycle.error_status or 500)

    def _recycle(self, cycle: Cycle) -> bool:
        # Not ``closing()``: a drain that began after the response went out without
        # ``Connection: close`` still owes the client's next request an answer (DRAIN_LINGER).
        if self.io.broken or cycle.state is not State.CLOSED or self.told_close:
            return False
        if self.h11.our_state is not h11.DONE or not self._request_read():
            return False  # Connection: close, HTTP/1.0, or a body still on its way
        self.h11.start_next_cycle()
        return True

    def _request_read(self) -> bool:
        """Whether the request is read to its end, discarding what the app left unread (a GET's
        empty body, say) as far as it has arrived."""
        try:
            while self.h11.their_state is h11.SEND_BODY:
                if self.h11.next_event() is h11.NEED_DATA:
                    return False
        except h11.RemoteProtocolError:
            return False
        return self.h11.their_state is h11.DONE

    # -- writing ----------------------------------------------------------------------------

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """hypercorn's own response headers (date, server), made once a second."""
        second = int(time())
        if self._date[0] != second:
            self._date = (second, self.config.response_headers("h11"))
        return self._date[1]

    async def write_events(self, cycle: Cycle, events: list[h11.Event]) -> None:
        """Write the cycle's held head (if any) and ``events`` as one write, in order."""
        await _acquire(self._lock)
        try:
            head = cycle.take_head()
            pieces = self._serialize([head, *events] if head is not None else events)
            if pieces and not await self.io.write(pieces):
                cycle.connection_lost()
        finally:
            self._lock.release()

    async def write_event(self, event: h11.Event) -> None:
        await _acquire(self._lock)
        try:
            await self.io.write(self._serialize([event]))
        finally:
            self._lock.release()

    def _serialize(self, events: list[h11.Event]) -> list[bytes]:
        """h11's bytes for ``events``: a body passes through uncopied, the rest is joined
        (a head is many small pieces), so one write takes few buffers."""
        pieces: list[bytes] = []
        for event in events:
            out = self.h11.send_with_data_passthrough(event) or []
            if type(event) is h11.Data:
                pieces.extend(piece for piece in out if piece)
            elif joined := b"".join(out):
                pieces.append(joined)
        return pieces

    async def refuse(self, status: int) -> None:
        """An error response that ends the connection (malformed request, app failure)."""
        if self.h11.our_state not in {h11.IDLE, h11.SEND_RESPONSE} or self.io.broken:
            return
        head = response(status, [*_ERROR_HEADERS, *self.response_headers()])
        try:
            pieces = self._serialize([head, h11.EndOfMessage()])
        except h11.LocalProtocolError:
            return
        await _acquire(self._lock)
        try:
            await self.io.write(pieces)
        finally:
            self._lock.release()

    def log_access(self, cycle: Cycle, status: int, elapsed: float) -> None:
        log: Any = self.config.log
        if log.access_logger is not None:
            summary = {"status": status, "headers": []}
            log.access_logger.info(log.access_log_format, log.atoms(cycle.scope, summary, elapsed))


def _valid_server_name(config: Config, request: h11.Request) -> bool:
    """hypercorn's server-name check, on an h11 request."""
    host = next((value for name, value in request.headers if name == b"host"), b"")
    return host.decode() in config.server_names


async def _acquire(lock: trio.Lock) -> None:
    """Take ``lock`` without a scheduler pass when it is free (the usual case)."""
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        await lock.acquire()
