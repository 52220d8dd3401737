"""The audit trail: one ``audit`` event per tool call, resource read and prompt get.

Events go to their own logger, ``mcpd.audit``, through the daemon's structlog setup
(``mcpd.logs``), so they share its format and can be routed by that name: in the journal
format each line reads ``mcpd.audit: audit principal=... outcome=ok ...``; in JSON lines
``"logger": "mcpd.audit"``. They are written at ``info`` whatever ``[logging] level`` says:
quieting diagnostics must not silence the record of who did what.

Fields: ``principal`` (the principal's stable key), ``client_id``, ``method``, ``name`` (the
tool or prompt name as requested, or the registered name of the resource read),
``outcome`` (``ok``, ``denied``, ``error``, ``cancelled``), ``reason`` (for the last three,
when known), ``duration_ms`` and ``request_id``. Never a token, a key, an argument value or a
resource URI: a URI that matched a template carries the caller's values in it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

import structlog
import trio

from mcpd.metrics import cancel_reason
from mcpd.protocol.errors import LimitExceeded, McpError
from mcpd.protocol.jsonrpc import RequestId

AUDIT_LOGGER: Final = "mcpd.audit"
AUDITED: Final = frozenset({"tools/call", "resources/read", "prompts/get"})
# Longest name written: a name is an identifier, but an unknown one comes from the client.
NAME_LIMIT: Final = 128

Outcome = Literal["ok", "denied", "error", "cancelled"]


@dataclass(slots=True)
class AuditEntry:
    """One audited request while it runs; the handler may refine ``name`` and ``outcome``."""

    method: str
    name: str | None
    principal: str | None
    client_id: str | None
    request_id: RequestId | None
    outcome: Outcome = "ok"
    reason: str | None = None

    def fail(self, reason: str | None = None) -> None:
        """The request ended as an error (an ``isError`` tool result, for instance)."""
        self.outcome, self.reason = "error", reason

    def deny(self, reason: str) -> None:
        """The request was refused: not authorized, or over a limit."""
        self.outcome, self.reason = "denied", reason

    def finished(self, result: Mapping[str, Any]) -> None:
        """The handler's result: an ``isError`` tool result is an error, the rest ok."""
        if result.get("isError") is True:
            self.fail("tool_error")
        elif result.get("resultType") == "input_required":
            self.reason = "input_required"  # a 2026 round that asks the client first

    def fields(self, seconds: float) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "principal": self.principal,
            "client_id": self.client_id,
            "method": self.method,
            "name": self.name,
            "outcome": self.outcome,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": self.request_id,
        }
        if self.reason is not None:
            fields["reason"] = self.reason
        return fields


def requested_name(method: str, params: Mapping[str, Any]) -> str | None:
    """The name to audit from a request's params: tools and prompts only (see the module)."""
    if method == "resources/read":
        return None  # the handler sets the registered resource's name once it has found it
    name = params.get("name")
    return name[:NAME_LIMIT] if isinstance(name, str) else None


class Auditor:
    """Writes audit events; made after ``configure_logging`` so it uses that configuration."""

    def __init__(self) -> None:
        # Its own level filter: audit events pass whatever [logging] level says.
        self._log = structlog.wrap_logger(
            None,
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory_args=(AUDIT_LOGGER,),
        )

    @contextmanager
    def audit(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        principal: str | None,
        client_id: str | None,
        request_id: RequestId | None,
    ) -> Iterator[AuditEntry]:
        """Audit the request run inside the block; yields the entry the handler may refine.

        The outcome is taken from how the block ends: an exception that is a refusal over a
        limit or of authorization (401, 403, 429) is ``denied``, a cancellation ``cancelled``,
        any other exception ``error``; otherwise what the handler set (``ok`` by default).
        """
        entry = AuditEntry(method, requested_name(method, params), principal, client_id, request_id)
        started = trio.current_time()
        try:
            yield entry
        except BaseException as exc:
            entry.outcome, entry.reason = outcome_of(exc)
            raise
        finally:
            self.write(entry, trio.current_time() - started)

    def write(self, entry: AuditEntry, seconds: float) -> None:
        """Write one audit event (``audit`` does this itself)."""
        self._log.info("audit", **entry.fields(seconds))


_DENIED_STATUSES: Final = frozenset({401, 403, 429})


def outcome_of(exc: BaseException) -> tuple[Outcome, str | None]:
    """How an exception that ended an audited request is recorded, with its reason."""
    cancelled = _cancellation(exc)
    if cancelled is not None:
        # The closed set the metrics use: a client's own words for cancelling stay out.
        return "cancelled", cancel_reason(cancelled.reason)
    if isinstance(exc, LimitExceeded):
        return "denied", exc.limit
    if isinstance(exc, McpError):
        outcome: Outcome = "denied" if exc.http_status in _DENIED_STATUSES else "error"
        return outcome, str(exc.code)
    return "error", type(exc).__name__


def _cancellation(exc: BaseException) -> trio.Cancelled | None:
    """The ``Cancelled`` when ``exc`` is one, or a group of nothing else (as nurseries raise)."""
    if isinstance(exc, trio.Cancelled):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        inner = [_cancellation(one) for one in exc.exceptions]
        if inner and all(one is not None for one in inner):
            return inner[0]
    return None
