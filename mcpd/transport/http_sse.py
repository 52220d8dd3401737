"""The 2024-11-05 HTTP+SSE transport, beside the MCP endpoint, for clients that still use it.

``GET /sse`` opens the connection: its first event (``endpoint``) names the URL to POST
messages to, ``/messages?session_id=<id>``. Every message from the server (responses too)
travels on that one SSE connection as a ``message`` event; each POST is answered ``202``.
The session is the connection: when it closes, the session ends and its requests are
cancelled. Requests run in the same session machinery as the MCP endpoint's.

Under systemd the connection survives a restart (``mcpd.transport.sse_keep``): during the
drain it stays open and carries its requests' answers and terminal errors; at the end of the
drain (``park_all``) it is handed to the fd store with its session's record, and the next
process takes it back (``adopt``) and goes on writing events on it.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Iterable
from functools import partial
from time import perf_counter
from typing import Final
from urllib.parse import parse_qs

import orjson
import structlog
import trio

from mcpd.auth.authenticator import Unauthenticated
from mcpd.auth.principal import Principal
from mcpd.config import ServerSettings
from mcpd.metrics import HTTP_SSE
from mcpd.persist.records import ConnectionRecord
from mcpd.protocol import headers as hdr
from mcpd.protocol import sse
from mcpd.protocol.errors import (
    InvalidRequest,
    McpError,
    MethodNotAllowed,
    RequestTimeout,
    ServerUnavailable,
    SessionNotFound,
    SessionRequired,
)
from mcpd.protocol.handshake import parse_initialize
from mcpd.protocol.jsonrpc import (
    JsonObject,
    Message,
    Notification,
    Request,
    Response,
    dumps,
    error_message,
    parse_body,
    result_message,
)
from mcpd.protocol.revisions import Era
from mcpd.runtime.access import owner_of
from mcpd.runtime.calls import Call
from mcpd.runtime.flights import CLIENT_DISCONNECTED, Flight
from mcpd.runtime.sessions import Session
from mcpd.transport import sse_io
from mcpd.transport.asgi_io import (
    CLOSE,
    ClientGone,
    Receive,
    Scope,
    header_map,
    read_body,
    reject,
)
from mcpd.transport.endpoint import Endpoint
from mcpd.transport.exchange import Send, send_response
from mcpd.transport.refusals import reject_unauthenticated
from mcpd.transport.sse_keep import FdStore
from mcpd.transport.sse_wire import AsgiWire, SocketWire, Wire

log = structlog.get_logger("mcpd.http_sse")

# At the end of a drain: how long a kept connection may take to write what it still has
# queued before it is handed over (a connection that has not is closed instead), and how
# long the whole hand-over may take.
FLUSH_GRACE: Final = 0.5
PARK_GRACE: Final = 1.0


class Connection:
    """One ``GET /sse`` connection: its queue of encoded events, and the session once
    initialized.

    The queue never drops an event (answers must reach their client), but it is bounded in
    bytes: once ``buffer_bytes`` are waiting, the client's POSTs wait for room
    (``wait_room``), so a client that reads slowly also sends slowly. Answers to requests
    already accepted may still be queued beyond the bound; there are at most
    ``max_requests_per_session`` of those. An event leaves the queue only once written, so a
    writer cancelled mid-way (at a hand-over) loses none.
    """

    def __init__(self, buffer_bytes: int, owner: str | None, connection_id: str = "") -> None:
        # As strong as Mcp-Session-Id: 256 bits from the CSPRNG (it is the session's address).
        self.id = connection_id or secrets.token_urlsafe(32)
        self.owner = owner  # whose it is (owner_of): another principal's POSTs find nothing
        self.session: Session | None = None
        self.initialized = trio.Event()
        self.scope: trio.CancelScope | None = None  # the connection's own, once streaming
        self.park = trio.Event()  # set at the end of a drain: hand the connection over
        self.settled = trio.Event()  # it has been handed over, or has ended
        self.handed = False  # handed over: what is still queued goes with the session
        self._queue: deque[bytes] = deque()
        self._bytes = 0
        self._limit = buffer_bytes
        self._ready: trio.Event | None = None  # the writer waits for events
        self._room: trio.Event | None = None  # POSTs wait for the queue to drain
        self._empty: trio.Event | None = None  # a hand-over waits for the queue to empty

    def post(self, message: JsonObject) -> None:
        """Queue a message (encoded now: ``Unencodable`` reaches whoever sent it)."""
        self.queue_encoded(dumps(message))

    def queue_encoded(self, data: bytes) -> None:
        """Queue an encoded message as the stream's next event."""
        if self.handed and self.session is not None:
            # An answer finished after the hand-over: the next process sends it.
            self.session.post(orjson.loads(data))
            return
        event = sse.event(data)
        self._queue.append(event)
        self._bytes += len(event)
        if self._ready is not None:
            self._ready.set()

    async def next_event(self) -> bytes:
        """The next event to write (left queued until ``written``); waits until there is one."""
        while not self._queue:
            self._ready = trio.Event()
            await self._ready.wait()
        return self._queue[0]

    def written(self) -> None:
        """The event ``next_event`` gave has been written."""
        data = self._queue.popleft()
        self._bytes -= len(data)
        if self._room is not None and self._bytes < self._limit:
            self._room.set()
            self._room = None
        if self._empty is not None and not self._queue:
            self._empty.set()

    async def wait_empty(self, patience: float) -> bool:
        """Wait until everything queued is written; False if it was not within ``patience``."""
        with trio.move_on_after(patience):
            while self._queue:
                self._empty = trio.Event()
                await self._empty.wait()
            return True
        return False

    async def wait_room(self, patience: float) -> bool:
        """Wait until the queue is below its bound; False if it stayed full ``patience``
        seconds (the client is not reading)."""
        with trio.move_on_after(patience):
            while self._bytes >= self._limit:
                if self._room is None:
                    self._room = trio.Event()
                await self._room.wait()
            return True
        return False

    def end(self, reason: str) -> None:
        """Close the SSE connection (and so the session) from the server's side."""
        log.warning("http_sse.connection_ended", reason=reason)
        if self.scope is not None:
            self.scope.cancel(reason=reason)


