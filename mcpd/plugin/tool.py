"""``@mcpd.tool``: a plain function becomes a ``Tool`` that mcpd can list, validate and call.

The decorator does all the expensive work once, when the plugin module is imported: type
hints become a pydantic model and JSON Schemas (``mcpd.plugin.schema``). A ``Tool`` is then
immutable; only its per-revision ``tools/list`` entries are cached on first use.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, overload

import structlog

from mcpd.auth.settings import SCOPE_TOKEN
from mcpd.plugin.calling import call_plugin
from mcpd.plugin.context import Context
from mcpd.plugin.errors import InvalidArguments, ToolDefinitionError, ToolError, error_result
from mcpd.plugin.isolation import Isolation, check_isolation, run_in_process
from mcpd.plugin.render import OutputMismatch, render_result
from mcpd.plugin.schema import InputSpec, OutputSpec, input_spec, output_spec, type_hints
from mcpd.protocol.headers import header_params

__all__ = [
    "InvalidArguments",
    "Tool",
    "ToolAnnotations",
    "ToolError",
    "check_scopes",
    "check_tool_name",
    "error_result",
    "tool",
]

log = structlog.get_logger("mcpd.tools")

TOOL_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
ANNOTATIONS_SINCE: Final = "2025-03-26"
TITLE_AND_OUTPUT_SINCE: Final = "2025-06-18"
ICONS_AND_DIALECT_SINCE: Final = "2025-11-25"
ANNOTATION_KEYS: Final = frozenset(
    {"title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}
)


@dataclass(frozen=True, slots=True)
class ToolAnnotations:
    """Hints about a tool's behaviour for clients (untrusted by them; never enforced by mcpd).

    A plain dict with the protocol's camelCase keys works just as well.

    Example::

        @mcpd.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
        def word_count(text: str) -> int:
            return len(text.split())
    """

    title: str | None = None
    read_only_hint: bool | None = None
    destructive_hint: bool | None = None
    idempotent_hint: bool | None = None
    open_world_hint: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The protocol's ``ToolAnnotations`` object, unset hints left out."""
        pairs = {
            "title": self.title,
            "readOnlyHint": self.read_only_hint,
            "destructiveHint": self.destructive_hint,
            "idempotentHint": self.idempotent_hint,
            "openWorldHint": self.open_world_hint,
        }
        return {key: value for key, value in pairs.items() if value is not None}


