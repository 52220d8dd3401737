"""The MCP endpoint: one path, both eras.

POST bodies are classified by ``mcpd.protocol.headers.classify``: modern requests are served
statelessly in the HTTP handler's own task; legacy requests run inside their session's nursery
while the handler streams their output. Either way the handler watches for the client going
away and cancels exactly the requests of its POST.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from time import perf_counter
from typing import Any

import structlog
import trio

from mcpd.config import ServerSettings
from mcpd.listen_addresses import is_local_bind
from mcpd.metrics import CANCELLED, GET_STREAM, LISTEN, POST_SSE, TOOL_ERROR, Metrics
from mcpd.plugin.errors import error_result
from mcpd.protocol import headers as hdr
from mcpd.protocol.errors import (
    InternalError,
    InvalidRequest,
    McpError,
    MethodNotAllowed,
    MethodNotFound,
    MissingClientCapability,
    ServerUnavailable,
    SessionRequired,
    UnsupportedProtocolVersion,
)
from mcpd.protocol.handshake import Event, parse_initialize
from mcpd.protocol.jsonrpc import (
    Message,
    Notification,
    Request,
    RequestId,
    Response,
    Unencodable,
    dumps,
    error_message,
    parse_body,
    result_message,
)
from mcpd.protocol.meta import RequestMeta, parse_request_meta
from mcpd.protocol.resume import PRIMING_SINCE, RESUMABLE_SINCE, parse_event_id
from mcpd.protocol.revisions import LEGACY_VERSIONS, MODERN_VERSIONS, Era, allows_batch, era_of
from mcpd.protocol.shapes import complete_result
from mcpd.runtime.calls import Call
from mcpd.runtime.containment import failure_fields
from mcpd.runtime.dispatch import SERVER_INFO, Dispatcher
from mcpd.runtime.flights import (
    CLIENT_CANCELLED,
    CLIENT_DISCONNECTED,
    SESSION_DELETED,
    SHUTDOWN,
    Done,
    Flight,
    FlightTracker,
    Owner,
    StatelessRequests,
    fly,
)
from mcpd.runtime.sessions import Session, SessionManager
from mcpd.tracing import NO_TRACING, Tracing, Work
from mcpd.transport.asgi_io import (
    CLOSE,
    ClientGone,
    Receive,
    Scope,
    header_map,
    read_body,
    reject,
)
from mcpd.transport.exchange import JSON_HEADERS, Exchange, Reply, Send, send_response
from mcpd.transport.hypercorn_h11 import HALF_CLOSED
from mcpd.transport.listen import serve_listen
from mcpd.transport.streams import StreamGone, serve_get_stream

log = structlog.get_logger("mcpd.http")

# How long a cancelled request may take to end its HTTP response cleanly.
CLEAN_END_GRACE = 5.0
# A resumable session's call still running after this long switches to SSE (priming event).
PRIME_AFTER = 1.0
_ALLOW = ((b"allow", b"GET, POST, DELETE"),)
# The terminal answer of a request that shutdown ended.
_SHUT_DOWN = ServerUnavailable("the daemon shut down before the request completed")


class Endpoint:
    """Serves ``settings.path`` for POST, GET and DELETE."""

    tracing: Tracing = NO_TRACING  # the daemon sets its own (mcpd.tracing)

    def __init__(
        self,
        settings: ServerSettings,
        dispatcher: Dispatcher,
        sessions: SessionManager,
        stateless: StatelessRequests,
        tracker: FlightTracker,
        *,
        metrics: Metrics | None = None,
        binds: Sequence[str] | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics if metrics is not None else Metrics()
        self._dispatcher = dispatcher
        self._sessions = sessions
        self._stateless = stateless
        self._tracker = tracker
        # ``binds``: where the daemon really listens (sockets handed in by systemd), if not
        # ``settings.listen``.
        self._hosts = host_policy(settings, binds)
        # Set at shutdown: listen streams end with their result.
        self.closing = trio.Event()

    # -- what the 2024-11-05 transport shares with this endpoint --------------------------------

    @property
    def sessions(self) -> SessionManager:
        return self._sessions

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    @property
    def tracker(self) -> FlightTracker:
        return self._tracker

    @property
    def metrics(self) -> Metrics:
        return self._metrics

    @property
    def accepting(self) -> bool:
        return self._tracker.accepting

    def check_request_origin(self, headers: dict[str, str]) -> None:
        """DNS-rebinding protection: the Host and Origin checks every request passes."""
        if self._hosts is not None:
            hdr.check_host(headers.get("host"), self._hosts)
        hdr.check_origin(headers.get("origin"), self._settings.allowed_origins)

    def notification(self, session: Session, message: Notification) -> None:
        self._notification(session, message)

    async def answer(self, call: Call, reply: Reply) -> None:
        await self._answer(call, reply)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = header_map(scope)
        method = scope["method"]
        body = b""
        try:
            self.check_request_origin(headers)
            if method == "POST":
                body = await self._take_body(headers, receive)
            elif method not in ("GET", "DELETE"):
                raise MethodNotAllowed(f"{method} is not supported on the MCP endpoint")
        except McpError as exc:
            # Refused before its body was read: the connection cannot carry another request,
            # and saying so keeps a client from sending one onto it.
            await self._refuse(send, exc, CLOSE if method not in ("GET", "DELETE") else ())
            return
        except ClientGone:
            return
        try:
            if method == "POST":
                await self._post(body, headers, receive, send)
            elif method == "GET":
                await self._get(headers, receive, send)
            else:
                await self._delete(headers, send)
        except McpError as exc:
            await self._refuse(send, exc)
        except ClientGone:
            return

    async def _refuse(
        self, send: Send, error: McpError, extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        self._metrics.rejected(error.http_status)
        await reject(send, error, error.request_id, (*_extra_headers(error), *extra))

    # -- POST ---------------------------------------------------------------------------------

    async def _take_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        if not self._tracker.accepting:
            raise ServerUnavailable("the daemon is shutting down")
        hdr.check_content_type(headers.get("content-type"))
        hdr.check_post_accept(headers.get("accept"))
        settings = self._settings
        return await read_body(receive, headers, settings.max_body_bytes, settings.body_timeout)

    async def _post(
        self, body: bytes, headers: dict[str, str], receive: Receive, send: Send
    ) -> None:
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
            self._metrics.operation(message.method, "", 0.0)
            await send_response(send, 202, b"", [])
            return
        try:
            meta = self._check_modern(message, headers)
        except McpError as exc:
            exc.request_id = message.id
            self._metrics.operation(message.method, str(exc.code), 0.0)
            raise
        if message.method == "subscriptions/listen":
            await self._listen(message, receive, send)
            return
        exchange = Exchange(send, expected=1, batch=False, headers=[], metrics=self._metrics)
        call = Call(
            message,
            meta.protocol_version,
            Era.MODERN,
            Flight(message.id),
            exchange,
            meta=meta,
        )
        await self._serve([call], exchange, receive, self._stateless)

    async def _listen(self, message: Request, receive: Receive, send: Send) -> None:
        started = perf_counter()
        error_type = ""
        self._metrics.stream_opened(LISTEN)
        try:
            await serve_listen(
                message,
                receive,
                send,
                notices=self._dispatcher.notices,
                closing=self.closing,
                keepalive=self._settings.sse_keepalive,
                server_info=SERVER_INFO,
            )
        except McpError as exc:
            exc.request_id = message.id
            error_type = str(exc.code)
            raise
        finally:
            self._metrics.stream_closed(LISTEN)
            self._metrics.operation(message.method, error_type, perf_counter() - started)

    def _check_modern(self, request: Request, headers: dict[str, str]) -> RequestMeta:
        header_version = headers.get(hdr.PROTOCOL_VERSION)
        if header_version is not None and era_of(header_version) is None:
            raise UnsupportedProtocolVersion(header_version, MODERN_VERSIONS)
        meta = parse_request_meta(request.params)
        # A header that disagrees with the body is a mismatch (-32020) even when the body's
        # version is one we do not speak; only an agreed unknown version is -32022.
        hdr.check_modern_headers(request, meta.protocol_version, headers)
        if meta.protocol_version not in MODERN_VERSIONS:
            raise UnsupportedProtocolVersion(meta.protocol_version, MODERN_VERSIONS)
        if request.method == "tools/call":
            name = request.params.get("name")
            tool = self._dispatcher.registry.get(name) if isinstance(name, str) else None
            if tool is not None and tool.header_params:
                arguments = request.params.get("arguments")
                hdr.check_param_headers(tool.header_params, arguments, headers)
        if request.method != "subscriptions/listen" and not self._dispatcher.supports(
            Era.MODERN, request.method
        ):
            raise MethodNotFound(f"method {request.method!r} is not supported")
        return meta

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
            elif isinstance(message, Response) and not session.answer(message):
                log.info("response.unexpected", response_id=message.id)
        if not requests:
            await send_response(send, 202, b"", [])
            return
        window = self._settings.resume_window
        resumable = self._resumable(session)
        exchange = Exchange(
            send,
            expected=len(requests),
            batch=is_batch,
            headers=[],
            resumable_in=session if resumable else None,
            prime=resumable and session.version >= PRIMING_SINCE,
            metrics=self._metrics,
        )
        calls = [
            Call(r, session.version, Era.LEGACY, Flight(r.id), exchange, session=session)
            for r in requests
        ]
        if not resumable:
            await self._serve(calls, exchange, receive, session)
            return
        try:
            await self._serve(calls, exchange, receive, session, resume_window=window)
        finally:
            if exchange.stream_key is not None:
                # A client may still be on its way back to collect the end of the stream.
                session.forget_stream(exchange.stream_key, window)

    async def _initialize(self, request: Request, send: Send) -> None:
        started = perf_counter()
        try:
            init = parse_initialize(request.params)
            session = await self._sessions.create(init)
        except McpError as exc:
            exc.request_id = request.id
            self._metrics.operation(request.method, str(exc.code), perf_counter() - started)
            raise
        result = self._dispatcher.initialize_result(session.version)
        headers = [*JSON_HEADERS, (b"mcp-session-id", session.id.encode())]
        await send_response(send, 200, dumps(result_message(request.id, result)), headers)
        self._metrics.operation(request.method, "", perf_counter() - started)
        log.info(
            "session.created",
            session=session.log_id,
            protocol_version=session.version,
            client=init.client_info.get("name"),
        )

    def _resumable(self, session: Session) -> bool:
        """Whether the session's streams carry event ids and can be resumed."""
        return self._settings.resume_window > 0 and session.version >= RESUMABLE_SINCE

    def _session(self, headers: dict[str, str]) -> Session:
        session_id = headers.get(hdr.SESSION_ID)
        if session_id is None:
            raise SessionRequired("Mcp-Session-Id header is required; send initialize first")
        version = headers.get(hdr.PROTOCOL_VERSION)
        if version is not None and version not in LEGACY_VERSIONS:
            raise InvalidRequest(f"unsupported MCP-Protocol-Version {version!r} for a session")
        return self._sessions.get(session_id)

    def _notification(self, session: Session, message: Notification) -> None:
        self._metrics.operation(message.method, "", 0.0)
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
        self,
        calls: list[Call],
        exchange: Exchange,
        receive: Receive,
        owner: Owner,
        *,
        resume_window: float = 0,
    ) -> None:
        """Start the POST's requests in their owner's nursery; watch the client meanwhile.

        Each request's task answers for itself through the exchange. This task only watches
        for the client going away (cancelling exactly these requests) and sends keep-alives,
        until the last request is answered. No nursery or extra task per request is needed,
        which matters: task spawns dominate the cost of a fast call.
        """
        waiter = _Waiter(len(calls))

        async def answer(call: Call) -> None:
            try:
                await self._answer(call, exchange)
            finally:
                if not call.flight.abandoned:  # else the abandoning did this already
                    self._tracker.discard(call.flight)
                    waiter.answered()

        for call in calls:
            call.flight.abandon = partial(self.abandon, call, exchange, waiter.answered)
            self._tracker.add(call.flight)
            try:
                owner.start(call.flight, partial(answer, call))
            except McpError as exc:  # refused before it ran, e.g. a duplicate request id
                self._tracker.discard(call.flight)
                waiter.answered()
                await exchange.respond(dumps(error_message(call.request.id, exc)))
        try:
            await waiter.watch(
                receive,
                [call.flight for call in calls],
                exchange,
                self._settings.sse_keepalive,
                resume_window,
            )
        finally:
            if exchange.streaming:  # the exchange counted it open when it switched to SSE
                self._metrics.stream_closed(POST_SSE)
            if waiter.remaining:  # this handler itself was cancelled: nobody is left to answer
                for call in calls:
                    call.flight.cancel("the HTTP request was cancelled")

    async def _answer(self, call: Call, exchange: Reply) -> None:
        request = call.request
        if call.session is None:
            structlog.contextvars.bind_contextvars(request_id=request.id, method=request.method)
        else:
            structlog.contextvars.bind_contextvars(
                request_id=request.id, method=request.method, session=call.session.log_id
            )
        started = perf_counter()
        done: Done[dict[str, Any]] = Done()
        work: Work = partial(self._dispatcher.handle, call)
        if self.tracing.enabled:  # the request's SERVER span around the work
            work = self.tracing.server(call, work)
        await fly(call.flight, work, done)
        if call.flight.abandoned:  # answered with a terminal error while it would not stop
            return
        if done.outcome is None:
            error_type = CANCELLED
            self._metrics.cancelled(call.flight.reason)
            await self._cancelled(call, exchange)
        else:
            data, status, error_type = self._encode(call, done)
            await exchange.respond(data, status)
        self._metrics.operation(request.method, error_type, perf_counter() - started)

    def _encode(self, call: Call, done: Done[dict[str, Any]]) -> tuple[bytes, int, str]:
        """The answer as bytes, its HTTP status (when it is the whole answer), its error type.

        Encoded here, before anything is written: a result with no JSON form (a lone
        surrogate, NaN, a foreign type) becomes a clean error answer instead of a response
        broken half-way or an empty 500.
        """
        request = call.request
        if done.error is not None:
            return _error_answer(request.id, done.error)
        assert done.value is not None
        error_type = TOOL_ERROR if done.value.get("isError") is True else ""
        try:
            return dumps(result_message(request.id, self._shape(call, done.value))), 200, error_type
        except Unencodable as exc:
            name = request.params.get("name") if request.method == "tools/call" else None
            log.error("result.unencodable", error=str(exc), tool=name)
        if request.method != "tools/call":
            return _error_answer(request.id, InternalError("the result has no JSON form"))
        failed = error_result(f"tool {name} returned a result that cannot be encoded as JSON")
        return dumps(result_message(request.id, self._shape(call, failed))), 200, TOOL_ERROR

    async def abandon(self, call: Call, reply: Reply, answered: Callable[[], None]) -> None:
        """Answer a request that would not stop after shutdown cancelled it (see
        ``Flight.abandon``): its client gets the terminal error now."""
        log.error("request.abandoned", request_id=call.request.id, tool=call.flight.label)
        await reply.respond(dumps(error_message(call.request.id, _SHUT_DOWN)))
        answered()

    async def _cancelled(self, call: Call, exchange: Reply) -> None:
        log.info("request.cancelled", reason=call.flight.reason)
        # The session that owns this task may be ending right now (DELETE, expiry): finish
        # the HTTP response anyway, briefly shielded, so the client sees a clean end.
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + CLEAN_END_GRACE
            if call.flight.reason == SHUTDOWN:
                # A terminal error event so the client learns why its request ended.
                await exchange.respond(dumps(error_message(call.request.id, _SHUT_DOWN)))
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
        resumable = self._resumable(session)
        last = headers.get("last-event-id")
        after: int | None = None
        if last is not None and resumable:
            found = parse_event_id(last)
            if found is None:
                raise StreamGone(f"Last-Event-ID {last!r} names no stream of this session")
            key, after = found
            if key != "g":
                await self._resume_post_stream(session, key, after, receive, send)
                return
        self._metrics.stream_opened(GET_STREAM)
        try:
            await serve_get_stream(
                session,
                receive,
                send,
                self._settings.sse_keepalive,
                log=session.get_log if resumable else None,
                after=after,
                prime=resumable and session.version >= PRIMING_SINCE,
            )
        finally:
            self._metrics.stream_closed(GET_STREAM)

    async def _resume_post_stream(
        self, session: Session, key: str, after: int, receive: Receive, send: Send
    ) -> None:
        """A client picks up a POST's stream it lost: replay what it missed, then go on."""
        exchange = session.resumable.get(key)
        if exchange is None or not await exchange.resume(send, after):
            raise StreamGone(f"stream {key} can no longer be resumed; send the request again")
        log.info("stream.resumed", stream=key, after=after)
        generation = exchange.generation
        session.touch()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_detach_on_disconnect, receive, exchange, generation)
            while not exchange.finished and exchange.generation == generation:
                with trio.move_on_after(self._settings.sse_keepalive):
                    await exchange.wait_changed()
                    continue
                await exchange.tick()
            nursery.cancel_scope.cancel(reason="stream ended")

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


