"""Logging: JSON lines or journal lines, bound context, redaction, no frame locals."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from mcpd.config import LoggingSettings
from mcpd.logs import REDACTED, configure_logging, resolve_format


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_bound_context(capture: io.StringIO) -> None:
    configure_logging(LoggingSettings(format="json"), stream=capture)
    structlog.contextvars.bind_contextvars(request_id=7, session_id="s")
    structlog.get_logger("mcpd.test").info("tool.call", tool="echo", outcome="ok")
    (event,) = lines(capture)
    assert event["event"] == "tool.call"
    assert event["level"] == "info"
    assert event["logger"] == "mcpd.test"
    assert event["request_id"] == 7
    assert event["session_id"] == "s"
    assert event["timestamp"].endswith("Z")


def test_level_filtering(capture: io.StringIO) -> None:
    configure_logging(LoggingSettings(level="warning", format="json"), stream=capture)
    log = structlog.get_logger("mcpd.test")
    log.info("quiet")
    log.warning("loud")
    assert [e["event"] for e in lines(capture)] == ["loud"]


@pytest.mark.parametrize("log_arguments", [False, True])
def test_secrets_and_arguments_redacted(capture: io.StringIO, log_arguments: bool) -> None:
    configure_logging(LoggingSettings(format="json", log_arguments=log_arguments), stream=capture)
    structlog.get_logger("t").info(
        "x", authorization="Bearer abc", api_token="t", arguments={"q": 1}
    )
    (event,) = lines(capture)
    assert event["authorization"] == REDACTED
    assert event["api_token"] == REDACTED
    assert event["arguments"] == ({"q": 1} if log_arguments else REDACTED)


def test_exception_in_one_event_without_locals(capture: io.StringIO) -> None:
    configure_logging(LoggingSettings(format="json"), stream=capture)

    def fail(password: str) -> None:
        raise RuntimeError("boom")

    try:
        fail("hunter2")
    except RuntimeError:
        structlog.get_logger("t").exception("tool.crashed")
    text = capture.getvalue()
    assert len(text.strip().splitlines()) == 1
    assert "hunter2" not in text
    assert "boom" in text


def test_stdlib_loggers_share_the_format(capture: io.StringIO) -> None:
    configure_logging(LoggingSettings(format="json"), stream=capture)
    logging.getLogger("hypercorn.error").warning("Running on %s", "http://127.0.0.1:1")
    (event,) = lines(capture)
    assert event["event"] == "Running on http://127.0.0.1:1"
    assert event["logger"] == "hypercorn.error"


def test_console_format(capture: io.StringIO) -> None:
    configure_logging(LoggingSettings(format="console"), stream=capture)
    structlog.get_logger("t").info("hello", key="value")
    assert "hello" in capture.getvalue()
    assert "key=value" in capture.getvalue()


# --- the journal format --------------------------------------------------------------

ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def field(line: str, key: str) -> Any:
    """The JSON-encoded value of ``key=`` in a journal line."""
    start = line.index(f" {key}=") + len(key) + 2
    value, _ = json.JSONDecoder().raw_decode(line, start)
    return value


@pytest.mark.parametrize(
    ("method", "priority"),
    [("debug", 7), ("info", 6), ("warning", 4), ("error", 3), ("critical", 2)],
)
def test_journal_priority_prefix_per_level(
    capture: io.StringIO, method: str, priority: int
) -> None:
    configure_logging(LoggingSettings(level="debug", format="journal"), stream=capture)
    getattr(structlog.get_logger("mcpd.test"), method)("tool.call", tool="echo")
    assert capture.getvalue() == f"<{priority}>mcpd.test: tool.call tool=echo\n"


def test_journal_lines_have_no_timestamp_and_keep_context(capture: io.StringIO) -> None:
    configure_logging(LoggingSettings(format="journal"), stream=capture)
    structlog.contextvars.bind_contextvars(request_id=7, session_id="s")
    structlog.get_logger("mcpd.daemon").info(
        "daemon.listening", binds=["http://127.0.0.1:1"], note="two words", ok=True
    )
    (line,) = capture.getvalue().splitlines()
    assert line.startswith("<6>mcpd.daemon: daemon.listening ")
    assert "timestamp" not in line
    assert not ISO_TIME.search(line)
    assert field(line, "binds") == ["http://127.0.0.1:1"]
    assert field(line, "note") == "two words"
    assert " ok=true" in line
    assert " request_id=7" in line
    assert " session_id=s" in line


def test_journal_exception_stays_on_one_line_without_locals(capture: io.StringIO) -> None:
    configure_logging(LoggingSettings(format="journal"), stream=capture)

    def fail(password: str) -> None:
        raise RuntimeError("boom\nsecond line")

    password = "hun" + "ter2"  # a local, not source text the traceback quotes
    try:
        fail(password)
    except RuntimeError:
        structlog.get_logger("mcpd.runtime").exception("tool.crashed", tool="crash")
    text = capture.getvalue()
    assert text.count("\n") == 1
    assert text.startswith("<3>mcpd.runtime: tool.crashed tool=crash exception=")
    assert "hunter2" not in text
    traceback = field(text, "exception")
    assert traceback.startswith("Traceback (most recent call last):\n")
    assert "RuntimeError: boom\nsecond line" in traceback


def test_journal_control_characters_never_split_an_event(capture: io.StringIO) -> None:
    configure_logging(LoggingSettings(format="journal"), stream=capture)
    structlog.get_logger("t").info("two\nlines", value="a\rb\x00c", **{"odd key": "x"})
    (line,) = capture.getvalue().splitlines()
    assert line.startswith('<6>t: "two\\nlines" ')
    assert field(line, "value") == "a\rb\x00c"
    assert '"odd key"=x' in line


@pytest.mark.parametrize("log_arguments", [False, True])
def test_journal_redacts_secrets_and_arguments(capture: io.StringIO, log_arguments: bool) -> None:
    settings = LoggingSettings(format="journal", log_arguments=log_arguments)
    configure_logging(settings, stream=capture)
    structlog.get_logger("t").info("x", authorization="Bearer abc", arguments={"q": 1})
    (line,) = capture.getvalue().splitlines()
    assert "Bearer" not in line
    assert field(line, "authorization") == REDACTED
    assert field(line, "arguments") == ({"q": 1} if log_arguments else REDACTED)


def test_journal_stdlib_records_share_the_format(capture: io.StringIO) -> None:
    configure_logging(LoggingSettings(format="journal"), stream=capture)
    errors = logging.getLogger("hypercorn.error")
    errors.warning("Running on %s", "http://127.0.0.1:1")
    try:
        raise ValueError("bad frame")
    except ValueError:
        errors.exception("Error in ASGI Framework")
    running, failed = capture.getvalue().splitlines()
    assert running == "<4>hypercorn.error: Running on http://127.0.0.1:1"
    assert failed.startswith("<3>hypercorn.error: Error in ASGI Framework exception=")
    assert "ValueError: bad frame" in field(failed, "exception")


# --- which format "auto" picks ---------------------------------------------------------


def journal_stream_of(path: Path) -> str:
    status = path.stat()
    return f"{status.st_dev}:{status.st_ino}"


@pytest.mark.parametrize(
    ("variable", "expected"),
    [("match", "journal"), ("other", "json"), (None, "json"), ("garbage", "json")],
)
def test_auto_picks_journal_only_when_journal_stream_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str | None, expected: str
) -> None:
    path = tmp_path / "stderr"
    path.touch()
    values = {
        "match": journal_stream_of(path),
        "other": journal_stream_of(tmp_path),
        "garbage": "not-a-device",
    }
    if variable is None:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    else:
        monkeypatch.setenv("JOURNAL_STREAM", values[variable])
    with path.open("w") as stream:
        assert resolve_format(LoggingSettings(), stream) == expected
    assert resolve_format(LoggingSettings(), io.StringIO()) == "json"  # no file behind it


LOG_ONE_EVENT = """
import structlog
from mcpd.config import LoggingSettings
from mcpd.logs import configure_logging

