"""time_now and countdown: progress, logs and cancellation, on trio's mock clock."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
import trio
import trio.testing

from mcpd.plugin.context import Context
from mcpd.plugin.testing import MemoryChannel, call_tool
from mcpd_example import settings
from mcpd_example.clock import countdown, time_now


async def test_time_now_in_utc_by_default() -> None:
    now = (await call_tool(time_now))["structuredContent"]
    assert now["timezone"] == "UTC"
    assert now["utc_offset"] == "+00:00"
    assert datetime.fromisoformat(now["iso"]).timestamp() == pytest.approx(now["unix"], abs=1)


async def test_time_now_uses_the_configured_default_and_explicit_zones() -> None:
    settings.configure({"default_timezone": "Asia/Kolkata"})
    assert (await call_tool(time_now))["structuredContent"]["utc_offset"] == "+05:30"
    explicit = await call_tool(time_now, {"timezone": "UTC"})
    assert explicit["structuredContent"]["timezone"] == "UTC"


@pytest.mark.parametrize("zone", ["Nowhere/Special", "../../etc/passwd"])
async def test_time_now_rejects_unknown_zones(zone: str) -> None:
    result = await call_tool(time_now, {"timezone": zone})
    assert result["isError"] is True
    assert "unknown time zone" in result["content"][0]["text"]


async def test_countdown_reports_progress_every_second(
    autojump_clock: trio.testing.MockClock,
) -> None:
    channel = MemoryChannel(log_level="debug")
    start = trio.current_time()
    result = await call_tool(countdown, {"seconds": 3, "label": "tea"}, channel=channel)
    assert result["content"][0]["text"] == "tea: done after 3s"
    assert trio.current_time() - start == pytest.approx(3)
    assert [(p["progress"], p["total"]) for p in channel.progress] == [(1, 3), (2, 3), (3, 3)]
    assert channel.progress[-1]["message"] == "tea: 0s left"
    assert channel.logs[0] == {
        "level": "info",
        "data": "tea: 3s",
        "logger": "mcpd_example.countdown",
    }
    assert channel.logs[-1]["data"] == {"label": "tea", "remaining": 0}


async def test_countdown_is_limited_by_settings() -> None:
    settings.configure({"max_countdown_seconds": 5})
    result = await call_tool(countdown, {"seconds": 6})
    assert result["isError"] is True


async def test_cancelling_countdown_runs_its_cleanup(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mcpd_example.clock")
    arguments = countdown.validate_arguments({"seconds": 10})
    with trio.move_on_after(2.5) as scope:
        await countdown.invoke(arguments, Context(MemoryChannel()))
    assert scope.cancelled_caught
    assert "countdown stopped with 8 of 10 seconds left" in caplog.text
