"""Helpers for testing tools without a daemon: an in-memory request and a one-call runner.

``MemoryChannel`` stands in for the request a tool serves: it records every notification the
tool's ``Context`` sends. ``call_tool`` runs a tool the way the daemon does (validate, invoke,
render, ``ToolError`` as an ``isError`` result), so plugin tests exercise the real schema,
validation and rendering code.

Example (with pytest-trio)::

    from mcpd.plugin.testing import MemoryChannel, call_tool
    from my_plugin import countdown

    async def test_countdown_reports_progress() -> None:
        channel = MemoryChannel()
        result = await call_tool(countdown, {"seconds": 2}, channel=channel)
        assert result["content"][0]["text"] == "done"
        assert [p["progress"] for p in channel.progress] == [1, 2]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from mcpd.auth.principal import Principal, anonymous
from mcpd.plugin.context import Context, InputUnavailable
from mcpd.plugin.errors import InvalidArguments, ToolError, error_result
from mcpd.plugin.tool import Tool
from mcpd.protocol.meta import LOG_LEVELS
from mcpd.protocol.revisions import REVISIONS

__all__ = ["LATEST_REVISION", "InvalidArguments", "MemoryChannel", "call_tool"]

LATEST_REVISION = REVISIONS[-1].version


@dataclass(slots=True)
class MemoryChannel:
    """A ``RequestChannel`` that keeps what the tool sends in ``notifications``.

    The defaults stand for a client that asked for everything, so a test sees all a tool
    sends unless it says otherwise:

    - ``revision``: the newest protocol revision mcpd speaks (``LATEST_REVISION``);
    - ``request_id`` 1, ``session_id`` None (a stateless request);
    - ``progress_token`` "progress-1": progress is recorded (None: the client did not ask,
      and ``ctx.report_progress`` sends nothing);
    - ``log_level`` "debug": every ``ctx.log`` message is recorded (None: none is; "warning":
      warning and above, as with a client's ``logging/setLevel``);
    - ``capabilities``: elicitation, sampling and roots, answered from ``answers`` (method ->
      the client's result; a question without an answer raises ``InputUnavailable``);
    - ``cancel_reason`` None: what ``ctx.cancel_reason`` reports;
    - ``principal``: who calls (``ctx.principal``): an anonymous one, as with ``[auth] mode =
      "none"``; pass ``Principal(issuer=..., subject=..., scopes=...)`` to test another.

    Example::

        channel = MemoryChannel(log_level="warning", progress_token=None)
        await call_tool(my_tool, {"path": "a.txt"}, channel=channel)
        assert channel.progress == [] and all(m["level"] != "info" for m in channel.logs)
    """

    revision: str = LATEST_REVISION
    request_id: str | int = 1
    progress_token: str | int | None = "progress-1"
    session_id: str | None = None
    log_level: str | None = "debug"
    cancel_reason: str | None = None  # what ctx.cancel_reason reports
    principal: Principal = field(default_factory=lambda: anonymous(None))  # ctx.principal
    capabilities: frozenset[str] = frozenset({"elicitation", "sampling", "roots"})
    # Answers the pretend client gives to ctx.elicit/sample/list_roots: method -> result.
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    streams_closed: int = 0
    _sent: trio.Event = field(default_factory=trio.Event, repr=False, compare=False)

    def wants_log(self, level: str) -> bool:
        if self.log_level is None:
            return False
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(self.log_level)

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        # Sending is a checkpoint in the daemon too: a cancelled tool stops here.
        await trio.lowlevel.checkpoint()
        self.notifications.append((method, params))
        self._sent.set()
        self._sent = trio.Event()

    def client_supports(self, capability: str) -> bool:
        return capability in self.capabilities

    async def ask(self, questions: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        await trio.lowlevel.checkpoint()
        results = []
        for _, method, params in questions:
            self.asked.append((method, params))
            if method not in self.answers:
                raise InputUnavailable(f"the test client has no answer for {method}")
            results.append(self.answers[method])
        return results

    async def close_stream(self, retry_ms: int | None) -> None:
        self.streams_closed += 1

    async def wait_for(self, method: str, count: int = 1) -> list[dict[str, Any]]:
        """Wait until ``count`` notifications of ``method`` were sent; their params.

        Example::

            nursery.start_soon(call_tool, slow_tool, {"seconds": 60}, channel=channel)
            await channel.wait_for("notifications/progress")  # it is running now
        """
        while len(found := self._params(method)) < count:
            await self._sent.wait()
        return found

    @property
    def progress(self) -> list[dict[str, Any]]:
        """The params of every ``notifications/progress`` sent so far."""
        return self._params("notifications/progress")

    @property
    def logs(self) -> list[dict[str, Any]]:
        """The params of every ``notifications/message`` sent so far."""
        return self._params("notifications/message")

    def _params(self, method: str) -> list[dict[str, Any]]:
        return [params for sent, params in self.notifications if sent == method]


async def call_tool(
    tool: Tool, arguments: Mapping[str, Any] | None = None, *, channel: MemoryChannel | None = None
) -> dict[str, Any]:
    """Validate, invoke and render one call; the ``CallToolResult`` the daemon would send.

    ``InvalidArguments`` and unexpected exceptions propagate, so a test sees them directly.
    The tool's ``timeout`` is not applied; wrap the call in ``trio.fail_after`` to test one.
    """
    channel = channel if channel is not None else MemoryChannel()
    validated = tool.validate_arguments(arguments)
    try:
        value = await tool.invoke(validated, Context(channel))
    except ToolError as exc:
        return error_result(exc.message)
    return tool.render(value, channel.revision)
