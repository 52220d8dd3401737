"""What one request needs while it runs, and the channel its tool talks through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from mcpd.protocol.jsonrpc import JsonObject, Request, RequestId, notification_message
from mcpd.protocol.meta import RequestMeta, level_enabled, progress_token
from mcpd.protocol.revisions import Era
from mcpd.runtime.flights import Flight
from mcpd.runtime.sessions import Session


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


class CallChannel:
    """The ``RequestChannel`` a tool's ``Context`` uses: progress and logs for one request.

    Nothing is sent once the request has been cancelled or has finished: progress and log
    notifications exist only while their request lives.
    """

    __slots__ = ("_call", "_open")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._open = True

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
    def session_id(self) -> str | None:
        session = self._call.session
        return None if session is None else session.id

    def wants_log(self, level: str) -> bool:
        call = self._call
        if call.era is Era.MODERN:
            # 2026: no notifications/message unless the request asked for a level.
            return level_enabled(level, call.meta.log_level if call.meta else None)
        return call.session is not None and level_enabled(level, call.session.log_level)

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        if self._open and not self._call.flight.cancelled:
            await self._call.outbound.notify(notification_message(method, params))

    def close(self) -> None:
        self._open = False
