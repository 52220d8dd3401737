"""Legacy sessions: each one owns a nursery in which all of its requests run.

A session lives as one task in the ``SessionManager``'s nursery. Ending it (DELETE, idle
expiry, shutdown) cancels its nursery, so every request of that session is cancelled with the
reason, and nothing the session started can outlive it.

A session also outlives the process: ``snapshot`` gives what the next process needs to go on
with it (``mcpd.persist.records.SessionRecord``), and ``SessionManager.restore`` brings it back
under the same id, with its owner, revision, client, log level, subscriptions, idle deadline,
event-id counters, GET replay log and queued messages (see ``mcpd.runtime.restart``).
"""

from __future__ import annotations

import contextlib
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Protocol

import structlog
import trio

from mcpd.metrics import Metrics
from mcpd.persist.records import ConnectionRecord, ReplayRecord, SessionRecord
from mcpd.plugin.context import InputUnavailable
from mcpd.protocol.errors import (
    InvalidParams,
    InvalidRequest,
    LimitExceeded,
    ServerUnavailable,
    SessionNotFound,
)
from mcpd.protocol.handshake import Event, Handshake, InitializeParams, Phase
from mcpd.protocol.jsonrpc import (
    JsonObject,
    RequestId,
    Response,
    notification_message,
    request_message,
)
from mcpd.protocol.meta import check_log_level
from mcpd.protocol.resume import LOG_BYTES, EventLog
from mcpd.protocol.revisions import LEGACY_VERSIONS
from mcpd.runtime.flights import SESSION_EXPIRED, Flight, NurseryHost
from mcpd.runtime.mailbox import Mailbox
from mcpd.runtime.notices import ListKind, Notices

if TYPE_CHECKING:
    from mcpd.runtime.calls import Outbound

log = structlog.get_logger("mcpd.sessions")

