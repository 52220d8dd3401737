"""A tool's return value as a ``CallToolResult``, shaped for one protocol revision.

=========================================  ==========================================
returned value                             result
=========================================  ==========================================
``None``                                   no content blocks
``str``                                    one text block
``Image``/``Audio``/``EmbeddedResource``/  one block of that type (degraded to text where
``ResourceLink``                           the revision lacks the type)
a list of those and/or ``str``             one block per item
a structured value (dict, model, ...)      ``structuredContent`` (from 2025-06-18) plus a
                                           text block with the same JSON
=========================================  ==========================================
"""

from __future__ import annotations

from typing import Any, Final

import pydantic
from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

from mcpd.plugin.content import CONTENT_TYPES
from mcpd.plugin.schema import OutputSpec, describe_errors

STRUCTURED_CONTENT_SINCE: Final = "2025-06-18"
_BLOCK_TYPES: Final = (str, *CONTENT_TYPES)


class OutputMismatch(Exception):
    """The value a tool returned does not match its declared return type."""


def render_result(value: Any, output: OutputSpec, revision: str) -> dict[str, Any]:
    """The ``CallToolResult`` for ``value``; ``OutputMismatch`` if it contradicts its type."""
    if output.adapter is not None:
        return _render_declared(value, output.adapter, output.wrapped, revision)
    return _render_undeclared(value, revision)


def _render_declared(
    value: Any, adapter: TypeAdapter[Any], wrapped: bool, revision: str
) -> dict[str, Any]:
    # Validating first guarantees the structuredContent conforms to the published schema.
    try:
        data = adapter.dump_python(adapter.validate_python(value), mode="json")
    except pydantic.ValidationError as exc:
        raise OutputMismatch(describe_errors(exc)) from None  # without the values: may be secret
    except PydanticSerializationError as exc:
        raise OutputMismatch(str(exc)) from None
    return _json_result(data, revision, wrapped=wrapped)


def _render_undeclared(value: Any, revision: str) -> dict[str, Any]:
    if value is None:
        return {"content": []}
    if isinstance(value, _BLOCK_TYPES):
        return {"content": [_block(value, revision)]}
    if isinstance(value, list | tuple) and all(isinstance(v, _BLOCK_TYPES) for v in value):
        return {"content": [_block(item, revision) for item in value]}
    # Nothing declared and nothing recognised: send it as JSON. ``str`` as the fallback keeps
    # an odd value (a Path, a Decimal inside a dict) from turning a finished call into a crash.
    data = to_jsonable_python(value, fallback=str)
    return _json_result(data, revision, wrapped=False)


def _block(item: Any, revision: str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"type": "text", "text": item}
    block: dict[str, Any] = item.to_block(revision)
    return block


def _json_result(data: Any, revision: str, *, wrapped: bool) -> dict[str, Any]:
    """Structured content plus its JSON as text; before 2025-06-18 the text alone.

    Old revisions have no ``structuredContent``, so their text is the bare value rather than
    the ``{"result": ...}`` envelope that only the output schema explains.
    """
    if revision < STRUCTURED_CONTENT_SINCE:
        return {"content": [_text_json(data)]}
    structured = {"result": data} if wrapped else data
    result: dict[str, Any] = {"content": [_text_json(structured)]}
    if isinstance(structured, dict):
        result["structuredContent"] = structured
    return result


def _text_json(data: Any) -> dict[str, Any]:
    return {"type": "text", "text": to_json(data).decode()}
