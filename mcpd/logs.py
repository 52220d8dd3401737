"""Logging: every event is a structlog event, rendered as JSON lines or for a console.

Standard-library loggers (hypercorn's among them) go through the same processors, so one
stream has one format. Request, session and tool context bound with structlog's contextvars
appear in every event. Tracebacks never carry frame locals, and values under secret-looking
keys, and tool arguments unless enabled, are redacted.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Final, TextIO

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from mcpd.config import LoggingSettings

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
        for key in event:
            if _is_secret(key) or (key == "arguments" and not self._log_arguments):
                event[key] = REDACTED
        return event


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
    return orjson.dumps(value, default=repr).decode()


def _shared(settings: LoggingSettings) -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        Redactor(log_arguments=settings.log_arguments),
    ]


def _renderer(settings: LoggingSettings, stream: TextIO) -> list[Processor]:
    console = settings.format == "console" or (settings.format == "auto" and _is_tty(stream))
    if console:
        return [structlog.dev.ConsoleRenderer(colors=_is_tty(stream))]
    # Frame locals would leak tool arguments and tokens into logs.
    transformer = ExceptionDictTransformer(show_locals=False)
    return [
        structlog.processors.ExceptionRenderer(transformer),
        structlog.processors.JSONRenderer(serializer=_json_serializer),
    ]


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
    shared = _shared(settings)
    renderer = _renderer(settings, out)
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
