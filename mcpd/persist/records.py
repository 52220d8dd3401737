"""The restart state's records and their file format: versioned, authenticated JSON.

Pure: records and a key in, bytes out, and back; no file system, no clock of its own.

A state file is one header line and a body, both JSON::

    {"format": "mcpd-state", "version": 1, "key_id": "…", "body_bytes": 1234, "mac": "…"}
    {"written_at": 1764590000.5, "writer": "mcpd 0.9.0", "lists": {…}, "sessions": […], …}

``mac`` is HMAC-SHA256 under the state key (``mcpd.persist.keyring``) over the version tag and
the body's exact bytes, so nothing has to be re-serialised to check it and another program can
read and write the format. ``key_id`` names the key without revealing it: a file written
under another key (another daemon's state directory, or a file put there by someone else) is
told apart from one altered after it was written. The body's fields are those of
``StateDocument``; wall-clock times are Unix seconds, so that the file means the same to the
next process (or, later, to another instance sharing the directory).

Every reason a file is refused is a ``StateRejected`` with a short ``reason``
(``truncated``, ``unreadable``, ``unsupported``, ``foreign``, ``tampered``, ``invalid``); the
caller logs it and starts without the state, never failing because of it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson
from pydantic import TypeAdapter, ValidationError

FORMAT: Final = "mcpd-state"
VERSION: Final = 1
# Bytes the header line and the body's own fields take at most, besides sessions and nonces.
OVERHEAD: Final = 4096


class StateRejected(Exception):
    """A state file that is not used; ``reason`` says why in one word (see the module)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """A stream's replay log: the number of its last event and the events still kept,
    each ``(number, the framed SSE event as sent)``."""

    seq: int
    events: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """A 2024-11-05 SSE session's connection, kept open in systemd's fd store across the
    restart: the id its client POSTs with (``session_id``), and the name its descriptor was
    stored under. The next process restores the session only if that descriptor came back."""

    id: str
    fd_name: str


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What a handshake-era session needs to go on in the next process."""

    id: str
    principal: str | None  # the owner's stable key; None: anonymous (no auth)
    protocol_version: str
    client_capabilities: dict[str, Any]
    client_info: dict[str, Any]
    log_level: str
    subscriptions: tuple[str, ...]
    initialized: bool  # notifications/initialized was seen
    idle_deadline: float  # wall clock: when it expires if nothing happens on it
    post_streams: int  # POST stream keys issued (p1…pN): the next process goes on from N
    client_requests: int  # server-to-client request ids issued (mcpd-1…N): likewise
    get_stream: ReplayRecord | None = None  # the GET stream's event ids and replay log
    outbox: tuple[dict[str, Any], ...] = ()  # messages waiting for a GET stream
    limit_key: str | None = None  # what [limits] counts the session against
    connection: ConnectionRecord | None = None  # an HTTP+SSE session: its kept connection


@dataclass(frozen=True, slots=True)
class StateDocument:
    """A whole state file's body."""

    written_at: float
    writer: str
    # Digests of the tool, prompt and resource lists the sessions last saw: the next process
    # tells restored sessions about lists that differ (an upgrade changed the tools).
    lists: dict[str, str]
    # Used 2026 requestState nonces with their expiry (wall clock), so single use holds
    # across a restart.
    request_state_nonces: dict[str, float]
    sessions: tuple[SessionRecord, ...]


@dataclass(frozen=True, slots=True)
class Budget:
    """Bounds on what is written: the whole file, and one session's entry."""

    max_bytes: int
    session_bytes: int


@dataclass(frozen=True, slots=True)
class Encoded:
    """A state file's bytes and what had to be left out to respect the budget."""

    data: bytes
    saved: int  # sessions written
    trimmed: int  # sessions written without some of their replay events or queued messages
    too_large: int  # sessions left out: bigger than one entry may be even without those
    over_budget: int  # sessions left out: the file was full (the least recently active go)
    nonces_dropped: int  # used nonces left out (the soonest to expire), the file being full


_DOCUMENT: Final = TypeAdapter(StateDocument)


def key_id(key: bytes) -> str:
    """A name for ``key`` that does not reveal it."""
    return hashlib.sha256(b"mcpd-state-key-id\0" + key).hexdigest()[:16]


def _mac(key: bytes, body: bytes) -> str:
    return hmac.new(key, f"{FORMAT}/{VERSION}\n".encode() + body, hashlib.sha256).hexdigest()


# -- encoding ---------------------------------------------------------------------------------


def encode_state(document: StateDocument, key: bytes, budget: Budget) -> Encoded:
    """The file for ``document``, within ``budget``: the most recently active sessions first
    (latest idle deadline), each cut down to ``budget.session_bytes`` if it must be."""
    nonces, nonces_dropped = _fit_nonces(document.request_state_nonces, budget.max_bytes)
    head = {
        "written_at": document.written_at,
        "writer": document.writer,
        "lists": document.lists,
        "request_state_nonces": nonces,
    }
    room = budget.max_bytes - OVERHEAD - len(orjson.dumps(head))
    entries: list[bytes] = []
    trimmed = too_large = over_budget = 0
    for record in sorted(document.sessions, key=lambda r: r.idle_deadline, reverse=True):
        data, cut = fit_session(record, budget.session_bytes)
        if data is None:
            too_large += 1
        elif len(data) + 1 > room:
            over_budget += 1
        else:
            entries.append(data)
            room -= len(data) + 1
            trimmed += cut
    body = orjson.dumps(head)[:-1] + b',"sessions":[' + b",".join(entries) + b"]}"
    header = {
        "format": FORMAT,
        "version": VERSION,
        "key_id": key_id(key),
        "body_bytes": len(body),
        "mac": _mac(key, body),
    }
    data = orjson.dumps(header) + b"\n" + body
    return Encoded(data, len(entries), trimmed, too_large, over_budget, nonces_dropped)


