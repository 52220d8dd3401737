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

import codecs
import contextvars
import datetime
import io
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Literal, TextIO

import structlog
import trio
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from mcpd.config import LoggingSettings
from mcpd.log_values import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_TEXT,
    REDACTED,
    Guard,
    Redactor,
    bound_values,
    json_line,
    json_text,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_TEXT",
    "REDACTED",
    "Format",
    "JournalRenderer",
    "Redactor",
    "bound_values",
    "configure_logging",
    "is_journal",
    "resolve_format",
]


class _NamedLogger(structlog.WriteLogger):
    """structlog's plain line writer, carrying the logger name ``add_logger_name`` reads."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class LineWriter:
    """mcpd's log lines to the stream's file descriptor, in the stream's encoding (JSON comes
    already encoded when that is UTF-8), in as few ``write(2)`` calls as is safe.

    Lines logged at info and below by the trio loop's own thread wait until the end of the
    scheduler pass, before the loop checks for I/O (``before_io_wait``: also just before it
    blocks), and then go out together in one write; so do they when ``PENDING_LIMIT`` bytes
    wait, when the run ends, and ahead of any line at warning or above, from another thread,
    or outside a run, each of which is written at once. On this VM one write(2) to a pipe
    whose reader sleeps cost 13 µs of CPU and 40 µs of wall time: a write per line was the
    dearest part of the line. Only a process killed outright (SIGKILL) loses what one pass
    logged. A text stream's own buffering is skipped too; the standard library's records
    come through here (``WriterHandler``), so lines keep their order. A lock keeps lines
    from threads whole. A log that cannot be written (its reader gone) loses lines, not
    requests.
    """

    __slots__ = (
        "_encoding",
        "_ended",
        "_errors",
        "_fd",
        "_flusher",
        "_lock",
        "_loop",
        "_pending",
        "_size",
        "utf8",
    )

    def __init__(self, fd: int, encoding: str, errors: str) -> None:
        self._fd, self._encoding, self._errors = fd, encoding, errors
        self._lock = threading.Lock()
        self.utf8 = codecs.lookup(encoding).name == "utf-8"
        self._pending: list[bytes] = []
        self._size = 0
        self._flusher = _PassFlusher(self)
        # The thread whose trio run flushes us at each pass (None: no run does), and the
        # last run that did: once it has ended nothing it logs may wait.
        self._loop: int | None = None
        self._ended: trio.lowlevel.TrioToken | None = None

    @classmethod
    def of(cls, stream: TextIO) -> LineWriter | None:
        """The writer for ``stream``, or None if it is not a text file with a descriptor
        (a ``StringIO``, a test's capture): those get structlog's own writer."""
        if not isinstance(stream, io.TextIOWrapper):
            return None
        try:
            fd = stream.fileno()
        except (OSError, ValueError):
            return None
        return cls(fd, stream.encoding, stream.errors or "strict")

    def write(self, line: str | bytes, *, now: bool = False) -> None:
        """Write ``line`` (a newline is added to text), at the end of this pass or ``now``."""
        if isinstance(line, str):
            line = (line + "\n").encode(self._encoding, self._errors)
        with self._lock:
            self._pending.append(line)
            self._size += len(line)
            if now or self._size >= PENDING_LIMIT or not self._deferring():
                self._write_pending()

    def flush(self) -> None:
        """Write what waits (safe from any thread)."""
        if self._pending:
            with self._lock:
                self._write_pending()

    def _deferring(self) -> bool:
        """Whether this is the thread of the trio run that flushes at each pass (the first
        line logged in a run arranges that)."""
        thread = threading.get_ident()
        if self._loop == thread:
            return True
        if self._loop is not None or not trio.lowlevel.in_trio_run():
            return False
        if trio.lowlevel.current_trio_token() is self._ended:
            return False  # the run is closing: its instruments are done
        trio.lowlevel.add_instrument(self._flusher)
        self._loop = thread
        return True

    def _run_ended(self) -> None:
        with self._lock:
            self._loop, self._ended = None, trio.lowlevel.current_trio_token()
            self._write_pending()

    def _write_pending(self) -> None:
        data, self._pending, self._size = b"".join(self._pending), [], 0
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            pass


# Bytes of lines that may wait for the end of a scheduler pass.
PENDING_LIMIT: Final = 64 * 1024


class _PassFlusher(trio.abc.Instrument):
    """Writes a ``LineWriter``'s waiting lines at the end of each pass and of the run."""

    def __init__(self, writer: LineWriter) -> None:
        self._writer = writer

    def before_io_wait(self, timeout: float) -> None:
        self._writer.flush()

    def after_run(self) -> None:
        self._writer._run_ended()


class _LineLogger:
    """structlog's logger on the direct path: the named ``LineWriter`` target; lines at
    warning and above are written at once."""

    __slots__ = ("_writer", "name")

    def __init__(self, writer: LineWriter, name: str) -> None:
        self._writer = writer
        self.name = name

    def msg(self, message: str | bytes) -> None:
        self._writer.write(message)

    def now(self, message: str | bytes) -> None:
        self._writer.write(message, now=True)

    log = debug = info = msg
    warn = warning = fatal = failure = err = error = critical = exception = now


class WriterHandler(logging.Handler):
    """The standard library's records through a ``LineWriter`` (warning and above at once)."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.write(self.format(record), now=record.levelno >= logging.WARNING)
        except Exception:
            self.handleError(record)


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
            parts.append(json_text(message))
        parts.extend(
            f"{_journal_atom(str(key))}={_journal_atom(value)}" for key, value in event.items()
        )
        return " ".join(parts)


def _journal_atom(value: Any) -> str:
    if isinstance(value, str) and _BARE.fullmatch(value) and value not in _JSON_WORDS:
        return value
    return json_text(value)


Format = Literal["json", "console", "journal"]


class UtcStamper:
    """``timestamp``: the time in UTC as ISO 8601, exactly as structlog's
    ``TimeStamper(fmt="iso", utc=True)`` writes it (``2026-12-01T11:47:35.951116Z``; no
    fraction in the rare microsecond that has none), with the date and time of day formatted
    once a second instead of for every event."""

    __slots__ = ("_clock", "_second")

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock  # nanoseconds since the epoch
        # One attribute, replaced whole: threads logging at once never see half an update.
        self._second = (-1, "")

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        # datetime.now() floors to the microsecond too.
        second, micro = divmod(self._clock() // 1000, 1_000_000)
        cached, text = self._second
        if second != cached:
            moment = datetime.datetime.fromtimestamp(second, datetime.UTC)
            text = moment.strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        event["timestamp"] = f"{text}.{micro:06d}Z" if micro else f"{text}Z"
        return event


_CONTEXT_PREFIX: Final = structlog.contextvars.STRUCTLOG_KEY_PREFIX
_VARIABLES_REMEMBERED: Final = 1024


class ContextMerger:
    """structlog's ``merge_contextvars`` (the values bound with ``bind_contextvars``, an event's
    own keys winning), with each context variable's key worked out once."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[contextvars.ContextVar[Any], str | None] = {}

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        for variable, value in contextvars.copy_context().items():
            key = self._keys.get(variable, _UNSEEN)
            if key is _UNSEEN:
                key = self._learn(variable)
            if key is not None and value is not Ellipsis:  # Ellipsis: unbound
                event.setdefault(key, value)
        return event

    def _learn(self, variable: contextvars.ContextVar[Any]) -> str | None:
        if len(self._keys) >= _VARIABLES_REMEMBERED:
            self._keys.clear()
        name = variable.name
        key = name[len(_CONTEXT_PREFIX) :] if name.startswith(_CONTEXT_PREFIX) else None
        self._keys[variable] = key
        return key


