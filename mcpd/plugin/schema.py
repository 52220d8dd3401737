"""Input and output JSON Schemas from a tool function's type hints, built with pydantic.

Inputs: the parameters become a pydantic model that forbids unknown arguments. Each model
field has a private name and the parameter's name as its alias, so any parameter name works,
including ones pydantic reserves (``json``, ``schema``, ``model_config``, ``_private``).
Validation is pydantic's lax mode, which is what JSON input needs (ISO strings become dates,
strings become enums).

Outputs: a return annotation that is structured (a dict, TypedDict, pydantic model,
dataclass, list, int, ...) gets an ``outputSchema``. Up to 2025-11-25 an output schema must
describe an object, so a non-object return type ``T`` is published as
``{"type": "object", "properties": {"result": T}, "required": ["result"]}`` and its value is
sent as ``{"result": value}``. We wrap in every revision so one tool answers identically
everywhere. Text and content types (``str``, ``mcpd.Image``, ...) get no output schema.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

import pydantic
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, JsonSchemaWarningKind
from pydantic_core import CoreSchema

from mcpd.plugin.content import CONTENT_TYPES
from mcpd.plugin.context import Context
from mcpd.plugin.errors import InvalidArguments, ToolDefinitionError

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
MAX_REPORTED_ERRORS: Final = 5
_EMPTY: Final = inspect.Parameter.empty


class _SchemaGenerator(GenerateJsonSchema):
    # Defaults that are not JSON (a set, an object) are left out of the schema; pydantic would
    # warn, and a warning at import time would make the whole plugin fail under -W error.
    ignored_warning_kinds: set[JsonSchemaWarningKind] = {
        "skipped-choice",
        "non-serializable-default",
    }

    def field_title_should_be_set(self, schema: CoreSchema | Any) -> bool:
        # A per-property "title" only repeats the property name: noise on every tools/list.
        return False


@dataclass(frozen=True, slots=True)
class InputSpec:
    """How one tool's arguments are described and validated."""

    model: type[BaseModel]
    aliases: Mapping[str, str]  # model field -> parameter name
    context: str | None  # the parameter that receives the Context, if any
    schema: Mapping[str, Any]  # with "$schema"; definition() strips it for old revisions

    def validate(self, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validated keyword arguments for the function; defaults are left to the function."""
        try:
            parsed = self.model.model_validate(dict(arguments or {}))
        except pydantic.ValidationError as exc:
            raise InvalidArguments(describe_errors(exc)) from None
        return {self.aliases[field]: getattr(parsed, field) for field in parsed.model_fields_set}


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """How one tool's return value is checked and published; ``adapter`` None = unstructured."""

    adapter: TypeAdapter[Any] | None = None
    schema: Mapping[str, Any] | None = None
    wrapped: bool = False


def type_hints(fn: Callable[..., Any], tool_name: str) -> dict[str, Any]:
    """The function's resolved annotations (string annotations included)."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(
            f"tool {tool_name!r}: cannot resolve its type hints ({exc}); types used in "
            "annotations must be importable at module level, not only under TYPE_CHECKING"
        ) from exc


def input_spec(fn: Callable[..., Any], hints: Mapping[str, Any], tool_name: str) -> InputSpec:
    """Describe the parameters of ``fn`` as a pydantic model and a JSON Schema."""
    fields: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    context: str | None = None
    for parameter in inspect.signature(fn).parameters.values():
        _check_kind(parameter, tool_name)
        annotation = hints.get(parameter.name, Any)
        if is_context(annotation):
            context = parameter.name
            continue
        field = f"arg{len(fields)}"
        aliases[field] = parameter.name
        fields[field] = (_describe_annotation(annotation), _field_info(parameter))
    try:
        model = pydantic.create_model(
            f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        schema = model.model_json_schema(schema_generator=_SchemaGenerator)
    except pydantic.PydanticUserError as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: {exc}") from exc
    schema.pop("title", None)
    return InputSpec(model, aliases, context, {"$schema": JSON_SCHEMA_DIALECT, **schema})


def output_spec(annotation: Any, tool_name: str) -> OutputSpec:
    """Describe the return annotation; unstructured returns get no schema."""
    if _is_unstructured(annotation):
        return OutputSpec()
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        schema = adapter.json_schema(mode="serialization", schema_generator=_SchemaGenerator)
    except pydantic.PydanticUserError as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: return type: {exc}") from exc
    if schema.get("type") == "object":
        return OutputSpec(adapter, {"$schema": JSON_SCHEMA_DIALECT, **schema}, wrapped=False)
    return OutputSpec(adapter, _wrap(schema), wrapped=True)


def describe_errors(exc: pydantic.ValidationError) -> str:
    """One human sentence per bad field, e.g. ``b: Input should be a valid integer``."""
    parts: list[str] = []
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    for error in errors[:MAX_REPORTED_ERRORS]:
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        if error["type"] == "missing":
            parts.append(f"{where}: required argument is missing")
        elif error["type"] == "extra_forbidden":
            parts.append(f"{where}: unexpected argument")
        else:
            parts.append(f"{where}: {error['msg']}")
    if len(errors) > MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - MAX_REPORTED_ERRORS} more")
    return "; ".join(parts)


def _check_kind(parameter: inspect.Parameter, tool_name: str) -> None:
    if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
        return
    raise ToolDefinitionError(
        f"tool {tool_name!r}: parameter {parameter.name!r} must be passable by keyword "
        "(no positional-only parameters, *args or **kwargs)"
    )


def _field_info(parameter: inspect.Parameter) -> FieldInfo:
    if parameter.default is _EMPTY:
        return typing.cast(FieldInfo, Field(alias=parameter.name))
    return typing.cast(FieldInfo, Field(default=parameter.default, alias=parameter.name))


def _describe_annotation(annotation: Any) -> Any:
    """Turn plain-string ``Annotated`` metadata into a pydantic field description."""
    if typing.get_origin(annotation) is not Annotated:
        return annotation
    base, *metadata = typing.get_args(annotation)
    converted = [Field(description=m) if isinstance(m, str) else m for m in metadata]
    return Annotated[(base, *converted)]


def _strip_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def is_context(annotation: Any) -> bool:
    """Whether a parameter with this annotation receives the call's ``mcpd.Context``.

    ``mcpd.Context`` (or a subclass), also made optional (``Context | None``,
    ``Optional[Context]``, the usual spelling with a ``None`` default) or ``Annotated``.

    Example::

        is_context(mcpd.Context | None)  # True
    """
    annotation = _strip_annotated(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) != 1:
            return False
        annotation = _strip_annotated(members[0])
    return isinstance(annotation, type) and issubclass(annotation, Context)


def _is_unstructured(annotation: Any) -> bool:
    """True for no annotation, ``Any``, ``None``, ``str``, content types and unions of them,
    and sequences of content types (``list[mcpd.Image]``, ``list[str | mcpd.Image]``)."""
    annotation = _strip_annotated(annotation)
    if annotation in (_EMPTY, Any, object, None, type(None), str):
        return True
    if isinstance(annotation, type) and issubclass(annotation, CONTENT_TYPES):
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return all(_is_unstructured(arg) for arg in args)
    if isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str:
        items = [arg for arg in args if arg is not Ellipsis]
        return bool(items) and all(_is_content_items(arg) for arg in items)
    return False


def _is_content_items(annotation: Any) -> bool:
    """An item type made of content types, optionally mixed with ``str``."""
    annotation = _strip_annotated(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
    else:
        members = (annotation,)
    content = [m for m in members if isinstance(m, type) and issubclass(m, CONTENT_TYPES)]
    return bool(content) and all(m is str or m in content for m in members)


def _wrap(schema: JsonSchemaValue) -> dict[str, Any]:
    inner = dict(schema)
    definitions = inner.pop("$defs", None)  # "#/$defs/..." refs stay valid at the new root
    wrapped: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": {"result": inner},
        "required": ["result"],
    }
    if definitions:
        wrapped["$defs"] = definitions
    return wrapped
