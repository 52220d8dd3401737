"""Method handlers for both eras: the one place a request becomes a result.

Handlers return the bare result object; the transport shapes it for the era (``resultType``,
cache fields, ``serverInfo``) and frames it. Protocol failures are raised as ``McpError``;
tool failures become ``isError`` results, never protocol errors.

Handlers that run plugin code (tools, resource reads, prompts) get a ``Context``. When that
code asks the client for input on a 2026 request, the handler ends with an
``input_required`` result and runs again on the client's retry (``mcpd.runtime.inputs``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

import structlog
import trio

from mcpd._version import __version__
from mcpd.auth.policy import Item
from mcpd.auth.principal import Principal
from mcpd.config import ToolsSettings
from mcpd.limits.quota import RateLimited
from mcpd.metrics import Metrics
from mcpd.plugin.context import ClientCapabilityMissing, Context
from mcpd.plugin.prompt import Prompt
from mcpd.plugin.registry import InvalidCursor, Listing, Registry
from mcpd.plugin.resource import Resource, ResourceNotFound
from mcpd.plugin.tool import InvalidArguments, Tool, ToolError, error_result
from mcpd.protocol.errors import (
    InternalError,
    InvalidParams,
    McpError,
    MethodNotFound,
    MissingClientCapability,
)
from mcpd.protocol.errors import ResourceNotFound as ResourceNotFoundError
from mcpd.protocol.handshake import initialize_result
from mcpd.protocol.revisions import MODERN_VERSIONS, Era, argument_errors_are_tool_errors
from mcpd.runtime.access import Access, prompt_item, resource_item, tool_item, unknown
from mcpd.runtime.calls import Call, CallChannel
from mcpd.runtime.containment import failure_fields, passes_through
from mcpd.runtime.inputs import (
    InputRequired,
    InputRound,
    RequestStates,
    input_required_in,
    input_required_result,
)
from mcpd.runtime.notices import LIST_KINDS, Notices
from mcpd.tracing import NO_TRACING, Tracing

log = structlog.get_logger("mcpd.calls")

SERVER_INFO: Final = {"name": "mcpd", "title": "mcpd MCP server daemon", "version": __version__}
Handler = Callable[[Call], Awaitable[dict[str, Any]]]


class Dispatcher:
    """Routes a ``Call`` to its method handler against the current plugin registry."""

    tracing: Tracing = NO_TRACING  # the daemon sets its own (mcpd.tracing)

    def __init__(
        self,
        registry: Registry,
        settings: ToolsSettings,
        *,
        log_arguments: bool = False,
        notices: Notices | None = None,
        metrics: Metrics | None = None,
        access: Access,
        request_states: RequestStates | None = None,
    ) -> None:
        # Swapped whole on reload; a call keeps what it looked up when it started.
        self.registry = registry
        self.access = access
        self.notices = notices if notices is not None else Notices()
        # The daemon's (keyed from the state directory, see mcpd.runtime.restart), else one
        # keyed by [tools] request_state_key, else by a random key for this process.
        key = settings.request_state_key
        self.states = (
            request_states
            if request_states is not None
            else RequestStates(
                settings.input_timeout, key=hashlib.sha256(key.encode()).digest() if key else None
            )
        )
        self._settings = settings
        self._log_arguments = log_arguments
        self._metrics = metrics if metrics is not None else Metrics()
        common: dict[str, Handler] = {
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
            "resources/list": self._resources_list,
            "resources/templates/list": self._templates_list,
            "resources/read": self._resources_read,
            "prompts/list": self._prompts_list,
            "prompts/get": self._prompts_get,
            "completion/complete": self._complete,
        }
        self._handlers: dict[Era, dict[str, Handler]] = {
            Era.LEGACY: {
                **common,
                "ping": self._ping,
                "logging/setLevel": self._set_level,
                "resources/subscribe": self._subscribe,
                "resources/unsubscribe": self._unsubscribe,
            },
            Era.MODERN: {**common, "server/discover": self._discover},
        }

    def swap_registry(self, registry: Registry) -> None:
        """Serve ``registry`` from now on; calls already running keep what they looked up.

        Clients hear about every list that changed (legacy sessions on their GET stream,
        2026 listen streams that asked for it).
        """
        before, after = self.registry.fingerprint(), registry.fingerprint()
        self.registry = registry
        for kind in LIST_KINDS:
            if before[kind] != after[kind]:
                self.notices.list_changed(kind)

    def supports(self, era: Era, method: str) -> bool:
        return method in self._handlers[era]

    async def handle(self, call: Call) -> dict[str, Any]:
        handler = self._handlers[call.era].get(call.request.method)
        if handler is None:
            raise MethodNotFound(f"method {call.request.method!r} is not supported")
        return await handler(call)

    # -- capabilities -----------------------------------------------------------------------

    @staticmethod
    def capabilities() -> dict[str, Any]:
        """The same in both eras (2026 delivers list changes and updates on listen streams)."""
        return {
            "tools": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": True},
            "prompts": {"listChanged": True},
            "completions": {},
            "logging": {},
        }

    def initialize_result(self, version: str) -> dict[str, Any]:
        capabilities = self.capabilities()
        if version < "2025-03-26":
            del capabilities["completions"]  # 2024-11-05 has the method but no capability
        return initialize_result(version, capabilities, SERVER_INFO)

    async def _discover(self, call: Call) -> dict[str, Any]:
        return {
            "supportedVersions": list(MODERN_VERSIONS),
            "capabilities": self.capabilities(),
        }

    # -- small methods ----------------------------------------------------------------------

    async def _ping(self, call: Call) -> dict[str, Any]:
        return {}

    async def _set_level(self, call: Call) -> dict[str, Any]:
        assert call.session is not None
        call.session.set_log_level(call.request.params.get("level"))
        return {}

    async def _subscribe(self, call: Call) -> dict[str, Any]:
        assert call.session is not None
        uri = _uri(call.request.params)
        found = self.registry.find_resource(uri)
        if found is not None and self.access.hidden(call.principal, resource_item(found[0])):
            raise _not_found(call, uri)  # no updates of what this caller may not see
        call.session.subscriptions.add(uri)
        return {}

    async def _unsubscribe(self, call: Call) -> dict[str, Any]:
        assert call.session is not None
        call.session.subscriptions.discard(_uri(call.request.params))
        return {}

    # -- lists ------------------------------------------------------------------------------

    async def _tools_list(self, call: Call) -> dict[str, Any]:
        return self._page(call, self.registry.tool_list, "tools", tool_item)

    async def _resources_list(self, call: Call) -> dict[str, Any]:
        return self._page(call, self.registry.resources, "resources", resource_item)

    async def _templates_list(self, call: Call) -> dict[str, Any]:
        return self._page(call, self.registry.templates, "resourceTemplates", resource_item)

    async def _prompts_list(self, call: Call) -> dict[str, Any]:
        return self._page(call, self.registry.prompts, "prompts", prompt_item)

    def _page(
        self,
        call: Call,
        listing: Listing[Tool] | Listing[Resource] | Listing[Prompt],
        key: str,
        item: Callable[[Any], Item],
    ) -> dict[str, Any]:
        cursor = call.request.params.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidParams("cursor must be a string")
        keep = None if self.access.open else partial(self._visible, call.principal, item)
        try:
            items, next_cursor = listing.page(cursor, self._settings.page_size, keep)
        except InvalidCursor:
            raise InvalidParams("invalid cursor") from None
        result: dict[str, Any] = {key: [item.definition(call.revision) for item in items]}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    def _visible(self, principal: Principal, item: Callable[[Any], Item], entry: Any) -> bool:
        return self.access.visible(principal, item(entry))

    # -- tools/call -------------------------------------------------------------------------

    async def _tools_call(self, call: Call) -> dict[str, Any]:
        params = call.request.params
        name = params.get("name")
        if not isinstance(name, str):
            raise InvalidParams("tools/call needs the tool's name")
        tool = self.registry.get(name)
        if tool is None or self.access.hidden(call.principal, tool_item(tool)):
            raise unknown("tool", name)
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            raise InvalidParams("arguments must be an object")
        structlog.contextvars.bind_contextvars(tool=tool.name)
        call.flight.label = tool.name  # for loop.stalled and daemon.abandoned
        try:
            validated = tool.validate_arguments(arguments)
        except InvalidArguments as exc:
            if argument_errors_are_tool_errors(call.revision):
                return error_result(f"invalid arguments for {tool.name}: {exc}")
            raise InvalidParams(f"invalid arguments for {tool.name}: {exc}") from None
        except BaseException as exc:  # a plugin's own validator failed
            if passes_through(exc):
                raise
            self._plugin_failed("tool.crashed", exc, "tool", tool.name)
            return error_result(f"tool {tool.name} failed with an internal error")
        return await self._invoke(call, tool, validated)

    async def _invoke(self, call: Call, tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
        timeout = tool.timeout if tool.timeout is not None else self._settings.default_timeout
        self._start_round(call)
        channel = CallChannel(call, self._settings.input_timeout)
        started = time.perf_counter()
        outcome = "cancelled"
        self._metrics.tool_calls_in_flight += 1
        # The tool's span, current while its code runs (a plugin's own spans nest in it).
        span = self.tracing.tool(tool.name) if self.tracing.enabled else None
        try:
            with trio.move_on_after(timeout) as channel.limit:
                try:
                    async with self.access.limits.running(call.principal.limit_key, tool.name):
                        result = await self._run_tool(tool, arguments, Context(channel), call)
                except BaseException as error:
                    need = input_required_in(error)
                    if need is None:
                        raise
                    outcome = "input_required"
                    return self._input_required(call, need)
                outcome = "error" if result.get("isError") else "ok"
                return result
            outcome = "timeout"
            return error_result(f"tool {tool.name} timed out after {timeout:g}s and was cancelled")
        finally:
            if span is not None:
                span.end(outcome)
            channel.close()
            seconds = time.perf_counter() - started
            self._metrics.tool_calls_in_flight -= 1
            self._metrics.tool_call(tool.name, outcome, seconds)
            self._log_call(call, tool, arguments, outcome, seconds)

    def _log_call(
        self, call: Call, tool: Tool, arguments: dict[str, Any], outcome: str, seconds: float
    ) -> None:
        fields: dict[str, Any] = {"outcome": outcome, "duration_ms": round(seconds * 1000, 3)}
        if outcome == "cancelled":
            fields["reason"] = call.flight.reason
        if self._log_arguments:
            fields["arguments"] = arguments
        elif outcome == "ok":
            # A call that went well is recorded by its audit event (mcpd.audit, info); a second
            # line per call saying the same would double the logging work on the hot path.
            log.debug("tool.call", **fields)
            return
        log.info("tool.call", **fields)

    async def _run_tool(
        self, tool: Tool, arguments: dict[str, Any], context: Context, call: Call
    ) -> dict[str, Any]:
        try:
            return tool.render(await tool.invoke(arguments, context), call.revision)
        except ClientCapabilityMissing as exc:
            if call.era is Era.MODERN:
                raise _missing_capability(exc) from None
            return error_result(str(exc))
        except RateLimited as exc:  # the tool's own upstream quota: a hint to retry
            return self.access.limits.tool_quota_result(exc)
        except ToolError as exc:
            return error_result(str(exc))
        except BaseException as exc:
            if passes_through(exc):
                raise
            # The client gets no internals; our log gets the type and where (the text only
            # when arguments may be logged: it often quotes them).
            self._plugin_failed("tool.crashed", exc, "tool", tool.name)
            return error_result(f"tool {tool.name} failed with an internal error")

    def _plugin_failed(self, event: str, error: BaseException, kind: str, key: str) -> None:
        """Log, once, a failure of plugin code that was contained to its call."""
        if self.tracing.enabled:
            self.tracing.failed(error)
        origin = self.registry.origin(kind, key)
        log.error(
            event,
            plugin=origin.name if origin is not None else None,
            distribution=origin.distribution if origin is not None else None,
            **{kind: key},
            **failure_fields(error, with_message=self._log_arguments),
        )

    # -- resources/read, prompts/get ----------------------------------------------------------

    async def _resources_read(self, call: Call) -> dict[str, Any]:
        uri = _uri(call.request.params)
        found = self.registry.find_resource(uri)
        if found is None or self.access.hidden(call.principal, resource_item(found[0])):
            raise _not_found(call, uri)
        resource, variables = found
        try:
            value = await self._run_feature(
                call, lambda ctx: resource.read(uri, variables, ctx), ("resource", resource.uri)
            )
        except ResourceNotFound as exc:
            raise _not_found(call, exc.uri) from None
        if isinstance(value, dict) and value.get("resultType") == "input_required":
            return value
        try:
            contents = resource.render(value, uri)
        except (TypeError, ValueError) as exc:
            log.error("resource.bad_output", resource=resource.name, error=str(exc))
            raise InternalError(f"resource {resource.name} returned an unusable value") from None
        except BaseException as exc:
            if passes_through(exc):
                raise
            self._plugin_failed("handler.crashed", exc, "resource", resource.uri)
            raise InternalError(f"resource {resource.name} returned an unusable value") from None
        return {"contents": contents}

    async def _prompts_get(self, call: Call) -> dict[str, Any]:
        params = call.request.params
        name = params.get("name")
        if not isinstance(name, str):
            raise InvalidParams("prompts/get needs the prompt's name")
        prompt = self.registry.prompts.by_key.get(name)
        if prompt is None or self.access.hidden(call.principal, prompt_item(prompt)):
            raise unknown("prompt", name)
        try:
            arguments = prompt.validate_arguments(params.get("arguments"))
        except InvalidArguments as exc:
            raise InvalidParams(f"invalid arguments for prompt {prompt.name}: {exc}") from None
        value = await self._run_feature(
            call, lambda ctx: prompt.get(arguments, ctx), ("prompt", prompt.name)
        )
        if isinstance(value, dict) and value.get("resultType") == "input_required":
            return value
        try:
            return prompt.render(value, call.revision)
        except (TypeError, ValueError) as exc:
            log.error("prompt.bad_output", prompt=prompt.name, error=str(exc))
            raise InternalError(f"prompt {prompt.name} returned an unusable value") from None
        except BaseException as exc:
            if passes_through(exc):
                raise
            self._plugin_failed("handler.crashed", exc, "prompt", prompt.name)
            raise InternalError(f"prompt {prompt.name} returned an unusable value") from None

    async def _run_feature(
        self, call: Call, run: Callable[[Context], Awaitable[Any]], item: tuple[str, str]
    ) -> Any:
        """Run a resource or prompt function with a context, within the default timeout.

        ``item`` (kind, key) names it in the log if it fails."""
        self._start_round(call)
        channel = CallChannel(call, self._settings.input_timeout)
        try:
            with trio.fail_after(self._settings.default_timeout):
                async with self.access.limits.running(call.principal.limit_key):
                    return await run(Context(channel))
        except (ResourceNotFound, McpError):
            raise
        except BaseException as error:
            return self._feature_failed(call, error, item)
        finally:
            channel.close()

    def _feature_failed(self, call: Call, error: BaseException, item: tuple[str, str]) -> Any:
        """A resource or prompt function did not return: raise the answer for it, or return
        the ``input_required`` result of a 2026 round that asks the client first."""
        if isinstance(error, ClientCapabilityMissing):
            if call.era is Era.MODERN:
                raise _missing_capability(error) from None
            raise InternalError(str(error)) from None
        if isinstance(error, RateLimited):
            raise self.access.limits.quota_error(error) from None
        if isinstance(error, ToolError):
            raise InternalError(error.message) from None
        if isinstance(error, trio.TooSlowError):
            raise InternalError("the handler timed out") from None
        need = input_required_in(error)
        if need is not None:
            return self._input_required(call, need)
        if passes_through(error):
            raise error
        self._plugin_failed("handler.crashed", error, *item)
        raise InternalError("internal error") from None

    # -- completion ---------------------------------------------------------------------------

    async def _complete(self, call: Call) -> dict[str, Any]:
        params = call.request.params
        ref, argument = params.get("ref"), params.get("argument")
        if not isinstance(ref, dict) or not isinstance(argument, dict):
            raise InvalidParams("completion/complete needs ref and argument objects")
        name, value = argument.get("name"), argument.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidParams("argument needs a string name and value")
        context = params.get("context")
        filled = context.get("arguments") if isinstance(context, dict) else None
        others = {
            k: v for k, v in (filled or {}).items() if isinstance(k, str) and isinstance(v, str)
        }
        target: Prompt | Resource | None
        key = ref.get("name") if ref.get("type") == "ref/prompt" else ref.get("uri")
        if not isinstance(key, str):
            raise InvalidParams("ref needs type ref/prompt with a name or ref/resource with a uri")
        if ref.get("type") == "ref/prompt":
            target = self.registry.prompts.by_key.get(key)
            if target is None or self.access.hidden(call.principal, prompt_item(target)):
                raise unknown("prompt", key)
            known = [arg.name for arg in target.arguments]
        else:
            target = self.registry.templates.by_key.get(key) or self.registry.resources.by_key.get(
                key
            )
            if target is None or self.access.hidden(call.principal, resource_item(target)):
                raise unknown("resource or template", key)
            known = list(target.variables)
        if name not in known:
            raise InvalidParams(f"{name!r} is not an argument of this reference")
        try:
            completion = await target.completers.complete(name, value, others)
        except BaseException as exc:
            if passes_through(exc):
                raise
            kind = "prompt" if isinstance(target, Prompt) else "resource"
            self._plugin_failed("completion.crashed", exc, kind, key)
            raise InternalError("the completion provider failed") from None
        return {"completion": completion.to_result()}

    # -- multi-round-trip input (2026) ---------------------------------------------------------

    def _start_round(self, call: Call) -> None:
        if call.era is Era.MODERN:
            call.inputs = InputRound.start(
                self.states, call.request.method, call.request.params, call.principal.key
            )

    def _input_required(self, call: Call, need: InputRequired) -> dict[str, Any]:
        assert call.inputs is not None
        for request in need.requests.values():
            capability = _CAPABILITY_OF.get(request["method"])
            if capability is not None and not isinstance(
                call.client_capabilities.get(capability), dict
            ):
                raise _missing_capability(ClientCapabilityMissing(capability))
        params = call.request.params
        return input_required_result(
            self.states,
            call.request.method,
            params,
            need,
            call.inputs.answers,
            principal=call.principal.key,
        )


_CAPABILITY_OF = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}


def _missing_capability(exc: ClientCapabilityMissing) -> MissingClientCapability:
    return MissingClientCapability(str(exc), data={"requiredCapabilities": {exc.capability: {}}})


def _uri(params: dict[str, Any]) -> str:
    uri = params.get("uri")
    if not isinstance(uri, str) or not uri:
        raise InvalidParams("uri must be a non-empty string")
    return uri


def _not_found(call: Call, uri: str) -> McpError:
    message = f"resource not found: {uri}"
    if call.era is Era.MODERN:
        return InvalidParams(message, data={"uri": uri})
    return ResourceNotFoundError(message, data={"uri": uri})
