"""Audit events: one per tool call, resource read and prompt get, on the ``mcpd.audit`` logger.

Through the real logging setup (``configure_logging``) into a captured stream, on trio's
MockClock so that durations are exact. Secret-looking arguments and headers must never
appear in what is written.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
import trio
import trio.testing

from mcpd.audit import NAME_LIMIT, Auditor
from mcpd.config import LoggingSettings
from mcpd.limits.limiter import Limits
from mcpd.limits.settings import LimitsSettings
from mcpd.logs import configure_logging
from mcpd.protocol.errors import InvalidParams, LimitExceeded, OriginForbidden
from mcpd.protocol.jsonrpc import parse_body

SECRETS = ("sk-live-0123456789abcdef", "hunter2", "eyJhbGciOiJSUzI1NiJ9.payload.sig", "4111111111")
TOOL_CALL = {
    "jsonrpc": "2.0",
    "id": 42,
    "method": "tools/call",
    "params": {
        "name": "read_file",
        "arguments": {
            "path": "/home/alice/notes-hunter2.txt",
            "api_key": SECRETS[0],
            "nested": {"card": SECRETS[3]},
        },
        "_meta": {"progressToken": "p1"},
    },
}
HEADERS = {
    "authorization": f"Bearer {SECRETS[2]}",
    "cookie": f"session={SECRETS[1]}",
    "x_api_key": SECRETS[0],
}


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    yield out
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def auditor(stream: io.StringIO, fmt: str = "json", level: str = "info") -> Auditor:
    configure_logging(LoggingSettings(format=fmt, level=level), stream=stream)  # type: ignore[arg-type]
    return Auditor()


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def request() -> Any:
    (message,), _ = parse_body(json.dumps(TOOL_CALL).encode())
    return message


async def test_a_tool_call_event_has_every_field_and_nothing_secret(
    stream: io.StringIO, autojump_clock: trio.testing.MockClock
) -> None:
    audit = auditor(stream)
    call = request()
    # What the request path binds, plus headers a careless handler might have bound too.
    structlog.contextvars.bind_contextvars(request_id=call.id, method=call.method, **HEADERS)
    with audit.audit(
        call.method,
        call.params,
        principal="keys:ci-bot",
        client_id="claude-code",
        request_id=call.id,
    ):
        await trio.sleep(1.25)
    (event,) = events(stream)
    assert event["logger"] == "mcpd.audit"
    assert event["event"] == "audit"
    assert event["level"] == "info"
    assert {key: event[key] for key in AUDIT_FIELDS} == {
        "principal": "keys:ci-bot",
        "client_id": "claude-code",
        "method": "tools/call",
        "name": "read_file",
        "outcome": "ok",
        "duration_ms": 1250.0,
        "request_id": 42,
    }
    assert "arguments" not in event
    assert "reason" not in event
    text = stream.getvalue()
    for secret in SECRETS:
        assert secret not in text
    assert "/home/alice" not in text


AUDIT_FIELDS = ("principal", "client_id", "method", "name", "outcome", "duration_ms", "request_id")


async def test_journal_lines_carry_the_logger_name_to_route_by(
    stream: io.StringIO, autojump_clock: trio.testing.MockClock
) -> None:
    audit = auditor(stream, fmt="journal")
    structlog.contextvars.bind_contextvars(**HEADERS)
    with audit.audit(
        "prompts/get",
        {"name": "summarise", "arguments": {"text": SECRETS[1]}},
        principal="https://idp.example/|alice",
        client_id=None,
        request_id="r-7",
    ):
        await trio.sleep(0.5)
    (line,) = stream.getvalue().splitlines()
    # journald strips the <6> priority prefix: MESSAGE then starts with "mcpd.audit: audit".
    assert line.startswith("<6>mcpd.audit: audit ")
    assert " outcome=ok " in line
    assert " name=summarise " in line
    assert " duration_ms=500.0 " in line
    assert " request_id=r-7" in line
    for secret in SECRETS:
        assert secret not in line


async def test_audit_events_pass_a_quieter_log_level(
    stream: io.StringIO, autojump_clock: trio.testing.MockClock
) -> None:
    audit = auditor(stream, level="error")
    structlog.get_logger("mcpd.calls").info("tool.call")  # diagnostics: filtered out
    with audit.audit("tools/call", {"name": "echo"}, principal="p", client_id=None, request_id=1):
        pass
    assert [event["event"] for event in events(stream)] == ["audit"]


async def test_an_is_error_result_is_an_error(
    stream: io.StringIO, autojump_clock: trio.testing.MockClock
) -> None:
    audit = auditor(stream)
    with audit.audit(
        "tools/call", {"name": "echo"}, principal="p", client_id=None, request_id=1
    ) as entry:
        entry.finished({"content": [], "isError": True})
    (event,) = events(stream)
    assert (event["outcome"], event["reason"]) == ("error", "tool_error")


async def test_refusals_are_denied_with_their_reason(
    stream: io.StringIO, autojump_clock: trio.testing.MockClock
) -> None:
    audit = auditor(stream)
    limits = Limits(LimitsSettings(requests_per_second=1, burst=1))
    limits.check_request("p", "tools/call")
    with (
        pytest.raises(LimitExceeded),
        audit.audit("tools/call", {"name": "echo"}, principal="p", client_id=None, request_id=1),
    ):
        limits.check_request("p", "tools/call")
    with (
        pytest.raises(OriginForbidden),
        audit.audit("tools/call", {"name": "echo"}, principal="p", client_id=None, request_id=2),
    ):
        raise OriginForbidden("not allowed")
    with audit.audit(
        "tools/call", {"name": "admin"}, principal="p", client_id=None, request_id=3
    ) as entry:
        entry.deny("insufficient_scope")
    outcomes = [(e["outcome"], e["reason"], e["request_id"]) for e in events(stream)]
    assert outcomes == [
        ("denied", "principal_rate", 1),
        ("denied", "-32600", 2),
        ("denied", "insufficient_scope", 3),
    ]


async def test_errors_say_what_kind_without_the_message(
    stream: io.StringIO, autojump_clock: trio.testing.MockClock
) -> None:
    audit = auditor(stream)
    with (
        pytest.raises(InvalidParams),
        audit.audit("prompts/get", {"name": "p"}, principal="p", client_id=None, request_id=1),
    ):
        raise InvalidParams(f"invalid arguments: {SECRETS[1]!r} is not a number")
    with (
        pytest.raises(RuntimeError),
        audit.audit("tools/call", {"name": "t"}, principal="p", client_id=None, request_id=2),
    ):
        raise RuntimeError(SECRETS[0])
    outcomes = [(e["outcome"], e["reason"]) for e in events(stream)]
    assert outcomes == [("error", "-32602"), ("error", "RuntimeError")]
    for secret in SECRETS:
        assert secret not in stream.getvalue()


async def test_cancelled_calls_say_why_from_a_closed_set(
    stream: io.StringIO, autojump_clock: trio.testing.MockClock
) -> None:
    audit = auditor(stream)

    async def audited_call(request_id: int) -> None:
        with audit.audit(
            "tools/call", {"name": "slow"}, principal="p", client_id=None, request_id=request_id
        ):
            async with trio.open_nursery() as nursery:  # a tool with tasks of its own
                nursery.start_soon(trio.sleep_forever)
                await trio.sleep_forever()

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(audited_call, 1)
            await trio.sleep(3)
            scope.cancel(reason="client disconnected")
    with trio.move_on_after(2) as other:
        with audit.audit(
            "tools/call", {"name": "slow"}, principal="p", client_id=None, request_id=2
        ):
            await trio.sleep_forever()
    assert other.cancelled_caught
    got = [(e["outcome"], e["reason"], e["duration_ms"]) for e in events(stream)]
    assert got == [("cancelled", "disconnect", 3000.0), ("cancelled", "other", 2000.0)]


async def test_resource_reads_name_the_registered_resource_never_the_uri(
    stream: io.StringIO, autojump_clock: trio.testing.MockClock
) -> None:
    audit = auditor(stream)
    uri = f"notes://alice/{SECRETS[1]}?token={SECRETS[0]}"
    with audit.audit(
        "resources/read", {"uri": uri}, principal="p", client_id=None, request_id=1
    ) as entry:
        entry.name = "note"  # what the handler sets once it found the template that matched
    with (
        pytest.raises(InvalidParams),
        audit.audit("resources/read", {"uri": uri}, principal="p", client_id=None, request_id=2),
    ):
        raise InvalidParams("resource not found")  # unknown: no name at all
    assert [e["name"] for e in events(stream)] == ["note", None]
    assert "notes://" not in stream.getvalue()


async def test_unknown_names_from_the_client_are_cut_short(
    stream: io.StringIO, autojump_clock: trio.testing.MockClock
) -> None:
    audit = auditor(stream)
    for name in ("x" * 10_000, 12345):
        with audit.audit("tools/call", {"name": name}, principal="p", client_id=None, request_id=1):
            pass
    assert [e["name"] for e in events(stream)] == ["x" * NAME_LIMIT, None]