# Until the client calls logging/setLevel, send notifications/message at info and above.
DEFAULT_LOG_LEVEL = "info"
# Messages kept for a GET stream that is not open (list changes, resource updates).
OUTBOX_LIMIT: Final = 256
# Finished streams a session keeps for late resumes (each log bounded by SessionLimits).
RETAINED_STREAMS: Final = 32
# How long withdrawing an unanswered question may take (a write on the asking stream).
WITHDRAW_GRACE: Final = 1.0
# How long an ending session waits for its cancelled requests to end their responses.
UNWIND_GRACE: Final = 5.0


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Bounds every session of a daemon shares (``[server]`` settings)."""

    max_requests: int = 256  # requests in flight at once
    replay_log_bytes: int = LOG_BYTES  # kept per resumable stream
    replay_session_bytes: int = 8 * LOG_BYTES  # kept across the session's finished streams


DEFAULT_LIMITS: Final = SessionLimits()


class Session:
    """One legacy session: negotiated revision, client identity, in-flight requests."""

    __slots__ = (
        "_asked",
        "_close",
        "_closed",
        "_drained",
        "_finished",
        "_get_log",
        "_idle_timeout",
        "_last_active",
        "_nursery",
        "_outbox",
        "_reaping",
        "_stream_count",
        "capabilities",
        "client_info",
        "connection",
        "end_reason",
        "flights",
        "handshake",
        "id",
        "limit_key",
        "limits",
        "log_level",
        "pending",
        "principal",
        "resumable",
        "streams",
        "subscriptions",
        "version",
    )

    def __init__(
        self,
        init: InitializeParams,
        idle_timeout: float,
        limits: SessionLimits = DEFAULT_LIMITS,
        *,
        principal: str | None = None,
        limit_key: str | None = None,
    ) -> None:
        # 256 bits from the CSPRNG, URL-safe base64: visible ASCII as the spec requires.
        self.id = secrets.token_urlsafe(32)
        self.limits = limits
        # Whose session this is (the principal's stable key; None: nobody authenticated).
        # Another principal presenting the id is told it does not exist.
        self.principal = principal
        self.limit_key = limit_key  # what [limits] counts this session against
        # An HTTP+SSE session whose connection is being carried past this process (set when
        # it is handed to the fd store; restored with the session).
        self.connection: ConnectionRecord | None = None
        self.version = init.negotiated_version
        self.capabilities = init.capabilities
        self.client_info = init.client_info
        self.handshake = Handshake()
        self.log_level: str = DEFAULT_LOG_LEVEL
        self.flights: dict[RequestId, Flight] = {}
        self.streams = 0  # open GET streams
        self.subscriptions: set[str] = set()  # resources/subscribe URIs
        # Server-to-client requests awaiting the client's answer, by our request id.
        self.pending: dict[RequestId, _Pending] = {}
        self._asked = 0
        # Messages for the GET stream, kept (up to a bound) until one is open to take them.
        # Made on first use: most sessions never get a notice or open a stream, and an idle
        # session should stay small.
        self._outbox: Mailbox[JsonObject] | None = None
        # Resumable streams by key (see mcpd.protocol.resume): POST streams and the GET log.
        self.resumable: dict[str, Any] = {}
        self._stream_count = 0
        # Finished streams still resumable, with when they stop being, oldest first.
        self._finished: deque[tuple[str, float]] | None = None
        self._reaping = False  # a task is set to drop them as their windows end
        self._get_log: EventLog | None = None
        self.end_reason: str | None = None
        self._idle_timeout = idle_timeout
        self._last_active = trio.current_time()
        self._nursery: trio.Nursery | None = None
        self._close = trio.Event()
        self._closed = trio.Event()
        self._drained = trio.Event()

    # -- lifetime -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The session's task: owns its nursery until closed or expired."""
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(session=self.log_id)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._live()
                reason = self.end_reason or SESSION_EXPIRED
                for flight in list(self.flights.values()):
                    flight.cancel(reason)
                # Let the cancelled requests unwind on their own first: each ends its HTTP
                # response cleanly. Cancelling the nursery at once would cut them short.
                with trio.move_on_after(UNWIND_GRACE):
                    while self.flights:
                        self._drained = trio.Event()
                        await self._drained.wait()
                nursery.cancel_scope.cancel(reason=reason)
        finally:
            self.handshake.phase = Phase.CLOSED
            self._closed.set()
            log.info("session.ended", reason=self.end_reason or SESSION_EXPIRED)

    async def _live(self) -> None:
        # The deadline is re-armed lazily: touch() only records the time (it runs on every
        # request, and moving a cancel scope's deadline is comparatively expensive).
        while True:
            with trio.move_on_at(self._expires_at()):
                await self._close.wait()
                return
            if self.busy:
                self.touch()
            elif trio.current_time() >= self._expires_at():
                self.end_reason = SESSION_EXPIRED
                return

    def _expires_at(self) -> float:
        return self._last_active + self._idle_timeout

    def close(self, reason: str) -> None:
        """Ask the session to end; its work is cancelled with ``reason``."""
        if self.end_reason is None:
            self.end_reason = reason
        self._close.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    @property
    def closing(self) -> bool:
        return self._close.is_set() or self._closed.is_set()

    @property
    def log_id(self) -> str:
        """A prefix of the id for logs: enough to correlate, useless to address the session."""
        return self.id[:8]

    @property
    def busy(self) -> bool:
        return bool(self.flights) or self.streams > 0

    def touch(self) -> None:
        """Record activity, which pushes the idle expiry out."""
        self._last_active = trio.current_time()

    # -- surviving the process --------------------------------------------------------------

    def snapshot(self, wall_now: float) -> SessionRecord:
        """What the next process needs to go on with this session, at wall-clock ``wall_now``.

        A busy session (a request running, a GET stream open) has its whole idle timeout
        ahead of it: it is active right up to the shutdown.
        """
        remaining = self._idle_timeout if self.busy else self._expires_at() - trio.current_time()
        get_log = self._get_log
        return SessionRecord(
            id=self.id,
            principal=self.principal,
            protocol_version=self.version,
            client_capabilities=self.capabilities,
            client_info=self.client_info,
            log_level=self.log_level,
            subscriptions=tuple(sorted(self.subscriptions)),
            initialized=self.handshake.phase is Phase.READY,
            idle_deadline=wall_now + max(0.0, remaining),
            post_streams=self._stream_count,
            client_requests=self._asked,
            get_stream=None if get_log is None else _replay_record(get_log),
            outbox=tuple(self._outbox.pending()) if self._outbox is not None else (),
            limit_key=self.limit_key,
            connection=self.connection,
        )

    @classmethod
    def restore(
        cls,
        record: SessionRecord,
        wall_now: float,
        idle_timeout: float,
        limits: SessionLimits = DEFAULT_LIMITS,
    ) -> Session:
        """The session ``record`` describes, as it was (its idle deadline counted in wall
        time, and never beyond ``idle_timeout`` from now)."""
        version = record.protocol_version
        init = InitializeParams(version, version, record.client_capabilities, record.client_info)
        session = cls(
            init, idle_timeout, limits, principal=record.principal, limit_key=record.limit_key
        )
        session.id = record.id
        session.connection = record.connection
        with contextlib.suppress(InvalidParams):  # a level this build does not know: default
            session.set_log_level(record.log_level)
        session.subscriptions = set(record.subscriptions)
        if record.initialized:
            session.handshake.phase = Phase.READY
        session._stream_count = record.post_streams
        session._asked = record.client_requests
        remaining = min(idle_timeout, record.idle_deadline - wall_now)
        session._last_active = trio.current_time() + remaining - idle_timeout
        if record.get_stream is not None:
            session._get_log = _event_log(record.get_stream, limits.replay_log_bytes)
        for message in record.outbox:
            session.post(message)
        return session

    # -- requests -------------------------------------------------------------------------

    def set_log_level(self, level: object) -> None:
        self.log_level = check_log_level(level)

    def advance(self, event: Event) -> None:
        self.handshake.advance(event)

    def cancel(self, request_id: object, reason: str) -> bool:
        """Cancel one in-flight request by id; unknown or finished ids are ignored."""
        flight = self.flights.get(request_id) if isinstance(request_id, str | int) else None
        if flight is None:
            return False
        flight.cancel(reason)
        return True

    def start(self, flight: Flight, work: Callable[[], Awaitable[None]]) -> None:
        """Start ``work`` for ``flight`` in this session's nursery.

        The session's end (DELETE, expiry, shutdown) cancels every flight it owns, and its
        nursery guarantees none of their tasks outlives it.
        """
        if self._nursery is None or self.closing:
            raise SessionNotFound("session has ended")
        if flight.request_id in self.flights:
            raise InvalidRequest(f"request id {flight.request_id!r} is already in flight")
        if len(self.flights) >= self.limits.max_requests:
            raise ServerUnavailable(
                f"this session has {len(self.flights)} requests in flight, the most allowed;"
                " wait for answers before sending more"
            )
        self.flights[flight.request_id] = flight
        self.touch()
        self._nursery.start_soon(self._own, flight, work)

    async def _own(self, flight: Flight, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        finally:
            self.flights.pop(flight.request_id, None)
            self.touch()
            if not self.flights:
                self._drained.set()

    # -- resumable streams -----------------------------------------------------------------

    @property
    def get_log(self) -> EventLog:
        """The replay log of the session's GET stream (made when first needed)."""
        if self._get_log is None:
            self._get_log = EventLog("g", max_bytes=self.limits.replay_log_bytes)
        return self._get_log

    def new_stream_key(self) -> str:
        self._stream_count += 1
        return f"p{self._stream_count}"

    def open_stream(self, exchange: Any) -> EventLog:
        """Register a POST's response stream for resumption; its event log."""
        log = EventLog(self.new_stream_key(), max_bytes=self.limits.replay_log_bytes)
        self.resumable[log.key] = exchange
        return log

    def forget_stream(self, key: str, after: float) -> None:
        """Stop offering stream ``key`` for resumption, ``after`` seconds from now.

        At most ``RETAINED_STREAMS`` finished streams, holding at most
        ``limits.replay_session_bytes`` of events, are kept per session (the oldest go
        first), so a busy session's replay logs stay bounded.
        """
        if after <= 0 or self._nursery is None or self.closing:
            self.resumable.pop(key, None)
            return
        if self._finished is None:
            self._finished = deque()
        finished = self._finished
        finished.append((key, trio.current_time() + after))
        while len(finished) > RETAINED_STREAMS or (
            len(finished) > 1 and self._finished_bytes() > self.limits.replay_session_bytes
        ):
            self.resumable.pop(finished.popleft()[0], None)
        if not self._reaping:
            # One task per session, not one per stream: a busy session finishes thousands of
            # streams within a window, and as many sleeping tasks (each a timer and a few
            # kB the GC walks) made the tail of SSE answers several times the median.
            self._reaping = True
            self._nursery.start_soon(self._reap)

    def _finished_bytes(self) -> int:
        finished = self._finished or ()
        return sum(getattr(self.resumable.get(key), "replay_bytes", 0) for key, _ in finished)

    async def _reap(self) -> None:
        """Drop finished streams as their resume windows end, then stop."""
        finished = self._finished
        try:
            while finished:
                await trio.sleep_until(finished[0][1])
                now = trio.current_time()
                while finished and finished[0][1] <= now:
                    self.resumable.pop(finished.popleft()[0], None)
        finally:
            self._reaping = False

    # -- asking the client --------------------------------------------------------------

    async def ask(
        self, method: str, params: dict[str, Any], outbound: Outbound, patience: float
    ) -> dict[str, Any]:
        """Send a request to the client on ``outbound`` and wait for its answer.

        The answer arrives as a POSTed JSON-RPC response (see ``answer``). Raises
        ``InputUnavailable`` on an error answer or after ``patience`` seconds. A question
        given up on (no answer in time, or the asking request cancelled) is withdrawn with
        ``notifications/cancelled``, so the client can close its form or stop its model.
        """
        self._asked += 1
        request_id = f"mcpd-{self._asked}"
        pending = _Pending()
        self.pending[request_id] = pending
        try:
            await outbound.notify(request_message(request_id, method, params))
            with trio.move_on_after(patience):
                await pending.event.wait()
        finally:
            self.pending.pop(request_id, None)
            if not pending.event.is_set():
                await _withdraw(outbound, request_id)
        if not pending.event.is_set():
            raise InputUnavailable(f"the client did not answer {method} within {patience:g}s")
        response = pending.response
        assert response is not None
        if response.error is not None:
            message = response.error.get("message", "error")
            raise InputUnavailable(f"the client answered {method} with an error: {message}")
        return response.result if isinstance(response.result, dict) else {}

    def answer(self, response: Response) -> bool:
        """Deliver a client's response to the question it answers; False if none waits."""
        pending = self.pending.get(response.id) if response.id is not None else None
        if pending is None or pending.event.is_set():
            return False
        pending.response = response
        pending.event.set()
        self.touch()
        return True

    # -- the GET stream and change notices ------------------------------------------------

    def post(self, message: JsonObject) -> None:
        """Queue a message for the session's GET stream (the oldest is dropped when full)."""
        if self.closing:
            return
        if self._outbox is None:
            self._outbox = Mailbox(OUTBOX_LIMIT)
        self._outbox.put(message)

    async def next_posted(self) -> JsonObject:
        """The next message for the GET stream; waits until there is one."""
        if self._outbox is None:
            self._outbox = Mailbox(OUTBOX_LIMIT)
        return await self._outbox.get()

    def list_changed(self, kind: ListKind) -> None:
        if self.handshake.phase is Phase.READY:
            self.post(notification_message(f"notifications/{kind}/list_changed", {}))

    def resource_updated(self, uri: str) -> None:
        if uri in self.subscriptions:
            self.post(notification_message("notifications/resources/updated", {"uri": uri}))

    def statistics(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "in_flight": len(self.flights)}


def _replay_record(log: EventLog) -> ReplayRecord:
    events = tuple((number, framed.decode()) for number, framed in log.kept())
    return ReplayRecord(log.seq, events)


def _event_log(record: ReplayRecord, max_bytes: int) -> EventLog:
    events = [(number, framed.encode()) for number, framed in record.events]
    return EventLog.resumed("g", record.seq, events, max_bytes=max_bytes)


async def _withdraw(outbound: Outbound, request_id: RequestId) -> None:
    """Tell the client we no longer want an answer; best effort, briefly, even if cancelled."""
    notice = notification_message(
        "notifications/cancelled", {"requestId": request_id, "reason": "no longer needed"}
    )
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + WITHDRAW_GRACE
        with contextlib.suppress(Exception):
            await outbound.notify(notice)


class _Pending:
    __slots__ = ("event", "response")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.response: Response | None = None


class SessionCounter(Protocol):
    """Sessions per principal (``mcpd.limits.limiter.Limits``)."""

    def open_session(self, principal: str) -> None: ...

    def close_session(self, principal: str) -> None: ...


class _Countdown:
    """A ``task_status`` shared by several tasks: ``wait`` returns once all have started."""

    __slots__ = ("_done", "_left")

    def __init__(self, tasks: int) -> None:
        self._left = tasks
        self._done = trio.Event()
        if not tasks:
            self._done.set()

    def started(self, value: None = None) -> None:
        self._left -= 1
        if not self._left:
            self._done.set()

    async def wait(self) -> None:
        await self._done.wait()


class SessionManager(NurseryHost):
    """Owns every legacy session's task; looks sessions up by id."""

    def __init__(
        self,
        *,
        idle_timeout: float,
        max_sessions: int,
        limits: SessionLimits = DEFAULT_LIMITS,
        notices: Notices | None = None,
        metrics: Metrics | None = None,
        counter: SessionCounter | None = None,
    ) -> None:
        super().__init__()
        self._limits = limits
        self._counter = counter
        self._metrics = metrics if metrics is not None else Metrics()
        self._sessions: dict[str, Session] = {}
        self._notices = notices if notices is not None else Notices()
        self._idle_timeout = idle_timeout
        self._max = max_sessions

    async def create(
        self, init: InitializeParams, principal: str | None = None, limit_key: str | None = None
    ) -> Session:
        """A new session of ``principal``; ``limit_key`` counts it against that principal's
        sessions (``LimitExceeded`` when it has all it may have)."""
        if self._nursery is None:
            raise ServerUnavailable("sessions are not being served")
        if len(self._sessions) >= self._max:
            raise ServerUnavailable("too many sessions; try again later")
        if self._counter is not None and limit_key is not None:
            self._counter.open_session(limit_key)
        session = Session(
            init, self._idle_timeout, self._limits, principal=principal, limit_key=limit_key
        )
        self._sessions[session.id] = session
        await self._nursery.start(self._own, session)
        return session

    async def _own(self, session: Session, *, task_status: trio.TaskStatus[None]) -> None:
        self._notices.add(session)
        started = trio.current_time()
        try:
            await session.run(task_status=task_status)
        finally:
            self._notices.discard(session)
            self._sessions.pop(session.id, None)
            if self._counter is not None and session.limit_key is not None:
                self._counter.close_session(session.limit_key)
            self._metrics.session_ended(session.version, trio.current_time() - started)

    async def restore(self, records: Iterable[SessionRecord], wall_now: float) -> list[Session]:
        """Bring back the sessions of a previous process (see ``Session.restore``); the ones
        brought back. An id already in use, a revision not spoken here, records beyond
        ``max_sessions``, or beyond their principal's ``max_sessions_per_principal``, are
        skipped. A restored session counts against its principal's limit as a new one does."""
        if self._nursery is None:
            raise ServerUnavailable("sessions are not being served")
        restored: list[Session] = []
        for record in records:
            if len(self._sessions) >= self._max:
                break
            if record.id in self._sessions or record.protocol_version not in LEGACY_VERSIONS:
                continue  # taken, or a revision this build does not speak (a downgrade)
            session = Session.restore(record, wall_now, self._idle_timeout, self._limits)
            if self._counter is not None and session.limit_key is not None:
                try:  # counted last: nothing after it can fail and leave the count behind
                    self._counter.open_session(session.limit_key)
                except LimitExceeded:
                    continue  # its principal has all it may have (the limit was lowered)
            self._sessions[session.id] = session
            restored.append(session)
        # Started together, then waited for once: one nursery.start() each would cost a
        # scheduler round trip per session (about 2 s for 10,000 before the daemon listens).
        started = _Countdown(len(restored))
        for session in restored:
            self._nursery.start_soon(partial(self._own, session, task_status=started))
        await started.wait()
        return restored

    def snapshot(self, wall_now: float) -> list[SessionRecord]:
        """Every live session, as the next process needs it (see ``Session.snapshot``)."""
        return [s.snapshot(wall_now) for s in self._sessions.values() if not s.closing]

    def get(self, session_id: str, principal: str | None = None) -> Session:
        """The live session ``session_id`` of ``principal``: another principal's is, to
        them, as unknown as one that never existed."""
        session = self._sessions.get(session_id)
        if session is None or session.closing or session.principal != principal:
            raise SessionNotFound("unknown or expired session; initialize a new one")
        return session

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    async def close_all(self, reason: str) -> None:
        """End every session and wait until their work has unwound."""
        sessions = list(self._sessions.values())
        for session in sessions:
            session.close(reason)
        for session in sessions:
            await session.wait_closed()
