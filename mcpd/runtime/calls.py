"""What one request needs while it runs, and the channel its tool talks through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import trio

from mcpd.auth.principal import Principal, anonymous
from mcpd.plugin.context import InputUnavailable
from mcpd.protocol.jsonrpc import JsonObject, Request, RequestId, notification_message
from mcpd.protocol.meta import RequestMeta, level_enabled, progress_token
from mcpd.protocol.revisions import Era
from mcpd.runtime.flights import TIMED_OUT, Flight
from mcpd.runtime.inputs import InputRound
from mcpd.runtime.sessions import Session

NOBODY: Principal = anonymous(None)


class Outbound(Protocol):
    """Where messages that belong to a request go (its POST's response stream)."""

    async def notify(self, message: JsonObject) -> None: ...


@dataclass(slots=True)
class Call:
    """One request being served: who asked, in which era, and where its output goes."""

    request: Request
    revision: str
    era: Era
    flight: Flight
    outbound: Outbound
    session: Session | None = None
    meta: RequestMeta | None = None
    # 2026 only: the answers this round of a multi-round-trip request can use.
    inputs: InputRound | None = None
    principal: Principal = NOBODY  # who asked (mcpd.runtime.access)

    @property
    def client_capabilities(self) -> dict[str, Any]:
        if self.session is not None:
            return self.session.capabilities
        if self.meta is not None:
            return self.meta.client_capabilities
        return {}


class CallChannel:
    """The ``RequestChannel`` a handler's ``Context`` uses: progress, logs and questions for
    the client, for one request.

    Nothing is sent once the request has been cancelled or has finished: progress and log
    notifications exist only while their request lives.
    """

    __slots__ = ("_call", "_input_timeout", "_open", "limit")

    def __init__(self, call: Call, input_timeout: float) -> None:
        self._call = call
        self._input_timeout = input_timeout
        self._open = True
        self.limit: trio.CancelScope | None = None  # the tool's timeout, set by the dispatcher

    @property
    def request_id(self) -> RequestId:
        return self._call.request.id

    @property
    def revision(self) -> str:
        return self._call.revision

    @property
    def progress_token(self) -> str | int | None:
        return progress_token(self._call.request.params)

    @property
    def cancel_reason(self) -> str | None:
        reason = self._call.flight.reason
        if reason is None and self.limit is not None and self.limit.cancel_called:
            return TIMED_OUT
        return reason

    @property
    def session_id(self) -> str | None:
        session = self._call.session
        return None if session is None else session.id

    @property
    def principal(self) -> Principal:
        return self._call.principal

    def wants_log(self, level: str) -> bool:
        call = self._call
        if call.era is Era.MODERN:
            # 2026: no notifications/message unless the request asked for a level.
            return level_enabled(level, call.meta.log_level if call.meta else None)
        return call.session is not None and level_enabled(level, call.session.log_level)

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        if self._open and not self._call.flight.cancelled:
            await self._call.outbound.notify(notification_message(method, params))

    def client_supports(self, capability: str) -> bool:
        return isinstance(self._call.client_capabilities.get(capability), dict)

    async def ask(self, questions: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        call = self._call
        if call.inputs is not None:  # 2026: answered from the retry, or InputRequired
            return call.inputs.answer(questions)
        if call.session is None or not self._open:
            raise InputUnavailable("this request cannot ask the client for input")
        return [
            await call.session.ask(method, params, call.outbound, self._input_timeout)
            for _, method, params in questions
        ]

    async def close_stream(self, retry_ms: int | None) -> None:
        closer = getattr(self._call.outbound, "close_connection", None)
        if closer is not None and self._open:
            await closer(retry_ms)

    def close(self) -> None:
        self._open = False
