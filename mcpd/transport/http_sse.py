"""The 2024-11-05 HTTP+SSE transport, beside the MCP endpoint, for clients that still use it.

``GET /sse`` opens the connection: its first event (``endpoint``) names the URL to POST
messages to, ``/messages?session_id=<id>``. Every message from the server (responses too)
travels on that one SSE connection as a ``message`` event; each POST is answered ``202``.
The session is the connection: when it closes, the session ends and its requests are
cancelled. Requests run in the same session machinery as the MCP endpoint's.
"""

from __future__ import annotations

import contextlib
import secrets
from collections import deque
from collections.abc import Iterable
from functools import partial
from time import perf_counter
from urllib.parse import parse_qs

import structlog
import trio

from mcpd.auth.authenticator import Unauthenticated
from mcpd.auth.principal import Principal
from mcpd.config import ServerSettings
from mcpd.metrics import HTTP_SSE
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
from mcpd.transport.hypercorn_fixes import send_final_body
from mcpd.transport.refusals import reject_unauthenticated

log = structlog.get_logger("mcpd.http_sse")


class Connection:
    """One ``GET /sse`` connection: its queue of encoded events, and the session once
    initialized.

    The queue never drops an event (answers must reach their client), but it is bounded in
    bytes: once ``buffer_bytes`` are waiting, the client's POSTs wait for room
    (``wait_room``), so a client that reads slowly also sends slowly. Answers to requests
    already accepted may still be queued beyond the bound; there are at most
    ``max_requests_per_session`` of those.
    """

    def __init__(self, buffer_bytes: int, principal: Principal) -> None:
        # As strong as Mcp-Session-Id: 256 bits from the CSPRNG (it is the session's address).
        self.id = secrets.token_urlsafe(32)
        self.principal = principal  # whose it is: another principal's POSTs find nothing
        self.session: Session | None = None
        self.initialized = trio.Event()
        self.scope: trio.CancelScope | None = None  # the connection's own, once streaming
        self._queue: deque[bytes] = deque()
        self._bytes = 0
        self._limit = buffer_bytes
        self._ready: trio.Event | None = None  # the writer waits for events
        self._room: trio.Event | None = None  # POSTs wait for the queue to drain

    def post(self, message: JsonObject) -> None:
        """Queue a message (encoded now: ``Unencodable`` reaches whoever sent it)."""
        self.queue_encoded(dumps(message))

    def queue_encoded(self, data: bytes) -> None:
        """Queue an encoded message as the stream's next event."""
        event = sse.event(data)
        self._queue.append(event)
        self._bytes += len(event)
        if self._ready is not None:
            self._ready.set()

    async def take(self) -> bytes:
        """The next event to write; waits until there is one."""
        while not self._queue:
            self._ready = trio.Event()
            await self._ready.wait()
        data = self._queue.popleft()
        self._bytes -= len(data)
        if self._room is not None and self._bytes < self._limit:
            self._room.set()
            self._room = None
        return data

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
    """Serves ``GET <sse_path>`` and ``POST <messages_path>``."""

    def __init__(self, settings: ServerSettings, endpoint: Endpoint) -> None:
        self._settings = settings
        self._endpoint = endpoint
        self._connections: dict[str, Connection] = {}

    def __len__(self) -> int:
        return len(self._connections)

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
        self._endpoint.metrics.stream_opened(HTTP_SSE)
        try:
            await self._hold(scope, receive, send, principal)
        finally:
            self._endpoint.metrics.stream_closed(HTTP_SSE)

    async def _hold(self, scope: Scope, receive: Receive, send: Send, principal: Principal) -> None:
        connection = Connection(self._settings.stream_buffer_bytes, principal)
        self._connections[connection.id] = connection
        root = scope.get("root_path", "")
        endpoint_url = f"{root}{self._settings.messages_path}?session_id={connection.id}"
        try:
            await send({"type": "http.response.start", "status": 200, "headers": list(sse.HEADERS)})
            await sse_io.write(send, sse.event(endpoint_url.encode(), name="endpoint"))
            async with trio.open_nursery() as nursery:
                connection.scope = nursery.cancel_scope
                nursery.start_soon(sse_io.until_disconnect, receive, nursery.cancel_scope, send)
                nursery.start_soon(self._forward, connection, send)
                nursery.start_soon(sse_io.keep_alive, send, self._settings.sse_keepalive)
                await self._endpoint.closing.wait()
                nursery.cancel_scope.cancel(reason="daemon shutting down")
            with contextlib.suppress(Exception):
                await send_final_body(send, b"")
        finally:
            del self._connections[connection.id]
            session = connection.session
            if session is not None:
                session.streams -= 1
                # The session is the connection: closing it cancels whatever still runs.
                session.close(CLIENT_DISCONNECTED)

    async def _forward(self, connection: Connection, send: Send) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._forward_posted, connection)
            while True:
                await sse_io.write(send, await connection.take())

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
        await self._accept(connection, messages[0])
        await send_response(send, 202, b"Accepted", [(b"content-type", b"text/plain")])

    def _connection(self, scope: Scope, principal: Principal) -> Connection:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        ids = query.get("session_id")
        if not ids:
            raise SessionRequired("session_id is required (from the SSE endpoint event)")
        connection = self._connections.get(ids[0])
        if connection is None or owner_of(connection.principal) != owner_of(principal):
            raise SessionNotFound("unknown session; open a new SSE connection")
        return connection

    async def _accept(self, connection: Connection, message: Message) -> None:
        try:
            await self._take(connection, message)
        except McpError as exc:
            if isinstance(message, Request):  # notifications and responses get no answer
                connection.queue_encoded(dumps(error_message(message.id, exc)))

    async def _take(self, connection: Connection, message: Message) -> None:
        session = connection.session
        if isinstance(message, Request):
            # Over a limit, or not authorized: answered on the stream, like every error here.
            self._endpoint.admit(connection.principal, message)
        if isinstance(message, Request) and message.method == "initialize":
            if session is not None:
                raise InvalidRequest("this session is already initialized")
            await self._initialize(connection, message)
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
            self._start(connection, session, message)

    async def _initialize(self, connection: Connection, request: Request) -> None:
        started = perf_counter()
        metrics = self._endpoint.metrics
        principal = connection.principal
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

    def _start(self, connection: Connection, session: Session, request: Request) -> None:
        reply = ConnectionReply(connection)
        flight = Flight(request.id)
        call = Call(
            request,
            session.version,
            Era.LEGACY,
            flight,
            reply,
            session=session,
            principal=connection.principal,
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
