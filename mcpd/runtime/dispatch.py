"""Method handlers for both eras: the one place a request becomes a result.

Handlers return the bare result object; the transport shapes it for the era (``resultType``,
cache fields, ``serverInfo``) and frames it. Protocol failures are raised as ``McpError``;
tool failures become ``isError`` results, never protocol errors.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog
import trio

from mcpd._version import __version__
from mcpd.config import ToolsSettings
from mcpd.plugin.context import Context
from mcpd.plugin.registry import InvalidCursor, Registry
from mcpd.plugin.tool import InvalidArguments, Tool, ToolError, error_result
from mcpd.protocol.errors import InvalidParams, MethodNotFound
from mcpd.protocol.handshake import initialize_result
from mcpd.protocol.revisions import MODERN_VERSIONS, Era, argument_errors_are_tool_errors
from mcpd.runtime.calls import Call, CallChannel

log = structlog.get_logger("mcpd.calls")

SERVER_INFO: Final = {"name": "mcpd", "title": "mcpd MCP server daemon", "version": __version__}
Handler = Callable[[Call], Awaitable[dict[str, Any]]]


class Dispatcher:
    """Routes a ``Call`` to its method handler against the current plugin registry."""

    def __init__(
        self, registry: Registry, settings: ToolsSettings, *, log_arguments: bool = False
    ) -> None:
        # Swapped whole on reload; a call keeps the Tool it looked up when it started.
        self.registry = registry
        self._settings = settings
        self._log_arguments = log_arguments
        common: dict[str, Handler] = {
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
        }
        self._handlers: dict[Era, dict[str, Handler]] = {
            Era.LEGACY: {**common, "ping": self._ping, "logging/setLevel": self._set_level},
            Era.MODERN: {**common, "server/discover": self._discover},
        }

    def swap_registry(self, registry: Registry) -> None:
        """Serve ``registry`` from now on; calls already running keep what they looked up."""
        self.registry = registry

    def supports(self, era: Era, method: str) -> bool:
        return method in self._handlers[era]

    async def handle(self, call: Call) -> dict[str, Any]:
        handler = self._handlers[call.era].get(call.request.method)
        if handler is None:
            raise MethodNotFound(f"method {call.request.method!r} is not supported")
        return await handler(call)

    # -- capabilities -----------------------------------------------------------------------

    def initialize_result(self, version: str) -> dict[str, Any]:
        capabilities = {"tools": {"listChanged": False}, "logging": {}}
        return initialize_result(version, capabilities, SERVER_INFO)

    async def _discover(self, call: Call) -> dict[str, Any]:
        return {
            "supportedVersions": list(MODERN_VERSIONS),
            "capabilities": {"tools": {"listChanged": False}, "logging": {}},
        }

    # -- small methods ----------------------------------------------------------------------

    async def _ping(self, call: Call) -> dict[str, Any]:
        return {}

    async def _set_level(self, call: Call) -> dict[str, Any]:
        assert call.session is not None
        call.session.set_log_level(call.request.params.get("level"))
        return {}

    async def _tools_list(self, call: Call) -> dict[str, Any]:
        cursor = call.request.params.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidParams("cursor must be a string")
        try:
            tools, next_cursor = self.registry.page(cursor, self._settings.page_size)
        except InvalidCursor:
            raise InvalidParams("invalid cursor") from None
        result: dict[str, Any] = {"tools": [tool.definition(call.revision) for tool in tools]}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    # -- tools/call -------------------------------------------------------------------------

    async def _tools_call(self, call: Call) -> dict[str, Any]:
        params = call.request.params
        name = params.get("name")
        tool = self.registry.get(name) if isinstance(name, str) else None
        if tool is None:
            raise InvalidParams(f"unknown tool: {name!r}")
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            raise InvalidParams("arguments must be an object")
        try:
            validated = tool.validate_arguments(arguments)
        except InvalidArguments as exc:
            if argument_errors_are_tool_errors(call.revision):
                return error_result(f"invalid arguments for {tool.name}: {exc}")
            raise InvalidParams(f"invalid arguments for {tool.name}: {exc}") from None
        structlog.contextvars.bind_contextvars(tool=tool.name)
        return await self._invoke(call, tool, validated)

    async def _invoke(self, call: Call, tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
        timeout = tool.timeout if tool.timeout is not None else self._settings.default_timeout
        channel = CallChannel(call)
        started = time.perf_counter()
        outcome = "cancelled"
        try:
            with trio.move_on_after(timeout):
                result = await _run_tool(tool, arguments, Context(channel), call.revision)
                outcome = "error" if result.get("isError") else "ok"
                return result
            outcome = "timeout"
            return error_result(f"tool {tool.name} timed out after {timeout:g}s and was cancelled")
        finally:
            channel.close()
            self._log_call(call, tool, arguments, outcome, time.perf_counter() - started)

    def _log_call(
        self, call: Call, tool: Tool, arguments: dict[str, Any], outcome: str, seconds: float
    ) -> None:
        fields: dict[str, Any] = {"outcome": outcome, "duration_ms": round(seconds * 1000, 3)}
        if outcome == "cancelled":
            fields["reason"] = call.flight.reason
        if self._log_arguments:
            fields["arguments"] = arguments
        log.info("tool.call", **fields)


async def _run_tool(
    tool: Tool, arguments: dict[str, Any], context: Context, revision: str
) -> dict[str, Any]:
    try:
        value = await tool.invoke(arguments, context)
    except ToolError as exc:
        return error_result(str(exc))
    except Exception:
        # The traceback goes to our log (without frame locals); the client gets no internals.
        log.exception("tool.crashed")
        return error_result(f"tool {tool.name} failed with an internal error")
    return tool.render(value, revision)