configure_logging(LoggingSettings())
structlog.get_logger("mcpd.test").warning("hello", n=1)
"""


@pytest.mark.parametrize("matching", [True, False])
def test_daemon_stderr_on_the_journal_gets_journal_lines(tmp_path: Path, matching: bool) -> None:
    path = tmp_path / "stderr"
    path.touch()
    other = tmp_path / "elsewhere"
    other.touch()
    env = {**os.environ, "JOURNAL_STREAM": journal_stream_of(path if matching else other)}
    with path.open("w") as stderr:
        subprocess.run(
            [sys.executable, "-c", LOG_ONE_EVENT], stderr=stderr, env=env, check=True, timeout=60
        )
    text = path.read_text()
    if matching:
        assert text == "<4>mcpd.test: hello n=1\n"
    else:
        (event,) = [json.loads(line) for line in text.splitlines()]
        assert event["event"] == "hello"
        assert "timestamp" in event


def test_config_secrets_are_masked_wherever_they_are_logged() -> None:
    from mcpd.logs import Redactor
    from mcpd.secret_values import MASK, Secret

    token = Secret("s3cr3t-value", "$env:TOKEN")
    event = {
        "event": "plugin.settings",
        "settings": {"api": {"token": token, "hosts": ["a", token]}},
        "plain": token,
    }
    masked = Redactor(log_arguments=False)(None, "info", event)
    assert "s3cr3t-value" not in repr(masked)
    assert masked["plain"] == MASK
    assert masked["settings"]["api"] == {"token": MASK, "hosts": ["a", MASK]}


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"n": value}
    return value


@pytest.mark.parametrize("fmt", ["json", "journal", "console"])
def test_client_provided_values_cannot_make_logging_fail(capture: io.StringIO, fmt: str) -> None:
    configure_logging(LoggingSettings(format=fmt), stream=capture)  # type: ignore[arg-type]

    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    structlog.get_logger("mcpd.test").info(
        "session.created",
        client=_nested(400),
        text="z" * 100_000,
        surrogate="lone \ud800",
        big=10**40,
        many=list(range(10_000)),
        odd=Unprintable(),
    )
    written = capture.getvalue()
    assert "session.created" in written
    assert len(written) < 20_000  # bounded, whatever the client sent
    assert written.count("\n") == 1


def test_bounded_values_keep_what_fits(capture: io.StringIO) -> None:
    configure_logging(LoggingSettings(format="json"), stream=capture)
    small = {"a": [1, 2, {"b": "c"}], "d": "e"}
    structlog.get_logger("mcpd.test").info("x", small=small, deep=_nested(10), long="q" * 3000)
    (event,) = lines(capture)
    assert event["small"] == small
    assert "nested too deep" in json.dumps(event["deep"])
    assert event["long"].startswith("q" * 2048)
    assert event["long"].endswith("[truncated]")


# --- the cheaper pipeline: the same lines ----------------------------------------------


class Shout:
    def __repr__(self) -> str:
        return "SHOUT"


VALUES: list[Any] = [
    "plain",
    "é" * 3000,
    7,
    2.5,
    True,
    None,
    logging.INFO,
    ("a", 1),
    {"b", "c"} - {"c"},
    {"k": [1, {"deep": _nested(10)}]},
    list(range(100)),
    Shout(),
]


def test_guard_is_redaction_then_bounds() -> None:
    """``Guard`` (one pass) leaves every event as ``Redactor`` followed by ``bound_values``."""
    from mcpd.log_values import Guard, Redactor, bound_values
    from mcpd.secret_values import Secret

    secret = Secret("s3cr3t-value", "$env:TOKEN")
    for log_arguments in (False, True):
        event = {f"v{n}": value for n, value in enumerate([*VALUES, secret, [secret, "x"]])}
        event |= {"arguments": {"q": secret}, "api_token": "t", "Cookie": ["x"]}
        expected = bound_values(
            None, "info", Redactor(log_arguments=log_arguments)(None, "info", dict(event))
        )
        guard = Guard(log_arguments=log_arguments)
        assert guard(None, "info", dict(event)) == expected
        assert guard(None, "info", dict(event)) == expected  # with its keys remembered


@pytest.mark.parametrize(
    "nanoseconds",
    [0, 1_764_589_655_000_000_000, 1_764_589_655_000_005_999, 1_764_589_655_999_999_999],
)
def test_timestamps_are_structlogs_iso_utc(nanoseconds: int) -> None:
    from datetime import UTC, datetime, timedelta

    from mcpd.logs import UtcStamper

    now = iter([nanoseconds, nanoseconds + 1_000, nanoseconds - 10**9, nanoseconds])
    stamper = UtcStamper(clock=lambda: next(now))
    for ns in [nanoseconds, nanoseconds + 1_000, nanoseconds - 10**9, nanoseconds]:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
        # structlog's TimeStamper(fmt="iso", utc=True) writes this for that moment.
        assert stamper(None, "info", {})["timestamp"] == moment.isoformat().replace("+00:00", "Z")


def test_context_is_merged_as_structlog_merges_it() -> None:
    from mcpd.logs import ContextMerger

    merger = ContextMerger()
    structlog.contextvars.bind_contextvars(request_id=7, session="s", gone=1)
    structlog.contextvars.unbind_contextvars("gone")
    try:
        for event in ({"event": "x"}, {"event": "x", "session": "own"}):
            expected = structlog.contextvars.merge_contextvars(None, "info", dict(event))
            assert merger(None, "info", dict(event)) == expected
            assert merger(None, "info", dict(event)) == expected
    finally:
        structlog.contextvars.clear_contextvars()


def _log_everything(stream: Any, fmt: str) -> None:
    configure_logging(LoggingSettings(format=fmt), stream=stream)  # type: ignore[arg-type]
    structlog.contextvars.bind_contextvars(request_id=7)
    log = structlog.get_logger("mcpd.test")
    log.info("tool.call", text="naïve ☃", many=list(range(100)), odd=Shout())
    logging.getLogger("hypercorn.error").warning("between %s", "them")
    log.warning("warned", arguments={"q": 1}, password="p")
    try:
        raise ValueError("bad\nframe")
    except ValueError:
        log.exception("tool.crashed")
        logging.getLogger("hypercorn.error").exception("Error in ASGI Framework")
    structlog.contextvars.clear_contextvars()


_STAMP = re.compile(r'"timestamp":"[^"]*"|\d{4}-\d\d-\d\dT[\d:.]+Z')


@pytest.mark.parametrize("fmt", ["json", "journal", "console"])
@pytest.mark.parametrize(("encoding", "errors"), [("utf-8", "strict"), ("ascii", "replace")])
def test_a_file_gets_the_lines_a_text_stream_gets(
    tmp_path: Path, fmt: str, encoding: str, errors: str
) -> None:
    """On a real file mcpd's events are written straight to its descriptor: the same lines,
    in the same order with the standard library's records, as through the text stream."""
    path = tmp_path / "log"
    with path.open("w", encoding=encoding, errors=errors) as file:
        _log_everything(file, fmt)
    text = io.StringIO()
    _log_everything(text, fmt)
    structlog.reset_defaults()
    expected = text.getvalue().encode(encoding, errors)
    written = path.read_bytes()
    assert written.count(b"\n") == expected.count(b"\n") >= 5  # five events
    assert _STAMP.sub("T", written.decode(encoding)) == _STAMP.sub("T", expected.decode(encoding))


