"""``Upgrade: h2c`` on the lean h2 path: the HTTP/1.1 request that asks for it, read again from
the bytes the lean HTTP/1.1 path handed over, and the ``101 Switching Protocols`` answer.

As hypercorn 0.18.0 does it (``protocol/h11.py``): a request carrying ``Upgrade: h2c`` and no
body is answered with 101 and becomes stream 1 of the HTTP/2 connection, half-closed by the
client, its headers those of the HTTP/1.1 request (``:authority`` from ``host``). One with a
body (hypercorn then ignores the upgrade and answers over HTTP/1.1), or without the
``HTTP2-Settings`` header the upgrade needs (RFC 9113 dropped it; RFC 7540, 3.2.1), stays
hypercorn's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import h11

_SWITCHING: Final = b"Switching Protocols"
_BODY_HEADERS: Final = frozenset({b"content-length", b"transfer-encoding"})


@dataclass(frozen=True, slots=True)
class Upgrade:
    """An ``Upgrade: h2c`` request: its h2 headers, the client's settings, what followed it."""

    headers: list[tuple[bytes, bytes]]
    settings: bytes
    rest: bytes
    h11: h11.Connection  # the request read: it writes the 101


def parse(data: bytes) -> Upgrade | None:
    """The upgrade ``data`` asks for, if the lean h2 path takes it (None: hypercorn's)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        request, end = conn.next_event(), conn.next_event()
    except h11.RemoteProtocolError:
        return None
    if type(request) is not h11.Request or type(end) is not h11.EndOfMessage:
        return None
    fields = dict(request.headers)  # h11 lowercases the names
    if fields.get(b"upgrade", b"").strip().lower() != b"h2c" or b"http2-settings" not in fields:
        return None
    if _BODY_HEADERS.intersection(fields):
        return None
    return Upgrade(_h2_headers(request), fields[b"http2-settings"], conn.trailing_data[0], conn)


def _h2_headers(request: h11.Request) -> list[tuple[bytes, bytes]]:
    headers = [(b":method", request.method), (b":path", request.target)]
    for name, value in request.headers:
        if name == b"host":
            headers.append((b":authority", value))
        headers.append((name, value))
    return headers


def switching(upgrade: Upgrade, response_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The 101 answer, as hypercorn writes it (with the standard reason phrase)."""
    headers = [*response_headers, (b"connection", b"upgrade"), (b"upgrade", b"h2c")]
    head = h11.InformationalResponse(status_code=101, headers=headers, reason=_SWITCHING)
    return upgrade.h11.send(head) or b""
