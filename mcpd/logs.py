"""Logging: every event is a structlog event, rendered as JSON lines or for a console.

Standard-library loggers (hypercorn's among them) go through the same processors, so one
stream has one format. Request, session and tool context bound with structlog's contextvars
appear in every event. Tracebacks never carry frame locals, and values under secret-looking
keys, and tool arguments unless enabled, are redacted.
"""

from __future__ import annotations

import logging
import sys
from typing import Final, TextIO

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
        for key in list(event):
            if _is_secret(key) or (key == "arguments" and not self._log_arguments):
                event[key] = REDACTED
        return event


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_PARTS)


def _drop_color_message(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    event.pop("color_message", None)
    return event


def _shared(settings: LoggingSettings) -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
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
        structlog.processors.JSONRenderer(),
    ]


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(settings: LoggingSettings, *, stream: TextIO | None = None) -> None:
    """Route structlog and the standard library through one formatter onto ``stream``.

    Idempotent: calling it again replaces the previous configuration.
    """
    out = stream if stream is not None else sys.stderr
    shared = _shared(settings)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderer(settings, out),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.getLevelName(settings.level.upper())
    root.setLevel(level)
    for name in ("hypercorn.error", "hypercorn.access"):
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