async def _detach_on_disconnect(receive: Receive, exchange: Exchange, generation: int) -> None:
    while (kind := (await receive())["type"]) != "http.disconnect":
        if kind == HALF_CLOSED:
            await exchange.tick()  # probe: a closed client resets (see hypercorn_h11)
    if exchange.generation == generation:
        exchange.detach()


class _Waiter:
    """The HTTP handler's side of a POST: wait for the answers, watching the client meanwhile.

    One cancel scope per wait serves as both the keep-alive timer (its deadline) and the
    wake-up when the last answer is written (the answering task cancels it).
    """

    __slots__ = ("_scope", "remaining")

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        self._scope: trio.CancelScope | None = None

    def answered(self) -> None:
        self.remaining -= 1
        if not self.remaining and self._scope is not None:
            self._scope.cancel(reason="answered")

    async def watch(
        self,
        receive: Receive,
        flights: list[Flight],
        exchange: Exchange,
        interval: float,
        resume_window: float = 0,
    ) -> None:
        client_gone = False
        # The stream may be resumed on another connection (GET + Last-Event-ID) before this
        # one's disconnect arrives: from then on, that connection is not ours to probe or end.
        ours = exchange.generation
        # A resumable stream starts early (with its priming event), so that a client losing
        # the connection has an event id to resume from.
        wait = min(interval, PRIME_AFTER) if resume_window else interval
        while self.remaining:
            with trio.move_on_after(wait) as self._scope:
                if client_gone:
                    await trio.sleep_forever()
                kind = (await receive())["type"]
                if kind == "http.disconnect":
                    client_gone = True
                    if resume_window and exchange.resumable:
                        break
                    for flight in flights:
                        flight.cancel(CLIENT_DISCONNECTED)
                elif kind == HALF_CLOSED and exchange.generation == ours:
                    # The client sent EOF: probe it with a keep-alive now (a closed client
                    # resets, and hypercorn reports the disconnect), rather than at the next
                    # interval; a half-closed one reads its answer as SSE.
                    await exchange.tick()
                continue
            wait = interval
            if self.remaining and not client_gone and exchange.generation == ours:
                await exchange.tick()
        if self.remaining:
            await self._hold(flights, exchange, resume_window, ours)

    async def _hold(
        self, flights: list[Flight], exchange: Exchange, window: float, ours: int
    ) -> None:
        """The client lost a resumable stream: keep its requests running while it may come
        back (GET + Last-Event-ID); cancel them once it stays away for ``window`` seconds."""
        if exchange.generation == ours:  # not already resumed elsewhere
            exchange.detach()
            log.info("stream.detached", resume_window_seconds=window)
        while self.remaining:
            with trio.CancelScope() as self._scope:
                if exchange.attached:
                    await exchange.wait_changed()
                    continue
                with trio.move_on_after(window) as grace:
                    await exchange.wait_changed()
                if grace.cancelled_caught and not exchange.attached:
                    log.info("stream.abandoned")
                    for flight in flights:
                        flight.cancel(CLIENT_DISCONNECTED)
                    await trio.sleep_forever()


