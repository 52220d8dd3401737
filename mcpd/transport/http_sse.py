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
from functools import partial
from time import perf_counter
from typing import Any
from urllib.parse import parse_qs

import structlog
import trio

from mcpd.config import ServerSettings
from mcpd.metrics import HTTP_SSE
from mcpd.protocol import headers as hdr
from mcpd.protocol import sse
from mcpd.protocol.errors import (
    InvalidRequest,
    McpError,
    MethodNotAllowed,
    ServerUnavailable,
    SessionNotFound,
    SessionRequired,
)
from mcpd.protocol.handshake import parse_initialize
from mcpd.protocol.jsonrpc import (
    JsonObject,
    Notification,
    Request,
    Response,
    dumps,
    error_message,
    parse_body,
    result_message,
)
from mcpd.protocol.revisions import Era
from mcpd.runtime.calls import Call
from mcpd.runtime.flights import CLIENT_DISCONNECTED, Flight
from mcpd.runtime.mailbox import Mailbox
from mcpd.runtime.sessions import Session
from mcpd.transport import sse_io
from mcpd.transport.asgi_io import ClientGone, Receive, Scope, header_map, read_body, reject
from mcpd.transport.endpoint import Endpoint
from mcpd.transport.exchange import Send, send_response
from mcpd.transport.hypercorn_fixes import send_final_body

log = structlog.get_logger("mcpd.http_sse")

# Messages queued for a connection that is not draining them; beyond it the oldest go.
QUEUE_LIMIT = 1024


class Connection:
    """One ``GET /sse`` connection: the outbound queue, and the session once initialized."""

    def __init__(self) -> None:
        self.id = secrets.token_hex(16)
        self.session: Session | None = None
        self.initialized = trio.Event()
        self._outbox: Mailbox[JsonObject] = Mailbox(QUEUE_LIMIT)

    def post(self, message: JsonObject) -> None:
        self._outbox.put(message)

    async def next(self) -> JsonObject:
        return await self._outbox.get()


class ConnectionReply:
    """Where one request's output goes on this transport: the connection's SSE stream.

    It plays the part an ``Exchange`` plays for a POST on the MCP endpoint.
    """

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def notify(self, message: JsonObject) -> None:
        self._connection.post(message)

    async def respond(self, message: JsonObject, status: int = 200) -> None:
        self._connection.post(message)

    async def skip(self) -> None:
        return  # a cancelled request is not answered


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
        except McpError as exc:
            self._endpoint.metrics.rejected(exc.http_status)
            await reject(send, exc)
            return
        self._endpoint.metrics.stream_opened(HTTP_SSE)
        try:
            await self._hold(scope, receive, send)
        finally:
            self._endpoint.metrics.stream_closed(HTTP_SSE)

    async def _hold(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = Connection()
        self._connections[connection.id] = connection
        root = scope.get("root_path", "")
        endpoint_url = f"{root}{self._settings.messages_path}?session_id={connection.id}"
        try:
            await send({"type": "http.response.start", "status": 200, "headers": list(sse.HEADERS)})
            await sse_io.write(send, sse.event(endpoint_url.encode(), name="endpoint"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sse_io.until_disconnect, receive, nursery.cancel_scope)
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
            nursery.start_soon(self._forward_posted, connection, send)
            while True:
                message = await connection.next()
                await sse_io.write(send, sse.event(dumps(message)))

    async def _forward_posted(self, connection: Connection, send: Send) -> None:
        """List changes and resource updates the session posts (its GET stream's share)."""
        await connection.initialized.wait()
        session = connection.session
        assert session is not None
        while True:
            connection.post(await session.next_posted())

    # -- POST /messages -----------------------------------------------------------------------

    async def serve_messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = header_map(scope)
        try:
            self._endpoint.check_request_origin(headers)
            if scope["method"] != "POST":
                raise MethodNotAllowed("the messages endpoint takes POST")
            connection = self._connection(scope)
            hdr.check_content_type(headers.get("content-type"))
            body = await read_body(receive, headers, self._settings.max_body_bytes)
            messages, is_batch = parse_body(body)
            if is_batch:
                raise InvalidRequest("JSON-RPC batches are not part of protocol 2024-11-05")
            await self._accept(connection, messages[0])
        except McpError as exc:
            self._endpoint.metrics.rejected(exc.http_status)
            await reject(send, exc, exc.request_id)
            return
        except ClientGone:
            return
        await send_response(send, 202, b"Accepted", [(b"content-type", b"text/plain")])

    def _connection(self, scope: Scope) -> Connection:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        ids = query.get("session_id")
        if not ids:
            raise SessionRequired("session_id is required (from the SSE endpoint event)")
        connection = self._connections.get(ids[0])
        if connection is None:
            raise SessionNotFound("unknown session; open a new SSE connection")
        return connection

    async def _accept(self, connection: Connection, message: Any) -> None:
        session = connection.session
        if isinstance(message, Request) and message.method == "initialize":
            if session is not None:
                raise InvalidRequest("this session is already initialized")
            await self._initialize(connection, message)
            return
        if session is None:
            error = InvalidRequest("send initialize first")
            if isinstance(message, Request):
                error.request_id = message.id
            raise error
        session.touch()
        if isinstance(message, Notification):
            self._endpoint.notification(session, message)
        elif isinstance(message, Response):
            session.answer(message)
        elif isinstance(message, Request):
            self._start(connection, session, message)

    async def _initialize(self, connection: Connection, request: Request) -> None:
        started = perf_counter()
        metrics = self._endpoint.metrics
        try:
            init = parse_initialize(request.params)
            session = await self._endpoint.sessions.create(init)
        except McpError as exc:
            metrics.operation(request.method, str(exc.code), perf_counter() - started)
            connection.post(error_message(request.id, exc))
            return
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
        call = Call(
            request, session.version, Era.LEGACY, Flight(request.id), reply, session=session
        )
        tracker = self._endpoint.tracker

        async def answer() -> None:
            try:
                await self._endpoint.answer(call, reply)
            finally:
                tracker.discard(call.flight)

        tracker.add(call.flight)
        try:
            session.start(call.flight, partial(answer))
        except McpError as exc:
            tracker.discard(call.flight)
            connection.post(error_message(request.id, exc))
