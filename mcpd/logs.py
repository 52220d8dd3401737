"""Logging: every event is a structlog event, rendered as JSON lines, for a console or journald.

Standard-library loggers (hypercorn's among them) go through the same processors, so one
stream has one format. Request, session and tool context bound with structlog's contextvars
appear in every event. Tracebacks never carry frame locals, and values under secret-looking
keys, and tool arguments unless enabled, are redacted.

When stderr is the journal (``$JOURNAL_STREAM`` names its device and inode), each event is
one line ``<N>logger: event key=value ...``: ``<N>`` is the syslog priority journald reads
(sd-daemon(3)), and there is no timestamp because the journal stamps every entry itself.
journald ends an entry at a newline, so any value with a control character, tracebacks
included, is written as a JSON string: its newlines become ``\\n`` and one event stays one entry.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from typing import Any, Final, Literal, TextIO

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from mcpd.config import LoggingSettings
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


class Redactor:
    """Drop values of secret-looking keys; drop tool arguments unless enabled."""

    def __init__(self, *, log_arguments: bool) -> None:
        self._log_arguments = log_arguments

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        for key, value in event.items():
            if _is_secret(key) or (key == "arguments" and not self._log_arguments):
                event[key] = REDACTED
            elif isinstance(value, Secret | dict | list | tuple):
                event[key] = _mask_secrets(value)
        return event


# Bounds on values in an event: client-provided values (a clientInfo name nested 300 deep, a
# megabyte of text) must neither make the renderer fail nor flood the log.
MAX_DEPTH: Final = 6
MAX_ITEMS: Final = 64
MAX_TEXT: Final = 2048
_SCALARS: Final = (int, float, bool, type(None))


def bound_values(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """Cut every value down to ``MAX_DEPTH`` levels, ``MAX_ITEMS`` items and ``MAX_TEXT``
    characters (containers and strings that fit pass through untouched)."""
    for key, value in event.items():
        if not isinstance(value, _SCALARS):
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
    return _bounded(_safe_repr(value), depth)


def _safe_repr(value: Any) -> str:
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


@functools.lru_cache(maxsize=1024)
def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_PARTS)


class _NamedLogger(structlog.WriteLogger):
    """structlog's plain line writer, carrying the logger name ``add_logger_name`` reads."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


def _json_serializer(value: Any, **_: Any) -> str:
    try:
        return orjson.dumps(value, default=_safe_repr).decode()
    except (TypeError, orjson.JSONEncodeError):  # a lone surrogate, deep nesting: never fail
        return orjson.dumps(_printable(value), default=_safe_repr).decode()


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
    return value if isinstance(value, _SCALARS) else _printable(_safe_repr(value), 1)


# sd-daemon(3) priorities; structlog's add_log_level has already folded "warn" and
# "exception" into "warning" and "error".
_PRIORITIES: Final = {"debug": 7, "info": 6, "notice": 5, "warning": 4, "error": 3, "critical": 2}
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
# A value is written bare only when it cannot be read as JSON (no leading quote, bracket,
# brace, digit or minus; not true/false/null) and holds no space, quote, "=" or backslash.
_BARE: Final = re.compile(r'[^\s"=\\\[{\d\x00-\x1f\x7f-][^\s"=\\\x00-\x1f\x7f]*')
_JSON_WORDS: Final = frozenset({"true", "false", "null"})


class JournalRenderer:
    """One event as one journal line: ``<6>mcpd.daemon: daemon.listening binds=[...] tools=3``.

    Field values that are not plain words (spaces, quotes, control characters, text that
    reads as JSON, or not a string at all) are written as compact JSON, so a traceback's
    newlines become ``\\n``. Every field is then ``key=word`` or ``key=<JSON>``.
    """

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> str:
        priority = _PRIORITIES.get(event.pop("level", "info"), 6)
        source = event.pop("logger", None)
        message = event.pop("event", "")
        parts = [f"<{priority}>{source}:" if source else f"<{priority}>"]
        if isinstance(message, str) and not _CONTROL.search(message):
            parts.append(message)
        else:
            parts.append(_json_serializer(message))
        parts.extend(
            f"{_journal_atom(str(key))}={_journal_atom(value)}" for key, value in event.items()
        )
        return " ".join(parts)


def _journal_atom(value: Any) -> str:
    if isinstance(value, str) and _BARE.fullmatch(value) and value not in _JSON_WORDS:
        return value
    return _json_serializer(value)


Format = Literal["json", "console", "journal"]


def _shared(settings: LoggingSettings, fmt: Format) -> list[Processor]:
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
    ]
    if fmt != "journal":  # the journal stamps each entry itself
        processors.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
    processors.append(Redactor(log_arguments=settings.log_arguments))
    processors.append(bound_values)
    return processors


def _renderer(fmt: Format, stream: TextIO) -> list[Processor]:
    if fmt == "console":
        return [structlog.dev.ConsoleRenderer(colors=_is_tty(stream))]
    if fmt == "journal":
        # Python's own traceback text: it never includes frame locals.
        return [structlog.processors.ExceptionRenderer(), JournalRenderer()]
    # Frame locals would leak tool arguments and tokens into logs.
    transformer = ExceptionDictTransformer(show_locals=False)
    return [
        structlog.processors.ExceptionRenderer(transformer),
        structlog.processors.JSONRenderer(serializer=_json_serializer),
    ]


def resolve_format(settings: LoggingSettings, stream: TextIO) -> Format:
    """The format ``auto`` stands for on ``stream``: journal, else console on a TTY, else JSON."""
    if settings.format != "auto":
        return settings.format
    if is_journal(stream):
        return "journal"
    return "console" if _is_tty(stream) else "json"


def is_journal(stream: TextIO) -> bool:
    """Whether ``stream`` is the journal stream systemd connected (``$JOURNAL_STREAM``).

    systemd sets ``JOURNAL_STREAM=<device>:<inode>`` for the stream it connected; the
    variable survives into children whose stderr was redirected, so compare with the
    file actually open.
    """
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        status = os.fstat(stream.fileno())
        return (int(device), int(inode)) == (status.st_dev, status.st_ino)
    except (AttributeError, OSError, ValueError):  # no file behind it, or no/odd variable
        return False


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(settings: LoggingSettings, *, stream: TextIO | None = None) -> None:
    """Send structlog events and standard-library records, in one format, to ``stream``.

    mcpd's own events take structlog's direct path (a filtering logger writing lines); that is
    several times cheaper than going through the standard library, and one event is logged
    per tool call. Idempotent: calling it again replaces the previous configuration.
    """
    out = stream if stream is not None else sys.stderr
    fmt = resolve_format(settings, out)
    shared = _shared(settings, fmt)
    renderer = _renderer(fmt, out)
    _route_stdlib(settings, out, shared, renderer)
    structlog.configure(
        processors=[*shared, *renderer],
        logger_factory=lambda name="mcpd", *_: _NamedLogger(out, name),
        wrapper_class=structlog.make_filtering_bound_logger(_level(settings)),
        cache_logger_on_first_use=True,
    )


def _route_stdlib(
    settings: LoggingSettings, out: TextIO, shared: list[Processor], renderer: list[Processor]
) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(settings))


def _level(settings: LoggingSettings) -> int:
    return int(logging.getLevelName(settings.level.upper()))
