"""Replay logs of resumable streams: ids, what a resume gets, and their bounds."""

from __future__ import annotations

from mcpd.protocol.resume import EventLog, parse_event_id


def test_a_resume_gets_exactly_what_followed() -> None:
    log = EventLog("p1")
    framed = [log.record(f'{{"n":{n}}}'.encode()) for n in range(1, 4)]
    assert framed[0].startswith(b"id: p1.1\n")
    assert log.after(1) == framed[1:]
    assert log.after(3) == []
    assert log.after(4) is None  # an id from the future was never issued
    assert parse_event_id("p1.2") == ("p1", 2)
    assert parse_event_id("x.1") is None


def test_the_log_is_bounded_in_bytes_not_only_in_events() -> None:
    log = EventLog("p2", max_bytes=1000)
    for _ in range(10):
        log.record(b"x" * 300)  # each framed event is a little over 300 bytes
    assert log.bytes <= 1000
    assert log.after(9) is not None  # the newest are kept...
    assert log.after(1) is None  # ...the oldest are gone: that resume would have a gap


def test_an_event_larger_than_the_log_is_sent_but_not_kept() -> None:
    log = EventLog("g", max_bytes=100)
    framed = log.record(b"y" * 500)
    assert framed.endswith(b"y" * 500 + b"\n\n")
    assert log.bytes == 0
    assert log.after(0) is None


def test_the_count_bound_still_applies() -> None:
    log = EventLog("p3", limit=4)
    for n in range(10):
        log.record(str(n).encode())
    assert log.after(6) is not None
    assert log.after(5) is None
