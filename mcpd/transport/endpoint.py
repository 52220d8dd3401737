"""The MCP endpoint: one path, both eras.

POST bodies are classified by ``mcpd.protocol.headers.classify``: modern requests are served
statelessly in the HTTP handler's own task; legacy requests run inside their session's nursery
while the handler streams their output. Either way the handler watches for the client going
away and cancels exactly the requests of its POST.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import Any, Literal

import structlog
import trio

from mcpd.audit import AUDITED, outcome_of
from mcpd.auth.authenticator import Unauthenticated
from mcpd.auth.principal import Principal
from mcpd.config import ServerSettings
from mcpd.metrics import (
    CANCELLED,
    GET_STREAM,
    LISTEN,
    POST_SSE,
    TOOL_ERROR,
    Metrics,
    cancel_reason,
)
from mcpd.plugin.errors import error_result
from mcpd.protocol import headers as hdr
from mcpd.protocol.errors import (
    InternalError,
    InvalidRequest,
    LimitExceeded,
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
from mcpd.runtime.access import Access, audit_entry, named_item, owner_of
from mcpd.runtime.calls import Call
from mcpd.runtime.containment import failure_fields
from mcpd.runtime.dispatch import SERVER_INFO, Dispatcher
from mcpd.runtime.flights import (
    CLIENT_CANCELLED,
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
from mcpd.transport.hosts import host_policy
from mcpd.transport.listen import serve_listen
from mcpd.transport.refusals import extra_headers, reject_unauthenticated
from mcpd.transport.streams import StreamGone, serve_get_stream
from mcpd.transport.waiter import Waiter, detach_on_disconnect

log = structlog.get_logger("mcpd.http")

# How long a cancelled request may take to end its HTTP response cleanly.
CLEAN_END_GRACE = 5.0
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
        access: Access,
        metrics: Metrics | None = None,
        binds: Sequence[str] | None = None,
    ) -> None:
        self._settings = settings
        self._access = access
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
    def access(self) -> Access:
        return self._access

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
            if method not in ("POST", "GET", "DELETE"):
                raise MethodNotAllowed(f"{method} is not supported on the MCP endpoint")
            # Before the body is read: an unauthenticated client makes us buffer nothing.
            principal = await self._access.identify(scope, headers)
            if method == "POST":
                body = await self._take_body(headers, receive)
        except Unauthenticated as refusal:
            self._metrics.rejected(refusal.status)
            await reject_unauthenticated(send, refusal)
            return
        except McpError as exc:
            # Refused before its body was read: the connection cannot carry another request,
            # and saying so keeps a client from sending one onto it.
            await self._refuse(send, exc, CLOSE if method != "GET" else ())
            return
        except ClientGone:
            return
        incoming = Incoming(headers, receive, send, principal)
        try:
            if method == "POST":
                await self._post(body, incoming)
            elif method == "GET":
                await self._get(incoming)
            else:
                await self._delete(incoming)
        except McpError as exc:
            await self._refuse(send, exc)
        except ClientGone:
            return

    async def _refuse(
        self, send: Send, error: McpError, extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        self._metrics.rejected(error.http_status)
        await reject(send, error, error.request_id, (*extra_headers(error), *extra))

    # -- POST ---------------------------------------------------------------------------------

    async def _take_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        if not self._tracker.accepting:
            raise ServerUnavailable("the daemon is shutting down")
        hdr.check_content_type(headers.get("content-type"))
        hdr.check_post_accept(headers.get("accept"))
        settings = self._settings
        return await read_body(receive, headers, settings.max_body_bytes, settings.body_timeout)

    async def _post(self, body: bytes, incoming: Incoming) -> None:
        messages, is_batch = parse_body(body)
        if hdr.classify(messages, incoming.headers) is Era.MODERN:
            await self._modern(messages, is_batch, incoming)
        else:
            await self._legacy(messages, is_batch, incoming)

    def admit(self, principal: Principal, request: Request) -> None:
        """Limits and authorization before ``request`` runs (429, 403; see ``Access``); a
        refused tool call, read or get is audited as denied."""
        try:
            self._access.admit(principal, request, self._dispatcher.registry)
        except McpError as exc:
            exc.request_id = request.id
            self._metrics.operation(request.method, str(exc.code), 0.0)
            if request.method in AUDITED:
                entry = audit_entry(principal, request)
                entry.outcome, entry.reason = outcome_of(exc)
                self._access.auditor.write(entry, 0.0)
            raise

    async def _modern(self, messages: list[Message], is_batch: bool, incoming: Incoming) -> None:
        message = messages[0]
        if is_batch or isinstance(message, Response):
            raise InvalidRequest("modern requests are single JSON-RPC requests or notifications")
        if isinstance(message, Notification):
            self._metrics.operation(message.method, "", 0.0)
            await send_response(incoming.send, 202, b"", [])
            return
        try:
            meta = self._check_modern(message, incoming.headers)
        except McpError as exc:
            exc.request_id = message.id
            self._metrics.operation(message.method, str(exc.code), 0.0)
            raise
        self.admit(incoming.principal, message)
        if message.method == "subscriptions/listen":
            await self._listen(message, incoming.receive, incoming.send)
            return
        exchange = Exchange(
            incoming.send, expected=1, batch=False, headers=[], metrics=self._metrics
        )
        call = Call(
            message,
            meta.protocol_version,
            Era.MODERN,
            Flight(message.id),
            exchange,
            meta=meta,
            principal=incoming.principal,
        )
        await self._serve([call], exchange, incoming.receive, self._stateless)

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

    async def _legacy(self, messages: list[Message], is_batch: bool, incoming: Incoming) -> None:
        first = messages[0]
        if isinstance(first, Request) and first.method == "initialize" and not is_batch:
            self.admit(incoming.principal, first)
            await self._initialize(first, incoming.send, incoming.principal)
            return
        if any(isinstance(m, Request) and m.method == "initialize" for m in messages):
            raise InvalidRequest("initialize must not be part of a batch")
        session = self._session(incoming.headers, incoming.principal)
        if is_batch and not allows_batch(session.version):
            raise InvalidRequest(f"JSON-RPC batches are not part of protocol {session.version}")
        session.touch()
        requests = [m for m in messages if isinstance(m, Request)]
        for request in requests:  # all admitted, or none runs
            self.admit(incoming.principal, request)
        for message in messages:
            if isinstance(message, Notification):
                self._notification(session, message)
            elif isinstance(message, Response) and not session.answer(message):
                log.info("response.unexpected", response_id=message.id)
        if not requests:
            await send_response(incoming.send, 202, b"", [])
            return
        await self._serve_in_session(session, requests, is_batch, incoming)

    async def _serve_in_session(
        self, session: Session, requests: list[Request], is_batch: bool, incoming: Incoming
    ) -> None:
        window = self._settings.resume_window
        resumable = self._resumable(session)
        exchange = Exchange(
            incoming.send,
            expected=len(requests),
            batch=is_batch,
            headers=[],
            resumable_in=session if resumable else None,
            prime=resumable and session.version >= PRIMING_SINCE,
            metrics=self._metrics,
        )
        calls = [
            Call(
                r,
                session.version,
                Era.LEGACY,
                Flight(r.id),
                exchange,
                session=session,
                principal=incoming.principal,
            )
            for r in requests
        ]
        if not resumable:
            await self._serve(calls, exchange, incoming.receive, session)
            return
        try:
            await self._serve(calls, exchange, incoming.receive, session, resume_window=window)
        finally:
            if exchange.stream_key is not None:
                # A client may still be on its way back to collect the end of the stream.
                session.forget_stream(exchange.stream_key, window)

    async def _initialize(self, request: Request, send: Send, principal: Principal) -> None:
        started = perf_counter()
        try:
            init = parse_initialize(request.params)
            session = await self._sessions.create(init, owner_of(principal), principal.limit_key)
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

    def _session(self, headers: dict[str, str], principal: Principal) -> Session:
        session_id = headers.get(hdr.SESSION_ID)
        if session_id is None:
            raise SessionRequired("Mcp-Session-Id header is required; send initialize first")
        version = headers.get(hdr.PROTOCOL_VERSION)
        if version is not None and version not in LEGACY_VERSIONS:
            raise InvalidRequest(f"unsupported MCP-Protocol-Version {version!r} for a session")
        return self._sessions.get(session_id, owner_of(principal))

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
        waiter = Waiter(len(calls))

        async def answer(call: Call) -> None:
            try:
                await self._answer(call, exchange)
            finally:
                if not call.flight.abandoned:  # else the abandoning did this already
                    self._tracker.discard(call.flight)
                    waiter.answered()
                # The partial refers back to the call: left in place, every request would
                # leave a reference cycle for the cyclic GC's full collections to walk.
                call.flight.abandon = None

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
        if request.method in AUDITED:
            self._audit(call, done, perf_counter() - started)
        if call.flight.abandoned:  # answered with a terminal error while it would not stop
            return
        if done.outcome is None:
            error_type = CANCELLED
            self._metrics.cancelled(call.flight.reason)
            await self._cancelled(call, exchange)
        else:
            data, status, error_type = self._encode(call, done)
            headers = extra_headers(done.error) if isinstance(done.error, McpError) else ()
            await exchange.respond(data, status, headers)
        self._metrics.operation(request.method, error_type, perf_counter() - started)

    def _audit(self, call: Call, done: Done[dict[str, Any]], seconds: float) -> None:
        """The audit event of a tool call, resource read or prompt get (``mcpd.audit``)."""
        request = call.request
        entry = audit_entry(call.principal, request)
        item = named_item(request, self._dispatcher.registry)
        if request.method == "resources/read":
            entry.name = None if item is None else item.name
        if item is not None and self._access.hidden(call.principal, item):
            # Answered as unknown to the client; the operator learns what it was.
            entry.outcome, entry.reason = "denied", "hidden"
        elif done.outcome is None:
            entry.outcome, entry.reason = "cancelled", cancel_reason(call.flight.reason)
        elif done.error is not None:
            entry.outcome, entry.reason = outcome_of(done.error)
        elif done.value is not None:
            entry.finished(done.value)
        self._access.auditor.write(entry, seconds)

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
            # What one principal may list or read, another may not: no shared cache.
            private = self._access.private_lists and call.request.method != "server/discover"
            scope: Literal["public", "private"] = "private" if private else "public"
            return complete_result(call.request.method, result, SERVER_INFO, cache_scope=scope)
        return result

    # -- GET / DELETE ---------------------------------------------------------------------------

    async def _get(self, incoming: Incoming) -> None:
        headers, receive, send = incoming.headers, incoming.receive, incoming.send
        principal = incoming.principal
        self._refuse_modern_only(headers, "GET")
        hdr.check_get_accept(headers.get("accept"))
        session = self._session(headers, principal)
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
            nursery.start_soon(detach_on_disconnect, receive, exchange, generation)
            while not exchange.finished and exchange.generation == generation:
                with trio.move_on_after(self._settings.sse_keepalive):
                    await exchange.wait_changed()
                    continue
                await exchange.tick()
            nursery.cancel_scope.cancel(reason="stream ended")

    async def _delete(self, incoming: Incoming) -> None:
        self._refuse_modern_only(incoming.headers, "DELETE")
        session = self._session(incoming.headers, incoming.principal)
        session.close(SESSION_DELETED)
        await session.wait_closed()
        await send_response(incoming.send, 200, b"", [])

    def _refuse_modern_only(self, headers: dict[str, str], method: str) -> None:
        version = headers.get(hdr.PROTOCOL_VERSION)
        if hdr.SESSION_ID not in headers and version is not None and version not in LEGACY_VERSIONS:
            raise MethodNotAllowed(f"{method} is not part of protocol {version}; POST only")


@dataclass(frozen=True, slots=True)
class Incoming:
    """One HTTP request to the endpoint, as its handlers need it."""

    headers: dict[str, str]
    receive: Receive
    send: Send
    principal: Principal


def _error_answer(request_id: RequestId, error: BaseException) -> tuple[bytes, int, str]:
    failure = _as_protocol_error(error)
    # 2026: an undeclared client capability is an HTTP 400 (transports spec); a call that
    # waited in line past its queue timeout is 429 like any other limit.
    status = (
        failure.http_status if isinstance(failure, MissingClientCapability | LimitExceeded) else 200
    )
    return dumps(error_message(request_id, failure)), status, str(failure.code)


def _as_protocol_error(error: BaseException) -> McpError:
    if isinstance(error, McpError):
        return error
    # mcpd's own bug (plugin failures are contained where plugin code runs): the traceback
    # goes to the log, without the exception's text, which may quote what the client sent.
    log.error("request.failed", **failure_fields(error, with_message=False))
    return InternalError("internal error")