class ConnectionReply:
    """Where one request's output goes on this transport: the connection's SSE stream.

    It plays the part an ``Exchange`` plays for a POST on the MCP endpoint.
    """

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def notify(self, message: JsonObject) -> None:
        self._connection.post(message)

    async def respond(
        self, data: bytes, status: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        self._connection.queue_encoded(data)  # on the stream: no status or headers apply

    async def skip(self) -> None:
        return  # a cancelled request is not answered


def _nothing() -> None:
    return


class HttpSse:
    """Serves ``GET <sse_path>`` and ``POST <messages_path>``; keeps connections across a
    restart when given an enabled ``FdStore`` (``keep``)."""

    def __init__(
        self, settings: ServerSettings, endpoint: Endpoint, keep: FdStore | None = None
    ) -> None:
        self._settings = settings
        self._endpoint = endpoint
        self._connections: dict[str, Connection] = {}
        self._keep = keep if keep is not None and keep.enabled else None
        self._nursery: trio.Nursery | None = None  # where taken-over connections run

    def __len__(self) -> int:
        return len(self._connections)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the connections taken over from the last process, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def serve_sse(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = header_map(scope)
        try:
            self._endpoint.check_request_origin(headers)
            if scope["method"] != "GET":
                raise MethodNotAllowed("the SSE endpoint takes GET")
            hdr.check_get_accept(headers.get("accept"))
            if not self._endpoint.accepting:
                raise ServerUnavailable("the daemon is shutting down")
            principal = await self._endpoint.access.identify(scope, headers)
        except Unauthenticated as refusal:
            self._endpoint.metrics.rejected(refusal.status)
            await reject_unauthenticated(send, refusal)
            return
        except McpError as exc:
            self._endpoint.metrics.rejected(exc.http_status)
            await reject(send, exc)
            return
        connection = Connection(self._settings.stream_buffer_bytes, owner_of(principal))
        root = scope.get("root_path", "")
        endpoint_url = f"{root}{self._settings.messages_path}?session_id={connection.id}"
        await send({"type": "http.response.start", "status": 200, "headers": list(sse.HEADERS)})
        await sse_io.write(send, sse.event(endpoint_url.encode(), name="endpoint"))
        await self._hold(connection, AsgiWire(scope, receive, send))

    async def _hold(self, connection: Connection, wire: Wire) -> None:
        """Stream the connection's events until it ends or is handed over."""
        self._connections[connection.id] = connection
        self._endpoint.metrics.stream_opened(HTTP_SSE)
        kept = False
        try:
            if await self._stream(connection, wire):
                kept = self._hand_over(connection, wire)
            if not kept:
                await wire.finish()
        finally:
            self._endpoint.metrics.stream_closed(HTTP_SSE)
            del self._connections[connection.id]
            session = connection.session
            if session is not None and not kept:
                session.streams -= 1
                # The session is the connection: closing it cancels whatever still runs.
                session.close(CLIENT_DISCONNECTED)
            connection.settled.set()

    async def _stream(self, connection: Connection, wire: Wire) -> bool:
        """Write events until the client leaves or the daemon stops; True if the connection
        is then to be handed over (everything queued written, the client still there)."""
        parked = False  # stays so if the client leaves first (the watcher cancels all this)
        async with trio.open_nursery() as nursery:
            connection.scope = nursery.cancel_scope
            nursery.start_soon(wire.watch, nursery.cancel_scope)
            nursery.start_soon(self._forward, connection, wire)
            nursery.start_soon(_keep_alive, wire, self._settings.sse_keepalive)
            await self._endpoint.closing.wait()
            if self._keep is not None and connection.session is not None:
                # Kept open through the drain (its requests' answers and terminal errors
                # travel on it) until the daemon hands the sessions over.
                await connection.park.wait()
                parked = await connection.wait_empty(FLUSH_GRACE)
            nursery.cancel_scope.cancel(reason="daemon shutting down")
        return parked

    def _hand_over(self, connection: Connection, wire: Wire) -> bool:
        """Give the connection to the fd store; True once its session's record says where."""
        session, keep = connection.session, self._keep
        assert session is not None
        assert keep is not None
        fd = wire.detach()
        name = None if fd is None else keep.put(fd)
        if name is None:
            return False
        session.connection = ConnectionRecord(connection.id, name)
        connection.handed = True
        return True

    async def park_all(self) -> int:
        """At the end of the drain: hand every initialized connection over (see the module),
        end the others; how many were kept. Their sessions stay open for the state file."""
        if self._keep is None:
            return 0
        waiting = list(self._connections.values())
        for connection in waiting:
            connection.park.set()
        with trio.move_on_after(PARK_GRACE):
            for connection in waiting:
                await connection.settled.wait()
        kept = sum(1 for c in waiting if c.session is not None and c.session.connection is not None)
        log.info("http_sse.connections_kept", kept=kept, of_connections=len(waiting))
        return kept

    # -- taken over from the last process ---------------------------------------------------

    def holds(self, record: ConnectionRecord) -> bool:
        """Whether the connection ``record`` names came back with the fd store."""
        return self._keep is not None and self._keep.holds(record.fd_name)

    def adopt(self, session: Session, record: ConnectionRecord) -> bool:
        """Go on serving ``session`` on its kept connection; False if it did not come back."""
        fd = None if self._keep is None else self._keep.take(record.fd_name)
        if fd is None or self._nursery is None:
            return False
        connection = Connection(self._settings.stream_buffer_bytes, session.principal, record.id)
        session.connection = None  # kept again only if handed over again
        session.streams += 1
        connection.session = session
        connection.initialized.set()
        wire = SocketWire(fd, self._settings.write_timeout)
        self._nursery.start_soon(self._hold_adopted, connection, wire)
        return True

    async def _hold_adopted(self, connection: Connection, wire: SocketWire) -> None:
        try:
            await self._hold(connection, wire)
        finally:
            await wire.close()

    def release_unclaimed(self) -> int:
        """Close the kept connections no restored session took (see ``FdStore``)."""
        return 0 if self._keep is None else self._keep.release_rest()

    async def _forward(self, connection: Connection, wire: Wire) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._forward_posted, connection)
            while True:
                await wire.write(await connection.next_event())
                connection.written()

    async def _forward_posted(self, connection: Connection) -> None:
        """List changes and resource updates the session posts (its GET stream's share)."""
        await connection.initialized.wait()
        session = connection.session
        assert session is not None
        while True:
            connection.post(await session.next_posted())

    # -- POST /messages -----------------------------------------------------------------------

    async def serve_messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Take one message. Every answer, errors included, goes on the connection's SSE
        stream after the 202: clients of this transport treat a non-2xx POST as a dead
        transport. Only what cannot be answered there (no such connection, a body that is not
        one JSON-RPC message) is refused in HTTP."""
        settings = self._settings
        headers = header_map(scope)
        try:
            self._endpoint.check_request_origin(headers)
            if scope["method"] != "POST":
                raise MethodNotAllowed("the messages endpoint takes POST")
            principal = await self._endpoint.access.identify(scope, headers)
            connection = self._connection(scope, principal)
            hdr.check_content_type(headers.get("content-type"))
            body = await read_body(receive, headers, settings.max_body_bytes, settings.body_timeout)
            messages, is_batch = parse_body(body)
            if is_batch:
                raise InvalidRequest("JSON-RPC batches are not part of protocol 2024-11-05")
            if not await connection.wait_room(settings.write_timeout):
                connection.end("the client is not reading its event stream")
                raise ServerUnavailable("this connection's event stream is not being read")
        except Unauthenticated as refusal:
            self._endpoint.metrics.rejected(refusal.status)
            await reject_unauthenticated(send, refusal)
            return
        except McpError as exc:
            self._endpoint.metrics.rejected(exc.http_status)
            extra = CLOSE if isinstance(exc, RequestTimeout) else ()
            await reject(send, exc, exc.request_id, extra)
            return
        except ClientGone:
            return
        await self._accept(connection, messages[0], principal)
        await send_response(send, 202, b"Accepted", [(b"content-type", b"text/plain")])

    def _connection(self, scope: Scope, principal: Principal) -> Connection:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        ids = query.get("session_id")
        if not ids:
            raise SessionRequired("session_id is required (from the SSE endpoint event)")
        connection = self._connections.get(ids[0])
        if connection is None or connection.owner != owner_of(principal):
            raise SessionNotFound("unknown session; open a new SSE connection")
        return connection

    async def _accept(self, connection: Connection, message: Message, principal: Principal) -> None:
        try:
            await self._take(connection, message, principal)
        except McpError as exc:
            if isinstance(message, Request):  # notifications and responses get no answer
                connection.queue_encoded(dumps(error_message(message.id, exc)))

    async def _take(self, connection: Connection, message: Message, principal: Principal) -> None:
        """Run ``message`` for ``principal`` (who sent it: the connection's owner)."""
        session = connection.session
        if isinstance(message, Request):
            # Over a limit, or not authorized: answered on the stream, like every error here.
            self._endpoint.admit(principal, message)
        if isinstance(message, Request) and message.method == "initialize":
            if session is not None:
                raise InvalidRequest("this session is already initialized")
            await self._initialize(connection, message, principal)
            return
        if session is None:
            # server/discover from clients that probe for 2026 first lands here too: the
            # error tells them to fall back to initialize.
            raise InvalidRequest("send initialize first")
        session.touch()
        if isinstance(message, Notification):
            self._endpoint.notification(session, message)
        elif isinstance(message, Response):
            session.answer(message)
        else:
            self._start(connection, session, message, principal)

    async def _initialize(
        self, connection: Connection, request: Request, principal: Principal
    ) -> None:
        started = perf_counter()
        metrics = self._endpoint.metrics
        try:
            init = parse_initialize(request.params)
            session = await self._endpoint.sessions.create(
                init, owner_of(principal), principal.limit_key
            )
        except McpError as exc:
            metrics.operation(request.method, str(exc.code), perf_counter() - started)
            raise
        metrics.operation(request.method, "", perf_counter() - started)
        session.streams += 1  # the connection keeps the session from idling out
        connection.session = session
        connection.initialized.set()
        result = self._endpoint.dispatcher.initialize_result(session.version)
        connection.post(result_message(request.id, result))
        log.info(
            "session.created",
            session=session.log_id,
            protocol_version=session.version,
            client=init.client_info.get("name"),
            transport="http+sse",
        )

    def _start(
        self, connection: Connection, session: Session, request: Request, principal: Principal
    ) -> None:
        reply = ConnectionReply(connection)
        flight = Flight(request.id)
        call = Call(
            request,
            session.version,
            Era.LEGACY,
            flight,
            reply,
            session=session,
            principal=principal,
        )
        tracker = self._endpoint.tracker

        async def answer() -> None:
            try:
                await self._endpoint.answer(call, reply)
            finally:
                if not flight.abandoned:
                    tracker.discard(flight)
                flight.abandon = None  # it refers back to the call: no cycle left behind

        flight.abandon = partial(self._endpoint.abandon, call, reply, _nothing)
        tracker.add(call.flight)
        try:
            session.start(call.flight, answer)
        except McpError:
            tracker.discard(call.flight)
            raise


async def _keep_alive(wire: Wire, interval: float) -> None:
    """A comment every ``interval`` seconds, so proxies and clients keep the stream open."""
    while True:
        await trio.sleep(interval)
        await wire.write(sse.KEEPALIVE)