_UNSEEN: Final[Any] = object()


# structlog's add_log_level: the method name, two of them folded.
_LEVELS: Final = {"warn": "warning", "exception": "error"}


class Stamper:
    """structlog's ``add_log_level`` and ``add_logger_name``, then (unless ``timestamps`` is
    off) ``UtcStamper``: the same keys in the same order, from one processor."""

    __slots__ = ("_clock",)

    def __init__(self, *, timestamps: bool) -> None:
        self._clock = UtcStamper() if timestamps else None

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        event["level"] = _LEVELS.get(name, name)
        record = event.get("_record")
        event["logger"] = logger.name if record is None else record.name
        return event if self._clock is None else self._clock(logger, name, event)


def _shared(settings: LoggingSettings, fmt: Format) -> list[Processor]:
    return [
        ContextMerger(),
        Stamper(timestamps=fmt != "journal"),  # the journal stamps each entry itself
        Guard(log_arguments=settings.log_arguments),
    ]


class _WithException:
    """``renderer`` (structlog's ExceptionRenderer) run only for events that carry
    ``exc_info``: the others have nothing for it to do."""

    __slots__ = ("_renderer",)

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> Any:
        if "exc_info" not in event:
            return event
        return self._renderer(logger, name, event)


def _renderer(fmt: Format, stream: TextIO, *, as_bytes: bool = False) -> list[Processor]:
    """The format's last processors; ``as_bytes``: JSON as UTF-8 bytes ending in a newline."""
    if fmt == "console":
        return [structlog.dev.ConsoleRenderer(colors=_is_tty(stream))]
    if fmt == "journal":
        # Python's own traceback text: it never includes frame locals.
        return [_WithException(structlog.processors.ExceptionRenderer()), JournalRenderer()]
    return [_JsonRenderer(as_bytes=as_bytes)]


class _JsonRenderer:
    """structlog's ExceptionRenderer (with dict tracebacks without frame locals, which would
    leak tool arguments and tokens) and JSONRenderer (``json_text``; ``as_bytes``:
    ``json_line``) as one processor."""

    __slots__ = ("_exceptions", "_serialize")

    def __init__(self, *, as_bytes: bool) -> None:
        transformer = ExceptionDictTransformer(show_locals=False)
        self._exceptions = structlog.processors.ExceptionRenderer(transformer)
        self._serialize: Callable[[Any], str | bytes] = json_line if as_bytes else json_text

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> str | bytes:
        if "exc_info" in event:
            event = self._exceptions(logger, name, event)
        return self._serialize(event)


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
    writer = LineWriter.of(out)
    factory: Callable[..., Any]
    if writer is None:
        _route_stdlib(settings, logging.StreamHandler(out), shared, renderer)
        factory = lambda name="mcpd", *_: _NamedLogger(out, name)  # noqa: E731
    else:
        _route_stdlib(settings, WriterHandler(writer), shared, renderer)
        renderer = _renderer(fmt, out, as_bytes=writer.utf8)
        factory = lambda name="mcpd", *_: _LineLogger(writer, name)  # noqa: E731
    structlog.configure(
        processors=[*shared, *renderer],
        logger_factory=factory,
        wrapper_class=structlog.make_filtering_bound_logger(_level(settings)),
        cache_logger_on_first_use=True,
    )


def _route_stdlib(
    settings: LoggingSettings,
    handler: logging.Handler,
    shared: list[Processor],
    renderer: list[Processor],
) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(settings))


def _level(settings: LoggingSettings) -> int:
    return int(logging.getLevelName(settings.level.upper()))
