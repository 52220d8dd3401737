"""JSON tools: pretty-print or minify a document, and pick a value out of it by JSON Pointer."""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from pydantic import Field, JsonValue

import mcpd
from mcpd_example.settings import checked_utf8

READ_ONLY: Final = {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False}


@mcpd.tool(title="Format JSON", annotations=READ_ONLY)
def json_format(
    document: Annotated[str, "A JSON document"],
    indent: Annotated[int, Field(ge=0, le=8, description="Spaces per level; 0 = one line")] = 2,
    sort_keys: Annotated[bool, "Sort object keys alphabetically"] = False,
) -> str:
    """Validate a JSON document and re-print it indented (or minified with indent 0)."""
    value = _parse(document)
    if indent == 0:
        return json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, separators=(",", ":"))
    return json.dumps(value, ensure_ascii=False, sort_keys=sort_keys, indent=indent)


@mcpd.tool(title="Query JSON", annotations=READ_ONLY)
def json_query(
    document: Annotated[str, "A JSON document"],
    pointer: Annotated[str, "An RFC 6901 JSON Pointer such as /items/0/name ('' = the whole)"],
) -> JsonValue:
    """Return the value a JSON Pointer designates inside a JSON document."""
    value = _parse(document)
    if pointer and not pointer.startswith("/"):
        raise mcpd.ToolError(f"a JSON Pointer starts with '/', got {pointer!r}")
    where = ""
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        where += "/" + raw
        value = _step(value, token, where)
    result: JsonValue = value
    return result


def _parse(document: str) -> Any:
    checked_utf8(document, "document")
    try:
        return json.loads(document)
    except json.JSONDecodeError as exc:
        raise mcpd.ToolError(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _step(value: Any, token: str, where: str) -> Any:
    if isinstance(value, dict):
        if token not in value:
            raise mcpd.ToolError(f"nothing at {where}: no key {token!r}")
        return value[token]
    if isinstance(value, list):
        # RFC 6901: array indexes are decimal without leading zeros.
        if not token.isdecimal() or (token != "0" and token.startswith("0")):
            raise mcpd.ToolError(f"nothing at {where}: {token!r} is not an array index")
        if int(token) >= len(value):
            raise mcpd.ToolError(f"nothing at {where}: the array has {len(value)} items")
        return value[int(token)]
    raise mcpd.ToolError(f"nothing at {where}: {type(value).__name__} values have no members")
