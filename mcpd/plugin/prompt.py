"""``@mcpd.prompt``: a reusable message template a client can list and fill in.

The function's parameters are the prompt's arguments. Arguments are always strings on the
wire; a parameter with a default is optional, and ``Annotated[str, "..."]`` describes it. The
function returns a ``str`` (one user message), a ``PromptMessage``, or a list of them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, overload

from mcpd.plugin.calling import call_plugin
from mcpd.plugin.completion import Completer, Completers
from mcpd.plugin.content import CONTENT_TYPES
from mcpd.plugin.context import Context
from mcpd.plugin.errors import InvalidArguments, ToolDefinitionError
from mcpd.plugin.schema import is_context, type_hints
from mcpd.plugin.tool import TOOL_NAME, check_scopes

__all__ = ["Prompt", "PromptMessage", "prompt"]

TITLE_SINCE: Final = "2025-06-18"
ICONS_SINCE: Final = "2025-11-25"


@dataclass(frozen=True, slots=True)
class PromptMessage:
    """One message of a prompt: a role and one content item (text, image, audio, resource).

    Example::

        mcpd.PromptMessage("user", f"Review this diff:\\n{diff}")
        mcpd.PromptMessage("user", mcpd.Image(png_bytes, "image/png"))
    """

    role: Literal["user", "assistant"]
    content: Any

    def __post_init__(self) -> None:
        if self.role not in ("user", "assistant"):
            raise ValueError(f"role must be 'user' or 'assistant', got {self.role!r}")
        if not isinstance(self.content, (str, *CONTENT_TYPES)):
            raise TypeError(
                "content must be str, mcpd.Image, mcpd.Audio, mcpd.EmbeddedResource or "
                f"mcpd.ResourceLink, got {type(self.content).__name__}"
            )

    def to_dict(self, revision: str) -> dict[str, Any]:
        if isinstance(self.content, str):
            block: dict[str, Any] = {"type": "text", "text": self.content}
        else:
            block = self.content.to_block(revision)
        return {"role": self.role, "content": block}


@dataclass(frozen=True, slots=True)
class PromptArgument:
    name: str
    description: str | None
    required: bool


@dataclass(frozen=True, slots=True, eq=False)
class Prompt:
    """A prompt made by ``@mcpd.prompt``; calling it calls the function."""

    name: str
    fn: Callable[..., Any]
    title: str | None
    description: str | None
    arguments: tuple[PromptArgument, ...]
    icons: tuple[Mapping[str, Any], ...]
    context: str | None
    is_async: bool
    completers: Completers = field(repr=False, compare=False)
    # Scopes a caller needs when [auth] is on; [[auth.rules]] in the config may replace them.
    scopes: frozenset[str] = frozenset()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def complete(self, argument: str) -> Callable[[Completer], Completer]:
        """Attach a completion provider for one argument.

        Example::

            @review.complete("language")
            def _(value: str, context: Mapping[str, str]) -> list[str]:
                return [lang for lang in LANGUAGES if lang.startswith(value)]
        """
        return self.completers.register(argument)

    def definition(self, revision: str) -> dict[str, Any]:
        """The ``prompts/list`` entry for ``revision``."""
        entry: dict[str, Any] = {"name": self.name}
        if self.title is not None and revision >= TITLE_SINCE:
            entry["title"] = self.title
        if self.description:
            entry["description"] = self.description
        if self.arguments:
            entry["arguments"] = [_argument(arg) for arg in self.arguments]
        if self.icons and revision >= ICONS_SINCE:
            entry["icons"] = [dict(icon) for icon in self.icons]
        return entry

    def validate_arguments(self, arguments: object) -> dict[str, str]:
        """Keyword arguments for ``get``; ``InvalidArguments`` names what is wrong."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            raise InvalidArguments("arguments must be an object of strings")
        known = {arg.name for arg in self.arguments}
        problems = [f"{key}: unexpected argument" for key in arguments if key not in known]
        problems += [
            f"{arg.name}: required argument is missing"
            for arg in self.arguments
            if arg.required and arg.name not in arguments
        ]
        problems += [
            f"{key}: must be a string"
            for key, value in arguments.items()
            if key in known and not isinstance(value, str)
        ]
        if problems:
            raise InvalidArguments("; ".join(problems))
        return dict(arguments)

    async def get(self, arguments: Mapping[str, str], context: Context) -> Any:
        """Run the function; its return value, unrendered."""
        return await call_plugin(
            self.fn,
            is_async=self.is_async,
            arguments=arguments,
            context_parameter=self.context,
            context=context,
        )

    def render(self, value: Any, revision: str) -> dict[str, Any]:
        """The ``GetPromptResult`` for a returned value."""
        items = value if isinstance(value, list | tuple) else [value]
        messages: list[dict[str, Any]] = []
        for returned in items:
            item = PromptMessage("user", returned) if isinstance(returned, str) else returned
            if not isinstance(item, PromptMessage):
                raise TypeError(
                    f"prompt {self.name!r} returned {type(item).__name__}; "
                    "return str, mcpd.PromptMessage or a list of them"
                )
            messages.append(item.to_dict(revision))
        result: dict[str, Any] = {"messages": messages}
        if self.description:
            result["description"] = self.description
        return result


