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

TCP cannot tell a half-close from a full close (both are a FIN); only a write can: a peer
that closed its socket answers it with RST. So at the EOF the app is told
(``HALF_CLOSED``, an extension message on its ``receive``) and writes at once something
harmless on its response (mcpd: an SSE comment, switching a pending answer to SSE); the
reset that a closed peer sends back is seen within ``RESET_POLL`` (polled from
``FIRST_POLL`` up), and the app then gets ``http.disconnect``: a client that closed mid-call
is still noticed within about a round trip. HTTP/2 is not affected: there the end of a
request is a stream's END_STREAM, and a TCP EOF ends the connection as before.
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

# A half-closed connection with a response pending checks for the peer's reset first after
# FIRST_POLL, then ever less often, up to every RESET_POLL: the app's probe is written right
# after the EOF, so a closed peer's RST usually arrives within the first polls.
FIRST_POLL: Final = 0.0005
RESET_POLL: Final = 0.05
# The message the app's receive() gets after such an EOF (ASGI lets servers add their own).
HALF_CLOSED: Final = "mcpd.half_closed"


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


async def tell_half_closed(protocol: Any) -> None:
    """Let the app know the client sent EOF after its request (see the module docstring)."""
    inner = getattr(protocol, "protocol", protocol)
    stream = getattr(inner, "stream", None)
    app_put = getattr(stream, "app_put", None)
    if app_put is not None:
        await app_put({"type": HALF_CLOSED})


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
    # One scheduler pass first: the probe goes out in it, and over loopback its RST is
    # usually back before the pass ends (a first sleep made every such cancel ~1.5 ms).
    await trio.lowlevel.checkpoint()
    pause = FIRST_POLL
    while not transport.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
        # A pending error cannot be waited for, only polled (it is read once).
        await trio.sleep(pause)
        pause = min(pause * 2, RESET_POLL)


def install() -> None:
    """Send reason phrases (idempotent: replaces, never wraps)."""
    H11Protocol._send_h11_event = _send_h11_event  # type: ignore[method-assign]
