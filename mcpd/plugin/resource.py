"""``@mcpd.resource``: data a client can read by URI, fixed or from an RFC 6570 template.

A fixed URI (``"config://app"``) is listed by ``resources/list``; a URI template
(``"notes://{name}"``) is listed by ``resources/templates/list`` and serves every URI that
matches it, passing the template's variables to the function as keyword arguments (strings).

The function returns ``str`` (a text resource), ``bytes`` (a binary one, sent base64), or one
or more ``ResourceContents`` for full control. Raise ``mcpd.ResourceNotFound`` when a
template's variables name nothing; the client then gets the protocol's not-found error.
"""

from __future__ import annotations

import base64
import inspect
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, overload

from mcpd.plugin.calling import call_plugin
from mcpd.plugin.completion import Completer, Completers
from mcpd.plugin.context import Context
from mcpd.plugin.errors import ToolDefinitionError
from mcpd.plugin.schema import is_context, type_hints
from mcpd.plugin.tool import check_scopes

__all__ = ["Resource", "ResourceContents", "ResourceNotFound", "resource"]

TITLE_SINCE: Final = "2025-06-18"
ICONS_SINCE: Final = "2025-11-25"

# RFC 6570 expressions we can match back against a URI: {var} (simple: no reserved
# characters) and {+var} (reserved: anything, slashes included).
_EXPRESSION: Final = re.compile(r"\{([+]?)([A-Za-z0-9_]+)\}")
_UNSUPPORTED: Final = re.compile(r"\{[#./;?&=,!@|]")
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


class ResourceNotFound(Exception):
    """Raise from a resource function: nothing exists at this URI.

    Example::

        @mcpd.resource("notes://{name}")
        def note(name: str) -> str:
            if name not in NOTES:
                raise mcpd.ResourceNotFound(f"notes://{name}")
            return NOTES[name]
    """

    def __init__(self, uri: str) -> None:
        super().__init__(f"resource not found: {uri}")
        self.uri = uri


@dataclass(frozen=True, slots=True)
class ResourceContents:
    """One item of a ``resources/read`` answer: ``text`` or ``blob`` (raw bytes), not both.

    ``uri`` defaults to the URI that was read.

    Example::

        @mcpd.resource("report://latest")
        def latest() -> list[mcpd.ResourceContents]:
            return [
                mcpd.ResourceContents(text=summary, mime_type="text/markdown"),
                mcpd.ResourceContents(blob=chart_png, mime_type="image/png",
                                      uri="report://latest/chart"),
            ]
    """

    text: str | None = None
    blob: bytes | None = None
    mime_type: str | None = None
    uri: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.blob is None):
            raise ValueError("ResourceContents needs exactly one of text= or blob=")
        if self.blob is not None and not isinstance(self.blob, bytes):
            raise TypeError("blob must be bytes")
        if self.text is not None and not isinstance(self.text, str):
            raise TypeError("text must be str")

    def to_dict(self, uri: str, default_mime_type: str | None) -> dict[str, Any]:
        contents: dict[str, Any] = {"uri": self.uri or uri}
        mime_type = self.mime_type or default_mime_type
        if mime_type is not None:
            contents["mimeType"] = mime_type
        if self.blob is not None:
            contents["blob"] = base64.b64encode(self.blob).decode("ascii")
        else:
            contents["text"] = self.text
        return contents


@dataclass(frozen=True, slots=True, eq=False)
class Resource:
    """A resource (fixed ``uri``) or resource template (``uri`` has ``{variables}``).

    Made by ``@mcpd.resource``; calling it calls the function.
    """

    uri: str
    fn: Callable[..., Any]
    name: str
    title: str | None
    description: str | None
    mime_type: str | None
    size: int | None
    annotations: Mapping[str, Any] | None
    icons: tuple[Mapping[str, Any], ...]
    variables: tuple[str, ...]
    context: str | None
    is_async: bool
    _pattern: re.Pattern[str] | None = field(repr=False)
    completers: Completers = field(repr=False, compare=False)
    # Scopes a caller needs when [auth] is on; [[auth.rules]] in the config may replace them.
    scopes: frozenset[str] = frozenset()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def is_template(self) -> bool:
        return self._pattern is not None

    def complete(self, variable: str) -> Callable[[Completer], Completer]:
        """Attach a completion provider for one template variable.

        Example::

            @note.complete("name")
            def _(value: str, context: Mapping[str, str]) -> list[str]:
                return [n for n in NOTES if n.startswith(value)]
        """
        return self.completers.register(variable)

    def match(self, uri: str) -> dict[str, str] | None:
        """The template's variables for ``uri``, or None when it is not this resource."""
        if self._pattern is None:
            return {} if uri == self.uri else None
        found = self._pattern.fullmatch(uri)
        if found is None:
            return None
        return {name: urllib.parse.unquote(value) for name, value in found.groupdict().items()}

    def definition(self, revision: str) -> dict[str, Any]:
        """The ``resources/list`` (or ``resources/templates/list``) entry for ``revision``."""
        entry: dict[str, Any] = {"uriTemplate" if self.is_template else "uri": self.uri}
        entry["name"] = self.name
        if self.title is not None and revision >= TITLE_SINCE:
            entry["title"] = self.title
        if self.description:
            entry["description"] = self.description
        if self.mime_type is not None:
            entry["mimeType"] = self.mime_type
        if self.size is not None and not self.is_template:
            entry["size"] = self.size
        if self.annotations:
            entry["annotations"] = dict(self.annotations)
        if self.icons and revision >= ICONS_SINCE:
            entry["icons"] = [dict(icon) for icon in self.icons]
        return entry

    async def read(self, uri: str, variables: Mapping[str, str], context: Context) -> Any:
        """Run the function for ``uri``; its return value, unrendered."""
        return await call_plugin(
            self.fn,
            is_async=self.is_async,
            arguments=variables,
            context_parameter=self.context,
            context=context,
        )

    def render(self, value: Any, uri: str) -> list[dict[str, Any]]:
        """The ``contents`` of a ``ReadResourceResult`` for a returned value."""
        items = value if isinstance(value, list | tuple) else [value]
        contents: list[dict[str, Any]] = []
        for returned in items:
            item = returned
            if isinstance(returned, str):
                item = ResourceContents(text=returned)
            elif isinstance(returned, bytes | bytearray):
                item = ResourceContents(blob=bytes(returned))
            if not isinstance(item, ResourceContents):
                raise TypeError(
                    f"resource {self.name!r} returned {type(item).__name__}; "
                    "return str, bytes or mcpd.ResourceContents"
                )
            contents.append(item.to_dict(uri, self.mime_type))
        return contents