def _argument(argument: PromptArgument) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": argument.name}
    if argument.description:
        entry["description"] = argument.description
    if argument.required:
        entry["required"] = True
    return entry


@overload
def prompt(fn: Callable[..., Any], /) -> Prompt: ...


@overload
def prompt(
    fn: None = None,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    icons: Sequence[Mapping[str, Any]] | None = None,
    scopes: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Prompt]: ...


def prompt(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    icons: Sequence[Mapping[str, Any]] | None = None,
    scopes: Sequence[str] = (),
) -> Prompt | Callable[[Callable[..., Any]], Prompt]:
    """Turn a function into a ``Prompt``; use bare or with options.

    ``scopes`` are what a caller needs when ``[auth]`` is on, as for ``@mcpd.tool``.

    Example::

        @mcpd.prompt(title="Code review")
        def review(code: Annotated[str, "the code to review"], focus: str = "bugs") -> str:
            \"\"\"Ask for a review of a piece of code.\"\"\"
            return f"Review this code, focusing on {focus}:\\n\\n{code}"
    """

    def decorate(function: Callable[..., Any]) -> Prompt:
        return _build(function, name, title, description, icons, scopes=scopes)

    return decorate if fn is None else decorate(fn)


def _build(
    fn: Callable[..., Any],
    name: str | None,
    title: str | None,
    description: str | None,
    icons: Sequence[Mapping[str, Any]] | None,
    *,
    scopes: Sequence[str] = (),
) -> Prompt:
    if not callable(fn) or inspect.isclass(fn) or isinstance(fn, Prompt):
        raise ToolDefinitionError(f"@mcpd.prompt needs a function, got {fn!r}")
    prompt_name = name if name is not None else getattr(fn, "__name__", "")
    if not isinstance(prompt_name, str) or not TOOL_NAME.fullmatch(prompt_name):
        raise ToolDefinitionError(f"invalid prompt name {prompt_name!r}")
    label = f"prompt {prompt_name!r}"
    hints = type_hints(fn, label)
    arguments: list[PromptArgument] = []
    context: str | None = None
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise ToolDefinitionError(f"{label}: parameter {parameter.name!r} must be a keyword")
        annotation = hints.get(parameter.name, str)
        base, text = _split_annotated(annotation)
        if is_context(annotation):
            context = parameter.name
            continue
        if base not in (str, Any, inspect.Parameter.empty):
            raise ToolDefinitionError(f"{label}: argument {parameter.name!r} must be a str")
        required = parameter.default is inspect.Parameter.empty
        arguments.append(PromptArgument(parameter.name, text, required))
    names = [arg.name for arg in arguments]
    return Prompt(
        name=prompt_name,
        fn=fn,
        title=title,
        description=description if description is not None else inspect.getdoc(fn),
        arguments=tuple(arguments),
        icons=tuple(dict(icon) for icon in icons or ()),
        context=context,
        is_async=inspect.iscoroutinefunction(fn),
        completers=Completers(label, names),
        scopes=check_scopes(scopes, label),
    )


def _split_annotated(annotation: Any) -> tuple[Any, str | None]:
    """``Annotated[str, "text"]`` -> ``(str, "text")``."""
    if typing.get_origin(annotation) is not Annotated:
        return annotation, None
    base, *metadata = typing.get_args(annotation)
    texts = [item for item in metadata if isinstance(item, str)]
    return base, (texts[0] if texts else None)