def fit_session(record: SessionRecord, limit: int) -> tuple[bytes | None, bool]:
    """``record`` encoded in at most ``limit`` bytes, and whether it was cut to fit.

    What goes first is what a client can best do without: the oldest replay events of the
    GET stream (a resume further back then gets 410, as it would once the log had moved on),
    then the oldest queued messages. A session whose identity alone is bigger (a client that
    sent huge capabilities or client info) is not kept: None.
    """
    data = orjson.dumps(record)
    if len(data) <= limit:
        return data, False
    stream = record.get_stream
    bare = replace(
        record, outbox=(), get_stream=None if stream is None else replace(stream, events=())
    )
    base = orjson.dumps(bare)
    room = limit - len(base)
    if room < 0:
        return None, True
    events = _newest(stream.events if stream is not None else (), room)
    room -= sum(len(orjson.dumps(event)) + 1 for event in events)
    outbox = _newest(record.outbox, room)
    kept_stream = None if stream is None else replace(stream, events=tuple(events))
    data = orjson.dumps(replace(record, get_stream=kept_stream, outbox=tuple(outbox)))
    if len(data) > limit:  # the estimate's separators: keep nothing optional then
        data = base
    return data, True


def _newest(items: Iterable[Any], room: int) -> list[Any]:
    """The newest ``items`` whose encodings fit in ``room`` bytes, in their original order."""
    kept: list[Any] = []
    for item in reversed(list(items)):
        cost = len(orjson.dumps(item)) + 1
        if cost > room:
            break
        kept.append(item)
        room -= cost
    kept.reverse()
    return kept


def _fit_nonces(nonces: dict[str, float], max_bytes: int) -> tuple[dict[str, float], int]:
    """The nonces that fit in half the file (the latest to expire first); how many did not.

    Half, so that sessions always have room; a nonce left out lets its state be used once
    more, within its expiry.
    """
    room = max_bytes // 2
    kept: dict[str, float] = {}
    for nonce, expiry in sorted(nonces.items(), key=lambda item: item[1], reverse=True):
        cost = len(nonce) + 32  # "nonce":1764590000.123, with quotes and separators
        if cost > room:
            break
        kept[nonce] = expiry
        room -= cost
    return kept, len(nonces) - len(kept)


# -- decoding ---------------------------------------------------------------------------------


def decode_state(data: bytes, key: bytes) -> StateDocument:
    """The document in ``data``; ``StateRejected`` if it is not a whole, authentic file of
    this format and version written under ``key``."""
    line, newline, body = data.partition(b"\n")
    if not newline:
        if line.startswith(b'{"format":"%s"' % FORMAT.encode()):
            raise StateRejected("truncated", "the file ends inside its header")
        raise StateRejected("unreadable", "not an mcpd state file")
    header = _header(line)
    if header.get("key_id") != key_id(key):
        raise StateRejected("foreign", "written under another key (another state directory?)")
    expected = header.get("body_bytes")
    if not isinstance(expected, int) or len(body) > expected:
        raise StateRejected("tampered", f"the body has {len(body)} bytes, not {expected}")
    if len(body) < expected:
        raise StateRejected("truncated", f"the body has {len(body)} of {expected} bytes")
    mac = header.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(key, body)):
        raise StateRejected("tampered", "the body does not match its MAC")
    try:
        return _DOCUMENT.validate_json(body, strict=True)
    except ValidationError as exc:
        raise StateRejected("invalid", f"{exc.error_count()} bad fields") from None


def _header(line: bytes) -> dict[str, Any]:
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise StateRejected("unreadable", "the header is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise StateRejected("unreadable", "not an mcpd state file")
    if header.get("version") != VERSION:
        version = header.get("version")
        raise StateRejected("unsupported", f"format version {version!r}, this mcpd reads {VERSION}")
    return header


@dataclass(frozen=True, slots=True)
class Usable:
    """The sessions of a document still worth restoring, and how many were not."""

    sessions: tuple[SessionRecord, ...]
    expired: int  # idle past their deadline
    too_old: int  # in a file older than max_age


def usable(document: StateDocument, now: float, max_age: float) -> Usable:
    """The sessions to restore at wall-clock ``now``: none from a file older than
    ``max_age`` seconds (or from the future: a clock that jumped), none idle past its
    deadline."""
    age = now - document.written_at
    if age > max_age or age < -max_age:
        return Usable((), 0, len(document.sessions))
    live = tuple(s for s in document.sessions if s.idle_deadline > now)
    return Usable(live, len(document.sessions) - len(live), 0)
