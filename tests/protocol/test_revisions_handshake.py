import pytest

from mcpd.protocol.errors import InvalidParams, InvalidRequest, SessionNotFound
from mcpd.protocol.handshake import Event, Handshake, Phase, initialize_result, parse_initialize
from mcpd.protocol.revisions import (
    LATEST_LEGACY,
    LEGACY_VERSIONS,
    MODERN_VERSIONS,
    Era,
    allows_batch,
    argument_errors_are_tool_errors,
    era_of,
    negotiate,
    resource_not_found_code,
)


def test_registry() -> None:
    assert LEGACY_VERSIONS == ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
    assert MODERN_VERSIONS == ("2026-07-28",)
    assert era_of("2025-06-18") is Era.LEGACY
    assert era_of("2026-07-28") is Era.MODERN
    assert era_of("2099-01-01") is None


@pytest.mark.parametrize(
    ("requested", "answer"),
    [
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2026-07-28", LATEST_LEGACY),  # no handshake in 2026: counter-offer the latest legacy
        ("1999-01-01", LATEST_LEGACY),
        (20250618, LATEST_LEGACY),
    ],
)
def test_negotiate(requested: object, answer: str) -> None:
    assert negotiate(requested) == answer


@pytest.mark.parametrize(
    ("version", "batch", "tool_error", "not_found"),
    [
        ("2024-11-05", False, False, -32002),
        ("2025-03-26", True, False, -32002),
        ("2025-06-18", False, False, -32002),
        ("2025-11-25", False, True, -32002),
        ("2026-07-28", False, True, -32602),
    ],
)
def test_switches(version: str, batch: bool, tool_error: bool, not_found: int) -> None:
    assert allows_batch(version) is batch
    assert argument_errors_are_tool_errors(version) is tool_error
    assert resource_not_found_code(version) == not_found


@pytest.mark.parametrize(
    ("events", "phase"),
    [
        ([], Phase.INITIALIZING),
        ([Event.REQUEST], Phase.INITIALIZING),
        ([Event.INITIALIZED], Phase.READY),
        ([Event.INITIALIZED, Event.REQUEST, Event.INITIALIZED], Phase.READY),
        ([Event.CLOSE], Phase.CLOSED),
        ([Event.INITIALIZED, Event.CLOSE, Event.CLOSE], Phase.CLOSED),
    ],
)
def test_handshake_transitions(events: list[Event], phase: Phase) -> None:
    handshake = Handshake()
    for event in events:
        handshake.advance(event)
    assert handshake.phase is phase


@pytest.mark.parametrize(
    ("before", "event", "error"),
    [
        ([], Event.INITIALIZE, InvalidRequest),
        ([Event.INITIALIZED], Event.INITIALIZE, InvalidRequest),
        ([Event.CLOSE], Event.REQUEST, SessionNotFound),
        ([Event.CLOSE], Event.INITIALIZED, SessionNotFound),
    ],
)
def test_handshake_refusals(before: list[Event], event: Event, error: type[Exception]) -> None:
    handshake = Handshake()
    for e in before:
        handshake.advance(e)
    with pytest.raises(error):
        handshake.advance(event)


def test_parse_initialize() -> None:
    init = parse_initialize(
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {"roots": {}},
            "clientInfo": {"name": "c"},
        }
    )
    assert init.negotiated_version == "2025-06-18"
    assert init.capabilities == {"roots": {}}
    result = initialize_result(init.negotiated_version, {"tools": {}}, {"name": "mcpd"})
    assert result == {
        "protocolVersion": "2025-06-18",
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "mcpd"},
    }


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"protocolVersion": 1},
        {"protocolVersion": "2025-06-18", "capabilities": []},
        {"protocolVersion": "x", "clientInfo": "c"},
    ],
)
def test_parse_initialize_invalid(params: dict[str, object]) -> None:
    with pytest.raises(InvalidParams):
        parse_initialize(params)
