"""What a running tool can do besides returning: report progress, log, notice cancellation.

The runtime builds one ``Context`` per call around a ``RequestChannel``, the narrow interface
to the request being served. Tests (and plugin authors' tests) can build a ``Context`` around
an in-memory channel instead: see ``mcpd.plugin.testing``.
"""

from __future__ import annotations

import math
from typing import Any, Final, Protocol

import trio
from pydantic_core import to_jsonable_python

from mcpd.protocol.meta import LOG_LEVELS

PROGRESS_MESSAGE_SINCE: Final = "2025-03-26"


class RequestChannel(Protocol):
    """The request a tool serves, as the ``Context`` needs it.

    The runtime decides everything protocol-specific behind it: which revision applies,
    whether a log level is wanted (``logging/setLevel`` or the request's ``_meta``) and where
    notifications go (nothing is sent once the request is over).
    """

    @property
    def request_id(self) -> str | int: ...

    @property
    def revision(self) -> str: ...

    @property
    def progress_token(self) -> str | int | None: ...

    @property
    def session_id(self) -> str | None: ...

    def wants_log(self, level: str) -> bool: ...

    async def notify(self, method: str, params: dict[str, Any]) -> None: ...


class Context:
    """A tool's handle on its own call. Ask for it by annotating a parameter ``mcpd.Context``.

    The parameter is filled in by mcpd and never appears in the tool's input schema.

    Example::

        @mcpd.tool
        async def crawl(url: str, ctx: mcpd.Context) -> int:
            pages = await list_pages(url)
            for done, page in enumerate(pages, 1):
                await fetch(page)
                await ctx.report_progress(done, len(pages), message=page)
            await ctx.log("info", {"crawled": len(pages)})
            return len(pages)
    """

    __slots__ = ("_channel", "_last_progress")

    def __init__(self, channel: RequestChannel) -> None:
        self._channel = channel
        self._last_progress: float | None = None

    @property
    def request_id(self) -> str | int:
        """The JSON-RPC id of the ``tools/call`` request being served."""
        return self._channel.request_id

    @property
    def session_id(self) -> str | None:
        """The MCP session of the call, or None (stateless 2026-07-28 requests have none)."""
        return self._channel.session_id

    @property
    def revision(self) -> str:
        """The protocol revision this call is served under, e.g. ``"2025-11-25"``."""
        return self._channel.revision

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Tell the client how far along the call is; a no-op unless it asked for progress.

        ``progress`` must grow with every call (the protocol requires it); ``total`` is
        optional when the end is unknown. ``message`` reaches clients from 2025-03-26 on.

        Example::

            await ctx.report_progress(3, 10, message="3 of 10 files")
        """
        _check_number("progress", progress)
        if total is not None:
            _check_number("total", total)
        if self._last_progress is not None and progress <= self._last_progress:
            raise ValueError(f"progress must increase: got {progress} after {self._last_progress}")
        self._last_progress = progress
        token = self._channel.progress_token
        if token is None:
            return
        params: dict[str, Any] = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None and self._channel.revision >= PROGRESS_MESSAGE_SINCE:
            params["message"] = message
        await self._channel.notify("notifications/progress", params)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """Send a log message to the client, if it asked for this level or a lower one.

        ``level`` is one of debug, info, notice, warning, error, critical, alert, emergency;
        ``data`` is any JSON-serialisable value (a string, a dict, a pydantic model...);
        anything else is sent as its ``str()``.

        Example::

            await ctx.log("warning", {"skipped": path, "why": "not UTF-8"}, logger="indexer")
        """
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
        if not self._channel.wants_log(level):
            return
        # str() for anything JSON cannot hold: a log line is never worth failing a call.
        params: dict[str, Any] = {"level": level, "data": to_jsonable_python(data, fallback=str)}
        if logger is not None:
            params["logger"] = logger
        await self._channel.notify("notifications/message", params)

    def check_cancelled(self) -> None:
        """In a sync tool, raise ``trio.Cancelled`` once the call has been cancelled.

        Sync tools run in a worker thread that trio cannot interrupt: call this regularly
        (in every loop iteration) so a cancelled call stops promptly and its ``finally``
        blocks run. In an async tool it does nothing; every ``await`` is already a
        cancellation point there.

        Example::

            @mcpd.tool
            def checksum(path: str, ctx: mcpd.Context) -> str:
                digest = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        ctx.check_cancelled()
                        digest.update(chunk)
                return digest.hexdigest()
        """
        if trio.lowlevel.in_trio_run():
            return  # an async tool: its awaits are the cancellation points
        try:
            trio.from_thread.check_cancelled()
        except RuntimeError:
            return  # not a trio worker thread (a plain unit test): nothing can cancel it


def _check_number(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