@overload
def resource(uri: str, /) -> Callable[[Callable[..., Any]], Resource]: ...


@overload
def resource(
    uri: str,
    /,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    mime_type: str | None = None,
    size: int | None = None,
    annotations: Mapping[str, Any] | None = None,
    icons: Sequence[Mapping[str, Any]] | None = None,
    scopes: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Resource]: ...


def resource(
    uri: str,
    /,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    mime_type: str | None = None,
    size: int | None = None,
    annotations: Mapping[str, Any] | None = None,
    icons: Sequence[Mapping[str, Any]] | None = None,
    scopes: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Resource]:
    """Serve a function's return value as the resource at ``uri`` (or matching a template).

    ``name`` defaults to the function's name, ``description`` to its docstring. A parameter
    annotated ``mcpd.Context`` receives the read's context (to log, or ask the client for
    input); every other parameter must be a template variable. ``scopes`` are what a caller
    needs when ``[auth]`` is on, as for ``@mcpd.tool``.

    Example::

        @mcpd.resource("config://app", mime_type="application/json")
        def app_config() -> str:
            return json.dumps(CONFIG)

        @mcpd.resource("logs://{service}/{+path}", mime_type="text/plain", scopes=["logs:read"])
        async def log_file(service: str, path: str) -> str:
            return await read_log(service, path)
    """
    _check_uri(uri)
    checked = check_scopes(scopes, f"resource {uri!r}")

    def decorate(fn: Callable[..., Any]) -> Resource:
        return _build(
            fn,
            uri,
            name=name,
            title=title,
            description=description,
            mime_type=mime_type,
            size=size,
            annotations=annotations,
            icons=icons,
            scopes=checked,
        )

    return decorate


def _build(
    fn: Callable[..., Any],
    uri: str,
    *,
    name: str | None,
    title: str | None,
    description: str | None,
    mime_type: str | None,
    size: int | None,
    annotations: Mapping[str, Any] | None,
    icons: Sequence[Mapping[str, Any]] | None,
    scopes: frozenset[str] = frozenset(),
) -> Resource:
    if not callable(fn) or inspect.isclass(fn) or isinstance(fn, Resource):
        raise ToolDefinitionError(f"@mcpd.resource needs a function, got {fn!r}")
    label = f"resource {uri!r}"
    pattern, variables = _compile(uri, label)
    hints = type_hints(fn, label)
    context: str | None = None
    parameters = inspect.signature(fn).parameters.values()
    for parameter in parameters:
        annotation = hints.get(parameter.name)
        if is_context(annotation):
            context = parameter.name
        elif parameter.name not in variables and parameter.default is inspect.Parameter.empty:
            raise ToolDefinitionError(
                f"{label}: parameter {parameter.name!r} is not a template variable"
            )
    missing = set(variables) - {p.name for p in parameters}
    if missing:
        raise ToolDefinitionError(f"{label}: no parameter for template variables {sorted(missing)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ToolDefinitionError(f"{label}: size must be a non-negative int")
    return Resource(
        uri=uri,
        fn=fn,
        name=name if name is not None else getattr(fn, "__name__", uri),
        title=title,
        description=description if description is not None else inspect.getdoc(fn),
        mime_type=mime_type,
        size=size,
        annotations=dict(annotations) if annotations else None,
        icons=tuple(dict(icon) for icon in icons or ()),
        variables=variables,
        context=context,
        is_async=inspect.iscoroutinefunction(fn),
        _pattern=pattern,
        completers=Completers(label, variables),
        scopes=scopes,
    )


def _check_uri(uri: object) -> None:
    if not isinstance(uri, str) or not _SCHEME.match(uri):
        raise ToolDefinitionError(f"resource URI must be absolute (scheme:...), got {uri!r}")


def _compile(uri: str, label: str) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
    if _UNSUPPORTED.search(uri):
        raise ToolDefinitionError(
            f"{label}: only {{var}} and {{+var}} template expressions are supported"
        )
    parts: list[str] = []
    variables: list[str] = []
    position = 0
    for expression in _EXPRESSION.finditer(uri):
        operator, variable = expression.groups()
        if variable in variables:
            raise ToolDefinitionError(f"{label}: variable {variable!r} appears twice")
        variables.append(variable)
        parts.append(re.escape(uri[position : expression.start()]))
        value = r".+?" if operator == "+" else r"[^/?#&,]+"
        parts.append(f"(?P<{variable}>{value})")
        position = expression.end()
    if not variables:
        if "{" in uri or "}" in uri:
            raise ToolDefinitionError(f"{label}: malformed template expression")
        return None, ()
    rest = uri[position:]
    if "{" in rest or "}" in rest or any("{" in p or "}" in p for p in parts[::2]):
        raise ToolDefinitionError(f"{label}: malformed template expression")
    parts.append(re.escape(rest))
    return re.compile("".join(parts)), tuple(variables)
