"""The restart state's file format: round trips, what is refused and why, and the bounds."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from mcpd.persist import records
from mcpd.persist.records import (
    Budget,
    ReplayRecord,
    SessionRecord,
    StateDocument,
    StateRejected,
    decode_state,
    encode_state,
    fit_session,
    key_id,
    usable,
)

KEY = b"s" * 32
NOW = 1_800_000_000.0
ROOMY = Budget(max_bytes=1 << 20, session_bytes=1 << 16)


def session(
    number: int = 1, *, idle_deadline: float = NOW + 600, **changes: object
) -> SessionRecord:
    record = SessionRecord(
        id=f"session-{number}",
        principal=f"key:client-{number}",
        protocol_version="2025-11-25",
        client_capabilities={"elicitation": {}, "roots": {"listChanged": True}},
        client_info={"name": "tests", "version": "1.0"},
        log_level="debug",
        subscriptions=("fixture://text",),
        initialized=True,
        idle_deadline=idle_deadline,
        post_streams=7,
        client_requests=3,
        get_stream=ReplayRecord(
            5, ((4, 'id: g.4\nevent: message\ndata: {"a":4}\n\n'), (5, "id: g.5\n"))
        ),
        outbox=({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"},),
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def document(*sessions: SessionRecord, written_at: float = NOW) -> StateDocument:
    return StateDocument(
        written_at=written_at,
        writer="mcpd test",
        lists={"tools": "t1", "prompts": "p1", "resources": "r1"},
        request_state_nonces={"nonce-a": NOW + 60},
        sessions=sessions,
    )


def test_a_document_round_trips_exactly() -> None:
    original = document(session(1), session(2, principal=None, get_stream=None, outbox=()))
    encoded = encode_state(original, KEY, ROOMY)
    assert (encoded.saved, encoded.trimmed, encoded.too_large, encoded.over_budget) == (2, 0, 0, 0)
    decoded = decode_state(encoded.data, KEY)
    # The most recently active first; otherwise the same records, principal included.
    assert {s.id: s for s in decoded.sessions} == {s.id: s for s in original.sessions}
    assert decoded.sessions[0].principal == "key:client-1"
    assert decoded.sessions[1].principal is None
    assert dataclasses.replace(decoded, sessions=()) == dataclasses.replace(original, sessions=())


def test_the_file_is_a_header_line_and_a_json_body() -> None:
    data = encode_state(document(session()), KEY, ROOMY).data
    line, body = data.split(b"\n", 1)
    header = orjson.loads(line)
    assert header["format"] == "mcpd-state"
    assert header["version"] == 1
    assert header["key_id"] == key_id(KEY)
    assert header["body_bytes"] == len(body)
    assert orjson.loads(body)["sessions"][0]["id"] == "session-1"
    assert KEY.hex() not in data.decode()
    assert key_id(KEY) != KEY.hex()[:16]


def reason_for(data: bytes, key: bytes = KEY) -> str:
    with pytest.raises(StateRejected) as caught:
        decode_state(data, key)
    return caught.value.reason


def test_a_truncated_file_is_refused() -> None:
    data = encode_state(document(session()), KEY, ROOMY).data
    assert reason_for(data[:-1]) == "truncated"
    assert reason_for(data[:40]) == "truncated"  # inside the header line
    assert reason_for(b"") == "unreadable"
    assert reason_for(data + b"more") == "tampered"


def test_a_tampered_body_is_refused() -> None:
    data = encode_state(document(session()), KEY, ROOMY).data
    forged = data.replace(b'"principal":"key:client-1"', b'"principal":"key:client-9"')
    assert forged != data
    assert reason_for(forged) == "tampered"


def test_a_file_written_under_another_key_is_foreign() -> None:
    data = encode_state(document(session()), b"x" * 32, ROOMY).data
    assert reason_for(data) == "foreign"


def test_a_file_of_another_kind_or_version_is_refused() -> None:
    data = encode_state(document(session()), KEY, ROOMY).data
    line, body = data.split(b"\n", 1)
    header = orjson.loads(line)
    assert reason_for(b"not json at all\n{}") == "unreadable"
    assert reason_for(b'{"format": "other"}\n{}') == "unreadable"
    later = orjson.dumps({**header, "version": 2}) + b"\n" + body
    assert reason_for(later) == "unsupported"


def test_an_authentic_body_of_the_wrong_shape_is_invalid() -> None:
    """Written under our key but not by this version's writer (a bug, a future field type)."""
    good = encode_state(document(session()), KEY, ROOMY).data
    body = orjson.loads(good.split(b"\n", 1)[1])
    body["sessions"][0]["post_streams"] = "seven"
    raw = orjson.dumps(body)
    header = orjson.loads(encode_state(document(), KEY, ROOMY).data.split(b"\n", 1)[0])
    header.update(body_bytes=len(raw), mac=records._mac(KEY, raw))  # signed as ours
    assert reason_for(orjson.dumps(header) + b"\n" + raw) == "invalid"


