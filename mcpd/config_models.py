"""Config tables whose values nest (``[auth]``: ``[[auth.keys]]``, ``[auth.oauth]``...).

Such a table is registered in ``mcpd.config.MODEL_TABLES`` with a pydantic model. Each layer
contributes its top-level keys whole (a higher layer replaces ``auth.oauth`` entirely, not key
by key); the merged table is validated once, and the first error becomes one line naming the
layer that set the offending key and its dotted path: ``<file>: auth.keys[0].hash: <message>``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from mcpd.secret_values import Secret

Loc = tuple[int | str, ...]


def plain_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with TOML dates and times as ISO strings (JSON-able for ``config show``)."""
    return {key: _plain(value) for key, value in values.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return value
    if isinstance(value, dt.date | dt.time):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def dotted(table: str, loc: Loc) -> str:
    """``("keys", 0, "hash")`` in table ``auth`` -> ``auth.keys[0].hash``."""
    text = table
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def describe_error(
    table: str,
    model: type[BaseModel],
    error: ValidationError,
    origins: Mapping[str, str],
    table_origin: str,
) -> str:
    """The first problem as ``<origin>: <dotted key>: <message>``.

    ``origins`` maps each top-level key to the layer it came from; a problem with the table
    as a whole is blamed on ``table_origin``.
    """
    errors = error.errors(include_url=False)
    first = errors[0]
    loc: Loc = tuple(part for part in first["loc"] if not _is_tag(part))
    top = loc[0] if loc else None
    origin = origins.get(str(top)) if top is not None else None
    if origin is None:
        origin = table_origin
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{origin}: {dotted(table, loc)}: {_message(first, model, loc)}{more}"


def _is_tag(part: int | str) -> bool:
    # pydantic puts validator names such as "function-after[...]" into some locations.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _message(error: ErrorDetails, model: type[BaseModel], loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        key = str(loc[-1]) if loc else ""
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key{hint}; known keys: {', '.join(sorted(known))}"
    if kind == "missing":
        return "required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if kind.endswith("_type") or kind in ("literal_error", "greater_than_equal", "less_than_equal"):
        message += f", got {error['input']!r}"
    return message


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The field names of the (sub)model found at ``loc``, for a did-you-mean hint."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    return list(current.model_fields) if _is_model(current) else []


def _step(current: Any, part: int | str) -> Any:
    if isinstance(part, int):
        args = [arg for arg in typing.get_args(current) if arg is not Ellipsis]
        return _model_in(args[0]) if args else None
    if not _is_model(current) or part not in current.model_fields:
        return None
    return _model_in(current.model_fields[part].annotation)


def _model_in(annotation: Any) -> Any:
    """``X``, ``X | None`` or ``tuple[X, ...]`` -> the model or sequence type inside."""
    if _is_model(annotation):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return _model_in(arg)
    if isinstance(origin, type) and issubclass(origin, Sequence):
        return annotation
    return None


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
