"""The legacy (handshake-era) session lifecycle as a table-driven state machine.

A session is born when the server answers ``initialize`` and then waits for
``notifications/initialized``. Requests that race that notification are allowed (each POST is
its own HTTP request, so arrival order is not send order); a second ``initialize`` is not.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mcpd.protocol.errors import InvalidParams, InvalidRequest, SessionNotFound
from mcpd.protocol.revisions import negotiate


class Phase(enum.Enum):
    INITIALIZING = "initializing"  # initialize answered, initialized not yet seen
    READY = "ready"
    CLOSED = "closed"


class Event(enum.Enum):
    REQUEST = "request"
    INITIALIZED = "initialized"
    INITIALIZE = "initialize"
    CLOSE = "close"


_ALREADY = InvalidRequest("session is already initialized; start a new one without Mcp-Session-Id")

# (phase, event) -> next phase, or the error to raise. Missing pairs cannot happen.
_TABLE: dict[tuple[Phase, Event], Phase | Exception] = {
    (Phase.INITIALIZING, Event.REQUEST): Phase.INITIALIZING,
    (Phase.INITIALIZING, Event.INITIALIZED): Phase.READY,
    (Phase.INITIALIZING, Event.INITIALIZE): _ALREADY,
    (Phase.INITIALIZING, Event.CLOSE): Phase.CLOSED,
    (Phase.READY, Event.REQUEST): Phase.READY,
    (Phase.READY, Event.INITIALIZED): Phase.READY,  # a duplicate is harmless
    (Phase.READY, Event.INITIALIZE): _ALREADY,
    (Phase.READY, Event.CLOSE): Phase.CLOSED,
    (Phase.CLOSED, Event.REQUEST): SessionNotFound("session has ended"),
    (Phase.CLOSED, Event.INITIALIZED): SessionNotFound("session has ended"),
    (Phase.CLOSED, Event.INITIALIZE): SessionNotFound("session has ended"),
    (Phase.CLOSED, Event.CLOSE): Phase.CLOSED,
}


class Handshake:
    """The phase of one legacy session; ``advance`` applies an event or raises."""

    __slots__ = ("phase",)

    def __init__(self) -> None:
        self.phase = Phase.INITIALIZING

    def advance(self, event: Event) -> Phase:
        outcome = _TABLE[(self.phase, event)]
        if isinstance(outcome, Exception):
            raise type(outcome)(str(outcome))
        self.phase = outcome
        return outcome


@dataclass(frozen=True, slots=True)
class InitializeParams:
    requested_version: str
    negotiated_version: str
    capabilities: dict[str, Any]
    client_info: dict[str, Any]


def parse_initialize(params: dict[str, Any]) -> InitializeParams:
    """Validate ``initialize`` params and negotiate the session's revision."""
    requested = params.get("protocolVersion")
    if not isinstance(requested, str):
        raise InvalidParams('initialize: "protocolVersion" must be a string')
    capabilities = params.get("capabilities", {})
    if not isinstance(capabilities, dict):
        raise InvalidParams('initialize: "capabilities" must be an object')
    client_info = params.get("clientInfo", {})
    if not isinstance(client_info, dict):
        raise InvalidParams('initialize: "clientInfo" must be an object')
    return InitializeParams(requested, negotiate(requested), capabilities, client_info)


def initialize_result(
    version: str,
    capabilities: dict[str, Any],
    server_info: dict[str, Any],
    instructions: str | None = None,
) -> dict[str, Any]:
    """The ``InitializeResult`` for the negotiated revision."""
    result: dict[str, Any] = {
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": server_info,
    }
    if instructions:
        result["instructions"] = instructions
    return result
