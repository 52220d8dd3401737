"""HTTP/1.1 fixes for hypercorn 0.18.0's ``H11Protocol``: reason phrases, and half-closed requests.

Reason phrases. hypercorn builds every ``h11.Response`` without a reason, so each status line
reads ``HTTP/1.1 400 `` (an empty phrase, which clients print as ``'400 '``, and which some
load generators count as a failure). ``install`` routes hypercorn's one choke point for h11
events, ``H11Protocol._send_h11_event``, through ``with_reason``, which gives responses that
lack a phrase the standard one (``HTTPStatus``); a code without one keeps the empty phrase.

Half-closed requests. A client may send a complete request and then ``shutdown(SHUT_WR)``:
HTTP/1.1 lets it (the request is delimited by its own framing, not by the connection), and
it still reads the answer. hypercorn treats the EOF as a disconnect: the app is told
``http.disconnect`` and is cancelled (mcpd answered an empty 200). ``answer_pending`` tells
the connection's reader (``hypercorn_idle``) that the EOF came after a complete request whose
response is not finished; the reader then stops reading and waits for the server side to
close (the response done, or a write failed) or for the peer's reset (``wait_for_reset``),
instead of reporting the close. A real disconnect still ends the request: a reset, a failed
or timed-out write, or an EOF in the middle of a request (which h11 answers with 400).

The price: TCP cannot tell a half-close from a full close (both are a FIN). A client that
closes its socket in the middle of a call is now noticed when the server next writes to it
(the peer's kernel answers with RST, seen within ``RESET_POLL``), not at its FIN; for a
call that writes nothing until its result, that is mcpd's first SSE keep-alive. HTTP/2 is
not affected: there the end of a request is a stream's END_STREAM, and a TCP EOF ends the
connection as before.
"""

from __future__ import annotations

import socket
from http import HTTPStatus
from typing import Any, Final

import h11
import trio
from hypercorn.protocol.h11 import H11Protocol

_UPSTREAM_SEND_H11_EVENT = H11Protocol._send_h11_event

PHRASES: Final = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}

# How often a half-closed connection with a response pending checks for the peer's reset.
RESET_POLL: Final = 0.05


def with_reason(event: Any) -> Any:
    """``event``, with the standard reason phrase if it is a response that has none."""
    if type(event) not in (h11.Response, h11.InformationalResponse) or event.reason:
        return event
    phrase = PHRASES.get(event.status_code)
    if phrase is None:
        return event
    # _parsed=True: the headers are already normalized (and kept as they are).
    return type(event)(
        headers=event.headers,
        status_code=event.status_code,
        http_version=event.http_version,
        reason=phrase,
        _parsed=True,
    )


async def _send_h11_event(self: H11Protocol, event: Any) -> None:
    await _UPSTREAM_SEND_H11_EVENT(self, with_reason(event))


def answer_pending(protocol: Any) -> bool:
    """After the client's EOF: is a complete HTTP/1.1 request still being answered?

    ``protocol`` is hypercorn's ``ProtocolWrapper`` (or what it wraps). h11 has seen the EOF
    (``their_state`` is CLOSED, which an EOF inside a request never gives: that is an error)
    and a request's stream is still open.
    """
    inner = getattr(protocol, "protocol", protocol)
    if not isinstance(inner, H11Protocol) or inner.stream is None:
        return False
    return getattr(inner.connection, "their_state", None) is h11.CLOSED


async def wait_for_reset(stream: trio.abc.Stream) -> None:
    """Return once the half-closed peer has reset the connection (its RST sets SO_ERROR).

    After the peer's EOF the socket is readable for good, so readiness cannot say more; a
    pending socket error can. A client that fully closed (rather than half-closed) answers our
    next write with RST, which this notices within ``RESET_POLL`` seconds, without waiting for
    a second write to fail.
    """
    transport: Any = getattr(stream, "transport_stream", stream)  # the TCP stream under TLS
    if not isinstance(transport, trio.SocketStream):
        await trio.sleep_forever()
    while True:  # a pending error cannot be waited for, only polled (it is read once)
        await trio.sleep(RESET_POLL)
        if transport.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            return


def install() -> None:
    """Send reason phrases (idempotent: replaces, never wraps)."""
    H11Protocol._send_h11_event = _send_h11_event  # type: ignore[method-assign]
