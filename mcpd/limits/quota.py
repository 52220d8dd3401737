"""A quota hit inside a tool: ``mcpd.RateLimited``, and the ``isError`` result it becomes.

mcpd's own limits refuse a request before it runs (HTTP 429). A tool that depends on a
metered upstream (an API with its own rate limit, a licence pool) learns only while running
that it must wait; it raises ``RateLimited`` and the model reads a result that says when to
try again, while a client program finds the same hint in ``_meta``.
"""

from __future__ import annotations

import math
from typing import Any, Final

from mcpd.plugin.errors import ToolError
from mcpd.protocol.errors import retry_after_seconds

# The result's _meta key with the whole seconds to wait. mcpd's own prefix: MCP reserves
# only prefixes whose second label is "modelcontextprotocol" or "mcp".
RETRY_AFTER_META: Final = "mcpd/retryAfterSeconds"


class RateLimited(ToolError):
    """Raise it when a quota your tool depends on is used up; the call ends as ``isError``
    with your message and "retry after N seconds" (and the seconds in the result's
    ``_meta["mcpd/retryAfterSeconds"]``).

    ``retry_after`` is in seconds (a float is fine; it is rounded up), or None when unknown.

    Example::

        @mcpd.tool
        async def weather(city: str) -> str:
            response = await http.get(API, params={"q": city})
            if response.status_code == 429:
                wait = float(response.headers.get("retry-after", 60))
                raise mcpd.RateLimited("the weather service's quota is used up", retry_after=wait)
            return response.text
    """

    def __init__(self, message: str = "rate limited", *, retry_after: float | None = None) -> None:
        if retry_after is not None and not (math.isfinite(retry_after) and retry_after >= 0):
            raise ValueError(f"retry_after must be a finite number >= 0, got {retry_after!r}")
        self.retry_after = retry_after
        self.reason = message  # the tool's own words, without the hint
        # The hint is part of the message, so that wherever the message goes the hint goes.
        super().__init__(f"{message}; {_hint(self.retry_after_seconds)}")

    @property
    def retry_after_seconds(self) -> int | None:
        """Whole seconds to wait (rounded up, at least 1), None when the tool did not say."""
        return None if self.retry_after is None else retry_after_seconds(self.retry_after)


def rate_limited_result(exc: RateLimited) -> dict[str, Any]:
    """The ``CallToolResult`` for a ``RateLimited`` tool: its message and the retry hint.

    Example::

        >>> result = rate_limited_result(RateLimited("quota used up", retry_after=1.5))
        >>> result["content"][0]["text"], result["isError"]
        ('quota used up; retry after 2 seconds', True)
        >>> result["_meta"]
        {'mcpd/retryAfterSeconds': 2}
    """
    result: dict[str, Any] = {"content": [{"type": "text", "text": exc.message}], "isError": True}
    seconds = exc.retry_after_seconds
    if seconds is not None:
        result["_meta"] = {RETRY_AFTER_META: seconds}
    return result


def _hint(seconds: int | None) -> str:
    if seconds is None:
        return "retry later"
    return f"retry after {seconds} second{'' if seconds == 1 else 's'}"