def test_a_log_nobody_reads_fails_no_call() -> None:
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as broken:
        configure_logging(LoggingSettings(format="json"), stream=broken)
        structlog.get_logger("mcpd.test").info("tool.call", outcome="ok")  # EPIPE: dropped
    structlog.reset_defaults()


# --- lines wait for the end of a scheduler pass, and are never lost at exit ---------------

IN_ONE_PASS = """
import os, sys, threading, time
import structlog, trio
from mcpd.config import LoggingSettings
from mcpd.logs import configure_logging

configure_logging(LoggingSettings(format="json"))
log = structlog.get_logger("mcpd.test")
mode, lines = sys.argv[1], int(sys.argv[2])

def expire():
    log.critical("exit_forced")  # from a watchdog thread, the loop blocked
    os._exit(4)

class Late(trio.abc.Instrument):
    def after_run(self):
        log.info("late")  # in the run's very last moments: no pass is left to end

async def main():
    if mode == "late":
        trio.lowlevel.add_instrument(Late())
    for n in range(lines):
        log.info("line", n=n, pad="x" * 100)  # no checkpoint: all in one scheduler pass
    if mode == "raise":
        raise RuntimeError("crash")
    if mode == "exit_now":  # what Daemon.exit_now does
        log.warning("daemon.stopped")
        os._exit(3)
    if mode == "blocked":
        threading.Thread(target=expire).start()
        time.sleep(60)  # a plugin blocking the loop
    if mode == "idle":
        await trio.to_thread.run_sync(lambda: log.info("from_thread"))
        await trio.sleep_forever()
    if mode == "flood":
        time.sleep(60)  # the loop blocked before the pass ended

trio.run(main)
if mode != "late":
    log.info("after_run")
"""


