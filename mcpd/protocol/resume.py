"""Resumable SSE streams (legacy Streamable HTTP, 2025-03-26 on): event ids and replay logs.

Every event of a session's streams gets an id ``<stream>.<n>``: the stream key (``g`` for the
GET stream, ``p<k>`` for the k-th POST stream of the session) and a counter, so ids are unique
across the session and name the stream a client resumes (``Last-Event-ID`` on a GET). Each
stream keeps its last events in a bounded log; a resume replays what followed the given id,
from that stream only.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Final

from mcpd.protocol import sse

# Events and bytes kept per stream for replay; a client further behind cannot resume without
# a gap. (A count alone is no bound: 512 events of 20 kB are 10 MB.)
LOG_LIMIT: Final = 512
LOG_BYTES: Final = 1024 * 1024
# Milliseconds a client should wait before reconnecting (the SSE ``retry`` field).
RETRY_MS: Final = 1000
# Priming events (an id and empty data) only reach clients that expect them: older clients
# fail on an event with empty data.
PRIMING_SINCE: Final = "2025-11-25"
RESUMABLE_SINCE: Final = "2025-03-26"

_EVENT_ID: Final = re.compile(r"([gp][0-9]*)\.([0-9]{1,18})")


class EventLog:
    """The replayable events of one SSE stream: the newest ``limit`` events, at most
    ``max_bytes`` of them (an event larger than that is sent but not kept)."""

    __slots__ = ("_events", "_limit", "_max_bytes", "_seq", "bytes", "key")

    def __init__(self, key: str, limit: int = LOG_LIMIT, max_bytes: int = LOG_BYTES) -> None:
        self.key = key
        self._events: deque[tuple[int, bytes]] = deque()
        self._seq = 0
        self._max_bytes = max_bytes
        self.bytes = 0  # framed bytes kept
        self._limit = limit

    def record(self, data: bytes) -> bytes:
        """Frame ``data`` as the stream's next event (with its id) and keep it."""
        self._seq += 1
        framed = sse.event(data, event_id=f"{self.key}.{self._seq}")
        self._events.append((self._seq, framed))
        self.bytes += len(framed)
        while self._events and (self.bytes > self._max_bytes or len(self._events) > self._limit):
            self.bytes -= len(self._events.popleft()[1])
        return framed

    def priming(self, retry_ms: int = RETRY_MS) -> bytes:
        """The event that opens a stream: an id to resume from, empty data, a retry delay."""
        return f"id: {self.key}.{self._seq}\nretry: {retry_ms}\ndata: \n\n".encode()

    @property
    def seq(self) -> int:
        """The number of the last event recorded (0: none yet)."""
        return self._seq

    def kept(self) -> list[tuple[int, bytes]]:
        """The events still kept for replay, oldest first, each with its number."""
        return list(self._events)

    @classmethod
    def resumed(
        cls,
        key: str,
        seq: int,
        events: list[tuple[int, bytes]],
        limit: int = LOG_LIMIT,
        max_bytes: int = LOG_BYTES,
    ) -> EventLog:
        """A log that goes on from event ``seq`` with ``events`` kept (a restart's).

        Numbers go on from ``seq``, so an id the client already has never names a new event.
        """
        log = cls(key, limit, max_bytes)
        log._seq = seq
        for number, framed in events:
            if number <= seq:
                log._events.append((number, framed))
                log.bytes += len(framed)
        while log._events and (log.bytes > max_bytes or len(log._events) > limit):
            log.bytes -= len(log._events.popleft()[1])
        return log

    def after(self, seq: int) -> list[bytes] | None:
        """The events that followed event ``seq``; None if some of them are no longer kept."""
        if seq > self._seq:
            return None
        missed = [framed for number, framed in self._events if number > seq]
        expected = self._seq - seq
        return missed if len(missed) == expected else None


def parse_event_id(value: str) -> tuple[str, int] | None:
    """``"p3.17"`` -> ``("p3", 17)``; None for ids this server did not issue."""
    found = _EVENT_ID.fullmatch(value.strip())
    if found is None:
        return None
    return found.group(1), int(found.group(2))


def retry_field(retry_ms: int = RETRY_MS) -> bytes:
    """A bare ``retry`` field: sent before the server closes a connection on purpose."""
    return f"retry: {retry_ms}\n\n".encode()