def _extra_headers(error: McpError) -> tuple[tuple[bytes, bytes], ...]:
    return _ALLOW if isinstance(error, MethodNotAllowed) else ()


def _error_answer(request_id: RequestId, error: BaseException) -> tuple[bytes, int, str]:
    failure = _as_protocol_error(error)
    # 2026: an undeclared client capability is an HTTP 400 (transports spec).
    status = 400 if isinstance(failure, MissingClientCapability) else 200
    return dumps(error_message(request_id, failure)), status, str(failure.code)


def _as_protocol_error(error: BaseException) -> McpError:
    if isinstance(error, McpError):
        return error
    # mcpd's own bug (plugin failures are contained where plugin code runs): the traceback
    # goes to the log, without the exception's text, which may quote what the client sent.
    log.error("request.failed", **failure_fields(error, with_message=False))
    return InternalError("internal error")


def host_policy(
    settings: ServerSettings, binds: Sequence[str] | None = None
) -> frozenset[str] | None:
    """The Host values to accept besides loopback names, or None for no Host check.

    Listening on loopback only (the default), a request naming any other host is a
    DNS-rebinding attempt. Listening beyond loopback, the operator lists the public names;
    with none listed, the Host header is not checked. ``binds`` (default: the configured
    ``listen``) may name inherited sockets (``fd://N``), judged by their real address.
    """
    if settings.allowed_hosts:
        return frozenset(settings.allowed_hosts)
    if all(is_local_bind(bind) for bind in (binds or settings.listen)):
        return frozenset()
    return None
