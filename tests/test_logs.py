"""Logging: one JSON object per line, bound context, redaction, no frame locals."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from mcpd.config import LoggingSettings
from mcpd.logs import REDACTED, configure_logging


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
