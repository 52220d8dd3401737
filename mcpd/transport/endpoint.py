"""The MCP endpoint: one path, both eras.

POST bodies are classified by ``mcpd.protocol.headers.classify``: modern requests are served
statelessly in the HTTP handler's own task; legacy requests run inside their session's nursery
while the handler streams their output. Either way the handler watches for the client going
away and cancels exactly the requests of its POST.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog
import trio

from mcpd.config import ServerSettings
from mcpd.protocol import headers as hdr
from mcpd.protocol.errors import (
    InternalError,
    InvalidRequest,
    McpError,
    MethodNotAllowed,
    MethodNotFound,
    ServerUnavailable,
    SessionRequired,
    UnsupportedProtocolVersion,
)
from mcpd.protocol.handshake import Event, parse_initialize
from mcpd.protocol.jsonrpc import (
    Message,
    Notification,
    Request,
    Response,
    dumps,
    error_message,
    parse_body,
    result_message,
)
from mcpd.protocol.meta import RequestMeta, parse_request_meta
from mcpd.protocol.revisions import LEGACY_VERSIONS, MODERN_VERSIONS, Era, allows_batch, era_of
from mcpd.protocol.shapes import complete_result
from mcpd.runtime.calls import Call
from mcpd.runtime.dispatch import SERVER_INFO, Dispatcher
from mcpd.runtime.flights import (
    CLIENT_CANCELLED,
    SESSION_DELETED,
    SHUTDOWN,
    Done,
    Flight,
    FlightTracker,
    fly,
)
from mcpd.runtime.sessions import Session, SessionManager
from mcpd.transport.asgi_io import (
    ClientGone,
    Receive,
    Scope,
    header_map,
    read_body,
    reject,
    watch_disconnect,
)
from mcpd.transport.exchange import JSON_HEADERS, Exchange, Send, send_response
from mcpd.transport.streams import serve_get_stream

log = structlog.get_logger("mcpd.http")

Runner = Callable[[Call], Awaitable[Done[dict[str, Any]] | None]]
_ALLOW = [(b"allow", b"GET, POST, DELETE")]


class Endpoint:
    """Serves ``settings.path`` for POST, GET and DELETE."""

    def __init__(
        self,
        settings: ServerSettings,
        dispatcher: Dispatcher,
        sessions: SessionManager,
        tracker: FlightTracker,
    ) -> None:
        self._settings = settings
        self._dispatcher = dispatcher
        self._sessions = sessions
        self._tracker = tracker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = header_map(scope)
        try:
            hdr.check_origin(headers.get("origin"), self._settings.allowed_origins)
            method = scope["method"]
            if method == "POST":
                await self._post(headers, receive, send)
            elif method == "GET":
                await self._get(headers, receive, send)
            elif method == "DELETE":
                await self._delete(headers, send)
            else:
                raise MethodNotAllowed(f"{method} is not supported on the MCP endpoint")
        except McpError as exc:
            extra = _ALLOW if isinstance(exc, MethodNotAllowed) else []
            await reject(send, exc, exc.request_id, extra)
        except ClientGone:
            return

    # -- POST ---------------------------------------------------------------------------------

    async def _post(self, headers: dict[str, str], receive: Receive, send: Send) -> None:
        if not self._tracker.accepting:
            raise ServerUnavailable("the daemon is shutting down")
        hdr.check_content_type(headers.get("content-type"))
        hdr.check_post_accept(headers.get("accept"))
        body = await read_body(receive, headers, self._settings.max_body_bytes)
        messages, is_batch = parse_body(body)
        if hdr.classify(messages, headers) is Era.MODERN:
            await self._modern(messages, is_batch, headers, receive, send)
        else:
            await self._legacy(messages, is_batch, headers, receive, send)

    async def _modern(
        self,
        messages: list[Message],
        is_batch: bool,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> None:
        message = messages[0]
        if is_batch or isinstance(message, Response):
            raise InvalidRequest("modern requests are single JSON-RPC requests or notifications")
        if isinstance(message, Notification):
            await send_response(send, 202, b"", [])
            return
        try:
            meta = self._check_modern(message, headers)
        except McpError as exc:
            exc.request_id = message.id
            raise
        exchange = Exchange(send, expected=1, batch=False, headers=[])
        call = Call(
            message, meta.protocol_version, Era.MODERN, Flight(message.id), exchange, meta=meta
        )
        await self._serve([call], exchange, receive, self._run_here)

    def _check_modern(self, request: Request, headers: dict[str, str]) -> RequestMeta:
        header_version = headers.get(hdr.PROTOCOL_VERSION)
        if header_version is not None and era_of(header_version) is None:
            raise UnsupportedProtocolVersion(header_version, MODERN_VERSIONS)
        meta = parse_request_meta(request.params)
        hdr.check_modern_headers(request, meta.protocol_version, headers)
        if not self._dispatcher.supports(Era.MODERN, request.method):
            raise MethodNotFound(f"method {request.method!r} is not supported")
        return meta

    async def _run_here(self, call: Call) -> Done[dict[str, Any]] | None:
        done: Done[dict[str, Any]] = Done()
        await fly(call.flight, partial(self._dispatcher.handle, call), done)
        return done.outcome

    # -- legacy POST ------------------------------------------------------------------------

    async def _legacy(
        self,
        messages: list[Message],
        is_batch: bool,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> None:
        first = messages[0]
        if isinstance(first, Request) and first.method == "initialize" and not is_batch:
            await self._initialize(first, send)
            return
        if any(isinstance(m, Request) and m.method == "initialize" for m in messages):
            raise InvalidRequest("initialize must not be part of a batch")
        session = self._session(headers)
        if is_batch and not allows_batch(session.version):
            raise InvalidRequest(f"JSON-RPC batches are not part of protocol {session.version}")
        session.touch()
        requests = [m for m in messages if isinstance(m, Request)]
        for message in messages:
            if isinstance(message, Notification):
                self._notification(session, message)
        if not requests:
            await send_response(send, 202, b"", [])
            return
        exchange = Exchange(send, expected=len(requests), batch=is_batch, headers=[])
        calls = [
            Call(r, session.version, Era.LEGACY, Flight(r.id), exchange, session=session)
            for r in requests
        ]
        await self._serve(calls, exchange, receive, partial(self._run_in_session, session))

    async def _run_in_session(self, session: Session, call: Call) -> Done[dict[str, Any]] | None:
        return await session.run_request(call.flight, partial(self._dispatcher.handle, call))

    async def _initialize(self, request: Request, send: Send) -> None:
        try:
            init = parse_initialize(request.params)
            session = await self._sessions.create(init)
        except McpError as exc:
            exc.request_id = request.id
            raise
        result = self._dispatcher.initialize_result(session.version)
        headers = [*JSON_HEADERS, (b"mcp-session-id", session.id.encode())]
        await send_response(send, 200, dumps(result_message(request.id, result)), headers)
        log.info(
            "session.created",
            session=session.log_id,
            protocol_version=session.version,
            client=init.client_info.get("name"),
        )

    def _session(self, headers: dict[str, str]) -> Session:
        session_id = headers.get(hdr.SESSION_ID)
        if session_id is None:
            raise SessionRequired("Mcp-Session-Id header is required; send initialize first")
        version = headers.get(hdr.PROTOCOL_VERSION)
        if version is not None and version not in LEGACY_VERSIONS:
            raise InvalidRequest(f"unsupported MCP-Protocol-Version {version!r} for a session")
        return self._sessions.get(session_id)

    def _notification(self, session: Session, message: Notification) -> None:
        if message.method == "notifications/initialized":
            session.advance(Event.INITIALIZED)
        elif message.method == "notifications/cancelled":
            params = message.params
            reason = params.get("reason")
            detail = (
                f"{CLIENT_CANCELLED}: {reason}" if isinstance(reason, str) else CLIENT_CANCELLED
            )
            session.cancel(params.get("requestId"), detail)

    # -- serving ------------------------------------------------------------------------------

    async def _serve(
        self, calls: list[Call], exchange: Exchange, receive: Receive, runner: Runner
    ) -> None:
        """Run the POST's requests beside a disconnect watcher and answer each of them."""
        flights = [call.flight for call in calls]
        for flight in flights:
            self._tracker.add(flight)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    watch_disconnect, receive, flights, exchange.tick, self._settings.sse_keepalive
                )
                if len(calls) == 1:
                    await self._answer(calls[0], exchange, runner)
                else:
                    async with trio.open_nursery() as batch:
                        for call in calls:
                            batch.start_soon(self._answer, call, exchange, runner)
                nursery.cancel_scope.cancel(reason="request answered")
        finally:
            for flight in flights:
                self._tracker.discard(flight)

    async def _answer(self, call: Call, exchange: Exchange, runner: Runner) -> None:
        request = call.request
        structlog.contextvars.bind_contextvars(request_id=request.id, method=request.method)
        if call.session is not None:
            structlog.contextvars.bind_contextvars(session=call.session.log_id)
        try:
            done = await runner(call)
        except McpError as exc:  # refused before it ran (e.g. duplicate id)
            done = Done(error=exc)
        if done is None:
            await self._cancelled(call, exchange)
        elif done.error is not None:
            await exchange.respond(error_message(request.id, _as_protocol_error(done.error)))
        else:
            assert done.value is not None
            await exchange.respond(result_message(request.id, self._shape(call, done.value)))

    async def _cancelled(self, call: Call, exchange: Exchange) -> None:
        log.info("request.cancelled", reason=call.flight.reason)
        if call.flight.reason == SHUTDOWN:
            # A terminal error event so the client learns why its request ended.
            error = ServerUnavailable("the daemon shut down before the request completed")
            await exchange.respond(error_message(call.request.id, error))
        else:
            await exchange.skip()

    def _shape(self, call: Call, result: dict[str, Any]) -> dict[str, Any]:
        if call.era is Era.MODERN:
            return complete_result(call.request.method, result, SERVER_INFO)
        return result

    # -- GET / DELETE ---------------------------------------------------------------------------

    async def _get(self, headers: dict[str, str], receive: Receive, send: Send) -> None:
        self._refuse_modern_only(headers, "GET")
        hdr.check_get_accept(headers.get("accept"))
        session = self._session(headers)
        await serve_get_stream(session, receive, send, self._settings.sse_keepalive)

    async def _delete(self, headers: dict[str, str], send: Send) -> None:
        self._refuse_modern_only(headers, "DELETE")
        session = self._session(headers)
        session.close(SESSION_DELETED)
        await session.wait_closed()
        await send_response(send, 200, b"", [])

    def _refuse_modern_only(self, headers: dict[str, str], method: str) -> None:
        version = headers.get(hdr.PROTOCOL_VERSION)
        if hdr.SESSION_ID not in headers and version is not None and version not in LEGACY_VERSIONS:
            raise MethodNotAllowed(f"{method} is not part of protocol {version}; POST only")


def _as_protocol_error(error: Exception) -> McpError:
    if isinstance(error, McpError):
        return error
    log.error("request.failed", exc_info=error)
    return InternalError("internal error")