def test_sessions_past_their_idle_deadline_are_not_usable() -> None:
    doc = document(session(1, idle_deadline=NOW + 10), session(2, idle_deadline=NOW - 1))
    found = usable(doc, NOW, max_age=3600)
    assert [s.id for s in found.sessions] == ["session-1"]
    assert (found.expired, found.too_old) == (1, 0)


def test_a_file_older_than_the_max_age_is_not_used() -> None:
    doc = document(session(1, idle_deadline=NOW + 10_000), written_at=NOW - 3601)
    found = usable(doc, NOW, max_age=3600)
    assert found.sessions == ()
    assert found.too_old == 1
    # Nor one from the future (a clock that jumped back).
    assert usable(document(session(1), written_at=NOW + 3601), NOW, max_age=3600).too_old == 1


def test_a_big_session_loses_its_oldest_replay_events_then_messages_first() -> None:
    events = tuple((n, f"id: g.{n}\ndata: {'x' * 200}\n\n") for n in range(1, 41))
    outbox = tuple({"n": n, "pad": "y" * 200} for n in range(10))
    record = session(get_stream=ReplayRecord(40, events), outbox=outbox)
    whole = len(orjson.dumps(record))
    data, cut = fit_session(record, whole // 2)
    assert cut
    assert data is not None
    assert len(data) <= whole // 2
    kept = orjson.loads(data)
    numbers = [n for n, _ in kept["get_stream"]["events"]]
    assert numbers == list(range(41 - len(numbers), 41))  # the newest, contiguous
    assert kept["get_stream"]["seq"] == 40  # event ids go on where they were
    assert kept["outbox"] == []  # the events alone fill the room


def test_a_session_too_big_even_bare_is_left_out() -> None:
    huge = session(client_info={"name": "x" * 10_000})
    data, cut = fit_session(huge, 4096)
    assert data is None
    assert cut
    encoded = encode_state(document(huge, session(2)), KEY, Budget(1 << 20, 4096))
    assert (encoded.saved, encoded.too_large) == (1, 1)
    assert [s.id for s in decode_state(encoded.data, KEY).sessions] == ["session-2"]


def test_the_file_bound_keeps_the_most_recently_active_sessions() -> None:
    records = [session(n, idle_deadline=NOW + n, get_stream=None, outbox=()) for n in range(200)]
    one = len(orjson.dumps(records[0]))
    budget = Budget(max_bytes=4096 + 200 + 20 * (one + 1), session_bytes=1 << 16)
    encoded = encode_state(document(*records), KEY, budget)
    assert len(encoded.data) <= budget.max_bytes
    assert 0 < encoded.saved < 200
    assert encoded.saved + encoded.over_budget == 200
    kept = [s.idle_deadline for s in decode_state(encoded.data, KEY).sessions]
    assert kept == sorted((NOW + n for n in range(200)), reverse=True)[: encoded.saved]


def test_nonces_take_at_most_half_the_file_the_latest_to_expire_kept() -> None:
    nonces = {f"n{i:05d}": NOW + i for i in range(1000)}
    doc = dataclasses.replace(document(), request_state_nonces=nonces)
    encoded = encode_state(doc, KEY, Budget(max_bytes=16_000, session_bytes=1 << 16))
    kept = decode_state(encoded.data, KEY).request_state_nonces
    assert 0 < len(kept) < 1000
    assert encoded.nonces_dropped == 1000 - len(kept)
    assert min(kept.values()) > max(set(nonces.values()) - set(kept.values()))