@dataclass(frozen=True, slots=True, eq=False)
class Tool:
    """One tool: its metadata, schemas and the function behind it. Made by ``@mcpd.tool``.

    Calling a ``Tool`` calls the function directly, so decorated functions stay usable (and
    unit-testable) as plain functions. The daemon uses the rest: ``definition`` for
    ``tools/list``, then ``validate_arguments``, ``invoke`` and ``render`` for ``tools/call``.

    Example::

        @mcpd.tool
        def add(a: int, b: int) -> int:
            return a + b

        add(1, 2)                                  # 3, a plain call
        add.definition("2025-11-25")["inputSchema"]["required"]  # ["a", "b"]
        arguments = add.validate_arguments({"a": 1, "b": 2})
        result = add.render(await add.invoke(arguments, ctx), "2025-11-25")
        result["structuredContent"]  # {"result": 3}
    """

    name: str
    fn: Callable[..., Any]
    description: str | None
    title: str | None
    annotations: Mapping[str, Any] | None
    timeout: float | None
    icons: tuple[Mapping[str, Any], ...]
    inputs: InputSpec
    outputs: OutputSpec
    is_async: bool
    # "thread" (sync tools run in a worker thread) or "process" (a killable worker process).
    isolation: Isolation = "thread"
    # OAuth scopes (or key scopes) a caller needs; [[auth.rules]] in the config may replace them.
    scopes: frozenset[str] = frozenset()
    # Not an __init__ argument, so dataclasses.replace() starts a copy with an empty cache.
    _definitions: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    # Arguments mirrored in 2026 Mcp-Param-* headers: header name -> (argument, type).
    header_params: Mapping[str, tuple[str, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "header_params", header_params(self.inputs.schema))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def input_schema(self) -> Mapping[str, Any]:
        """The JSON Schema of the arguments (2020-12, with ``$schema``)."""
        return self.inputs.schema

    @property
    def output_schema(self) -> Mapping[str, Any] | None:
        """The JSON Schema of ``structuredContent``, or None for unstructured results."""
        return self.outputs.schema

    def definition(self, revision: str) -> dict[str, Any]:
        """The ``tools/list`` entry for ``revision``. Cached: treat the result as read-only."""
        cached = self._definitions.get(revision)
        if cached is None:
            cached = self._definitions[revision] = self._build_definition(revision)
        return cached

    def validate_arguments(self, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """Keyword arguments for ``invoke``; raises ``InvalidArguments`` naming each bad field."""
        return self.inputs.validate(arguments)

    async def invoke(self, arguments: Mapping[str, Any], context: Context) -> Any:
        """Run the function with validated ``arguments``; its return value, unrendered.

        Async functions are awaited. Sync functions run in a worker thread so the event loop
        never blocks; ``abandon_on_cancel=False`` makes a cancelled call wait for its thread,
        so no thread outlives its request (sync tools poll ``ctx.check_cancelled()``). With
        ``isolation="process"`` they run in a worker process instead, killed on cancellation
        (``mcpd.plugin.isolation``).
        """
        if self.isolation == "process":
            return await run_in_process(self.name, self.fn, arguments, self.inputs.context, context)
        return await call_plugin(
            self.fn,
            is_async=self.is_async,
            arguments=arguments,
            context_parameter=self.inputs.context,
            context=context,
        )

    def render(self, value: Any, revision: str) -> dict[str, Any]:
        """The ``CallToolResult`` for a returned value (see ``mcpd.plugin.render``)."""
        try:
            return render_result(value, self.outputs, revision)
        except OutputMismatch as exc:
            log.warning("tool.bad_output", tool=self.name, error=str(exc))
            return error_result(f"tool {self.name} returned a value that does not match its type")

    def _build_definition(self, revision: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name}
        if revision >= TITLE_AND_OUTPUT_SINCE and self.title is not None:
            entry["title"] = self.title
        if self.description:
            entry["description"] = self.description
        entry["inputSchema"] = _for_revision(self.inputs.schema, revision)
        if revision >= TITLE_AND_OUTPUT_SINCE and self.outputs.schema is not None:
            entry["outputSchema"] = _for_revision(self.outputs.schema, revision)
        annotations = self._annotations_for(revision)
        if annotations:
            entry["annotations"] = annotations
        if revision >= ICONS_AND_DIALECT_SINCE and self.icons:
            entry["icons"] = [dict(icon) for icon in self.icons]
        return entry

    def _annotations_for(self, revision: str) -> dict[str, Any] | None:
        if revision < ANNOTATIONS_SINCE:
            return None
        annotations = dict(self.annotations or {})
        # 2025-03-26 has no top-level title: carry it in annotations.title instead.
        if revision < TITLE_AND_OUTPUT_SINCE and self.title is not None:
            annotations.setdefault("title", self.title)
        return annotations


def _for_revision(schema: Mapping[str, Any], revision: str) -> dict[str, Any]:
    if revision >= ICONS_AND_DIALECT_SINCE:
        return dict(schema)
    return {key: value for key, value in schema.items() if key != "$schema"}


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    fn: None = None,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    annotations: ToolAnnotations | Mapping[str, Any] | None = None,
    timeout: float | None = None,
    icons: Sequence[Mapping[str, Any]] | None = None,
    isolation: Isolation = "thread",
    scopes: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    annotations: ToolAnnotations | Mapping[str, Any] | None = None,
    timeout: float | None = None,
    icons: Sequence[Mapping[str, Any]] | None = None,
    isolation: Isolation = "thread",
    scopes: Sequence[str] = (),
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a function into a ``Tool``; use bare or with options.

    The input schema comes from the parameters' type hints (describe a parameter with
    ``Annotated[str, "what it is"]``), the description from the docstring, the output schema
    from the return annotation. A parameter annotated ``mcpd.Context`` receives the call's
    context. ``timeout`` (seconds) overrides the daemon's default for this tool. ``icons`` are
    protocol ``Icon`` objects (``{"src": ..., "mimeType": ..., "sizes": [...]}``).
    ``isolation="process"`` runs a sync tool in a worker process that is killed when the call
    is cancelled or times out (arguments and result are pickled; see the plugin guide).
    ``scopes`` are what a caller needs when ``[auth]`` is on (all of them); without them the
    tool is hidden from the caller's list, and a call gets 403 ``insufficient_scope``.

    Example::

        @mcpd.tool
        def shout(text: Annotated[str, "what to shout"]) -> str:
            \"\"\"Upper-case the text.\"\"\"
            return text.upper()

        @mcpd.tool(name="web.fetch", timeout=30, annotations={"openWorldHint": True})
        async def fetch(url: str, ctx: mcpd.Context) -> str: ...

        @mcpd.tool(isolation="process", timeout=60)
        def factorise(n: int) -> list[int]: ...
        @mcpd.tool(scopes=["files:write"])
        def save(path: str, text: str) -> None: ...
    """

    def decorate(function: Callable[..., Any]) -> Tool:
        return _build(
            function,
            name=name,
            title=title,
            description=description,
            annotations=annotations,
            timeout=timeout,
            icons=icons,
            isolation=isolation,
            scopes=scopes,
        )

    return decorate if fn is None else decorate(fn)


def check_scopes(scopes: object, label: str) -> frozenset[str]:
    """The ``scopes=`` option: a list of RFC 6749 scope tokens (no spaces or quotes)."""
    if isinstance(scopes, str) or not isinstance(scopes, Sequence | frozenset | set):
        raise ToolDefinitionError(f"{label}: scopes must be a list of strings, got {scopes!r}")
    for scope in scopes:
        if not isinstance(scope, str) or not SCOPE_TOKEN.fullmatch(scope):
            raise ToolDefinitionError(
                f"{label}: {scope!r} is not a scope (printable ASCII, no spaces or quotes)"
            )
    return frozenset(scopes)


def check_tool_name(name: object) -> None:
    """Raise ``ToolDefinitionError`` unless ``name`` is 1-128 of ``[A-Za-z0-9_.-]``."""
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        raise ToolDefinitionError(
            f"invalid tool name {name!r}: use 1-128 characters of A-Z a-z 0-9 _ . -"
        )


def _build(
    fn: Callable[..., Any],
    *,
    name: str | None,
    title: str | None,
    description: str | None,
    annotations: ToolAnnotations | Mapping[str, Any] | None,
    timeout: float | None,
    icons: Sequence[Mapping[str, Any]] | None,
    isolation: Isolation,
    scopes: Sequence[str] = (),
) -> Tool:
    _check_function(fn)
    tool_name = name if name is not None else getattr(fn, "__name__", "")
    check_tool_name(tool_name)
    is_async = inspect.iscoroutinefunction(fn)
    checked_isolation = check_isolation(isolation, fn, tool_name, is_async=is_async)
    hints = type_hints(fn, tool_name)
    return Tool(
        name=tool_name,
        fn=fn,
        description=description if description is not None else inspect.getdoc(fn),
        title=title,
        annotations=_annotations(annotations, tool_name),
        timeout=_timeout(timeout, tool_name),
        icons=_icons(icons, tool_name),
        inputs=input_spec(fn, hints, tool_name),
        outputs=output_spec(hints.get("return", inspect.Parameter.empty), tool_name),
        is_async=is_async,
        isolation=checked_isolation,
        scopes=check_scopes(scopes, f"tool {tool_name!r}"),
    )


def _check_function(fn: object) -> None:
    if isinstance(fn, Tool):
        raise ToolDefinitionError(f"{fn.name!r} is already a tool")
    if not callable(fn) or inspect.isclass(fn):
        raise ToolDefinitionError(f"@mcpd.tool needs a function, got {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise ToolDefinitionError(f"{fn!r}: a tool must return its result, not yield it")


def _annotations(
    annotations: ToolAnnotations | Mapping[str, Any] | None, tool_name: str
) -> Mapping[str, Any] | None:
    if annotations is None:
        return None
    if isinstance(annotations, ToolAnnotations):
        return annotations.to_dict()
    unknown = set(annotations) - ANNOTATION_KEYS
    if unknown:
        raise ToolDefinitionError(
            f"tool {tool_name!r}: unknown annotation keys {sorted(unknown)}; "
            f"known: {sorted(ANNOTATION_KEYS)}"
        )
    return dict(annotations)


def _timeout(timeout: float | None, tool_name: str) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ToolDefinitionError(f"tool {tool_name!r}: timeout must be > 0 seconds")
    return float(timeout)


def _icons(icons: Sequence[Mapping[str, Any]] | None, tool_name: str) -> tuple[dict[str, Any], ...]:
    checked: list[dict[str, Any]] = []
    for icon in icons or ():
        if not isinstance(icon, Mapping) or not isinstance(icon.get("src"), str):
            raise ToolDefinitionError(f"tool {tool_name!r}: each icon needs a string 'src'")
        checked.append(dict(icon))
    return tuple(checked)
