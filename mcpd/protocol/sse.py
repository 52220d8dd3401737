"""Server-Sent Events framing (bytes only; no I/O)."""

from __future__ import annotations

from typing import Final

# A comment line without the blank line that would end an event. The blank line is harmless
# by the SSE standard (no data, no event), but httpx-sse, which the Python SDK uses, emits an
# empty-data event for it once any event carried an id, and mcp 1.x then logs a parse error
# for every keep-alive of a resumable stream.
KEEPALIVE: Final = b": keep-alive\n"

HEADERS: Final = (
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    # Reverse proxies (nginx) buffer responses unless told not to; SSE must flow at once.
    (b"x-accel-buffering", b"no"),
)


def event(data: bytes, *, name: str = "message", event_id: str | None = None) -> bytes:
    """One SSE event carrying a single-line JSON payload."""
    head = f"event: {name}\n" if event_id is None else f"id: {event_id}\nevent: {name}\n"
    # JSON produced by our serializer never contains raw newlines, so one data line suffices.
    return head.encode() + b"data: " + data + b"\n\n"
