"""Read an SSE response event by event while it is still open (GET, listen, a POST's stream).

``parse_sse`` in ``support.client`` parses a finished body; tests that must answer the server
mid-stream (a question for the client) or watch a long-lived stream read it incrementally.
Every wait is bounded by the HTTP client's read timeout and ``WAIT``: a hang becomes a failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from support.daemon import WAIT

Message = dict[str, Any]


class EventReader:
    """The JSON-RPC messages of an open SSE response, in order (comments and empty events,
    such as keep-alives and priming events, are skipped)."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.headers["content-type"].startswith("text/event-stream"), response.headers
        self.response = response
        self._lines = response.iter_lines()
        self.seen: list[Message] = []
        self.ended = False

    def __iter__(self) -> Iterator[Message]:
        while (message := self.next()) is not None:
            yield message

    def next(self) -> Message | None:
        """The next message, or None once the stream has ended."""
        data: list[str] = []
        deadline = time.monotonic() + WAIT
        for line in self._lines:
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif line == "" and data:
                message: Message = json.loads("".join(data))
                self.seen.append(message)
                return message
            elif line == "":
                data = []
            assert time.monotonic() < deadline, f"no message within {WAIT}s"
        self.ended = True
        return None

    def until(self, match: Callable[[Message], bool]) -> Message:
        """Read up to and including the first message that matches; fails if the stream ends."""
        for message in self:
            if match(message):
                return message
        raise AssertionError(f"the stream ended without the expected message; saw {self.seen}")

    def rest(self) -> list[Message]:
        """Every remaining message, until the server ends the stream."""
        return list(self)


def is_method(method: str) -> Callable[[Message], bool]:
    return lambda message: message.get("method") == method


def is_response(request_id: object) -> Callable[[Message], bool]:
    return lambda message: message.get("id") == request_id and "method" not in message