def _run_logging(mode: str, lines: int = 100) -> tuple[int, list[dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    done = subprocess.run(
        [sys.executable, "-c", IN_ONE_PASS, mode, str(lines)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return done.returncode, events


def _numbered(events: list[dict[str, Any]]) -> list[int]:
    return [event["n"] for event in events if event["event"] == "line"]


@pytest.mark.parametrize(
    ("mode", "status", "last"),
    [
        ("return", 0, "after_run"),  # the run ends: written before trio.run returns
        ("late", 0, "late"),  # logged as the run closes, the last line: written when it has
        ("raise", 1, None),  # a crash: written before the traceback
        ("exit_now", 3, "daemon.stopped"),  # os._exit after a warning, which goes out at once
        ("blocked", 4, "exit_forced"),  # a thread's line takes the waiting ones with it
    ],
)
def test_lines_waiting_for_the_pass_are_never_lost_at_exit(
    mode: str, status: int, last: str | None
) -> None:
    code, events = _run_logging(mode)
    assert code == status
    assert _numbered(events) == list(range(100))
    assert [event["event"] for event in events[100:]] == ([last] if last else [])


def _read_until(process: subprocess.Popen[bytes], wanted: int) -> bytes:
    """At least ``wanted`` bytes of the process's stderr, while it keeps running."""
    assert process.stderr is not None
    data = b""
    while len(data) < wanted:
        ready, _, _ = select.select([process.stderr], [], [], 60)
        assert ready, "the lines never came"
        chunk = os.read(process.stderr.fileno(), 65536)
        assert chunk, "the process ended"
        data += chunk
    return data


@pytest.mark.parametrize(("mode", "lines"), [("idle", 3), ("flood", 2000)])
def test_lines_go_out_before_the_loop_waits_or_past_the_bound(mode: str, lines: int) -> None:
    """Idle: the loop's lines and a worker thread's are written before the loop sleeps.
    Flood: with the loop blocked mid-pass, what passed ``PENDING_LIMIT`` is written anyway."""
    from mcpd.logs import PENDING_LIMIT

    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    argv = [sys.executable, "-c", IN_ONE_PASS, mode, str(lines)]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, env=env) as process:
        try:
            if mode == "idle":
                text = b""
                while b"from_thread" not in text:
                    text += _read_until(process, 1)
                events = [json.loads(line) for line in text.splitlines()]
                assert _numbered(events) == list(range(lines))
            else:
                assert len(_read_until(process, PENDING_LIMIT)) >= PENDING_LIMIT
        finally:
            process.kill()
