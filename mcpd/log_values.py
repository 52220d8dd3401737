"""What a log event may hold: redaction of secrets and tool arguments, bounds on every value,
and JSON that can always be written (``mcpd.logs`` runs these on every event).

Values under secret-looking keys, config ``Secret`` strings anywhere in a value, and tool
arguments unless enabled are redacted. Client-provided values (a clientInfo nested 300 deep,
a megabyte of text, a lone surrogate, an object whose ``repr`` fails) can neither make
rendering fail nor flood the log.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from structlog.typing import EventDict, WrappedLogger

from mcpd.secret_values import MASK, Secret

_SECRET_PARTS: Final = (
    "authorization",
    "token",
    "password",
    "secret",
    "cookie",
    "api_key",
    "apikey",
)
REDACTED: Final = "[redacted]"
_KEYS_REMEMBERED: Final = 1024  # keys whose redaction a Redactor remembers

# Bounds on values in an event: client-provided values (a clientInfo name nested 300 deep, a
# megabyte of text) must neither make the renderer fail nor flood the log.
MAX_DEPTH: Final = 6
MAX_ITEMS: Final = 64
MAX_TEXT: Final = 2048
_SCALARS: Final = (int, float, bool, type(None))
_SCALAR_TYPES: Final = frozenset(_SCALARS)


# Values that hold no Secret: exact types, so a str subclass (a Secret) is never one of them.
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})
_MASKABLE: Final = (Secret, dict, list, tuple)


class Redactor:
    """Drop values of secret-looking keys; drop tool arguments unless enabled."""

    def __init__(self, *, log_arguments: bool) -> None:
        self._log_arguments = log_arguments
        # Whether each key seen is redacted: one lookup per key and event (keys are few).
        self._redacts: dict[str, bool] = {}

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        for key, value in event.items():
            redact = self._redacts.get(key)
            if redact is None:
                redact = self._learn(key)
            if redact:
                event[key] = REDACTED
            elif type(value) not in _PLAIN and isinstance(value, _MASKABLE):
                event[key] = _mask_secrets(value)
        return event

    def _learn(self, key: str) -> bool:
        if len(self._redacts) >= _KEYS_REMEMBERED:
            self._redacts.clear()
        redact = _is_secret(key) or (key == "arguments" and not self._log_arguments)
        self._redacts[key] = redact
        return redact


class Guard(Redactor):
    """``Redactor`` and then ``bound_values``, in one pass over the event (the same result)."""

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        for key, value in event.items():
            redact = self._redacts.get(key)
            if redact is None:
                redact = self._learn(key)
            kind = type(value)
            if redact:
                event[key] = REDACTED  # a short string: within the bounds
            elif kind is str:
                if len(value) > MAX_TEXT:
                    event[key] = _bounded(value, MAX_DEPTH)
            elif kind in _SCALAR_TYPES:
                pass
            elif isinstance(value, _MASKABLE):
                event[key] = _bounded(_mask_secrets(value), MAX_DEPTH)
            elif not isinstance(value, _SCALARS):
                event[key] = _bounded(value, MAX_DEPTH)
        return event


def bound_values(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """Cut every value down to ``MAX_DEPTH`` levels, ``MAX_ITEMS`` items and ``MAX_TEXT``
    characters (containers and strings that fit pass through untouched)."""
    for key, value in event.items():
        kind = type(value)
        if kind is str:  # most values: checked here, without a call
            if len(value) > MAX_TEXT:
                event[key] = _bounded(value, MAX_DEPTH)
        elif kind not in _SCALAR_TYPES and not isinstance(value, _SCALARS):
            event[key] = _bounded(value, MAX_DEPTH)
    return event


def _bounded(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "...[truncated]"
    if isinstance(value, _SCALARS):
        return value
    if depth <= 0:
        return f"[{type(value).__name__} nested too deep]"
    if isinstance(value, dict):
        items = list(value.items())
        bounded = {str(k): _bounded(v, depth - 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            bounded["..."] = f"{len(items) - MAX_ITEMS} more"
        return bounded
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        bounded_items = [_bounded(v, depth - 1) for v in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            bounded_items.append(f"... {len(items) - MAX_ITEMS} more")
        return bounded_items
    return _bounded(safe_repr(value), depth)


def safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a plugin object whose __repr__ fails
        return f"<{type(value).__name__} object>"


def _mask_secrets(value: Any) -> Any:
    """Config secrets (``Secret`` strings) anywhere in a logged value become the mask."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        return {key: _mask_secrets(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_secrets(item) for item in value]
    return value


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_PARTS)


def json_text(value: Any, **_: Any) -> str:
    """``value`` as compact JSON; whatever it holds, this does not fail."""
    try:
        return orjson.dumps(value, default=safe_repr).decode()
    except (TypeError, orjson.JSONEncodeError):  # a lone surrogate, deep nesting: never fail
        return orjson.dumps(_printable(value), default=safe_repr).decode()


def json_line(value: Any, **_: Any) -> bytes:
    """``json_text``'s text, encoded, with its newline: what ``mcpd.logs.LineWriter`` writes."""
    try:
        return orjson.dumps(value, default=safe_repr, option=orjson.OPT_APPEND_NEWLINE)
    except (TypeError, orjson.JSONEncodeError):
        printable = _printable(value)
        return orjson.dumps(printable, default=safe_repr, option=orjson.OPT_APPEND_NEWLINE)


def _printable(value: Any, depth: int = MAX_DEPTH + 2) -> Any:
    """``value`` with every string made valid UTF-8 and nesting cut: always encodable."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if depth <= 0:
        return "[nested too deep]"
    if isinstance(value, dict):
        return {_printable(str(k), 1): _printable(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v, depth - 1) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -(2**63) <= value < 2**64 else str(value)
    return value if isinstance(value, _SCALARS) else _printable(safe_repr(value), 1)
