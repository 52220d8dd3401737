"""The ``Context`` a tool gets: progress, logging and identity, over an in-memory channel."""

from __future__ import annotations

import math

import pytest

from mcpd.plugin.context import Context
from mcpd.plugin.testing import MemoryChannel


def make(**channel_options: object) -> tuple[Context, MemoryChannel]:
    channel = MemoryChannel(**channel_options)  # type: ignore[arg-type]
    return Context(channel), channel


async def test_progress_notification_carries_token_total_and_message() -> None:
    ctx, channel = make(progress_token=42)
    await ctx.report_progress(1, 4, "a quarter")
    await ctx.report_progress(2.5)
    assert channel.notifications == [
        (
            "notifications/progress",
            {"progressToken": 42, "progress": 1, "total": 4, "message": "a quarter"},
        ),
        ("notifications/progress", {"progressToken": 42, "progress": 2.5}),
    ]


async def test_no_progress_without_a_token() -> None:
    ctx, channel = make(progress_token=None)
    await ctx.report_progress(1, 2, "ignored")
    assert channel.notifications == []


async def test_progress_message_only_from_2025_03_26() -> None:
    ctx, channel = make(revision="2024-11-05")
    await ctx.report_progress(1, message="not in this revision")
    assert "message" not in channel.progress[0]


@pytest.mark.parametrize("second", [1, 0.5])
async def test_progress_must_increase(second: float) -> None:
    ctx, channel = make()
    await ctx.report_progress(1)
    with pytest.raises(ValueError, match="must increase"):
        await ctx.report_progress(second)
    assert len(channel.progress) == 1


async def test_progress_must_increase_even_when_nobody_listens() -> None:
    ctx, _ = make(progress_token=None)
    await ctx.report_progress(3)
    with pytest.raises(ValueError, match="must increase"):
        await ctx.report_progress(2)


@pytest.mark.parametrize("bad", [math.nan, math.inf, True, "1"])
async def test_progress_must_be_a_finite_number(bad: object) -> None:
    ctx, _ = make()
    with pytest.raises(ValueError, match="finite number"):
        await ctx.report_progress(bad)  # type: ignore[arg-type]


async def test_log_sends_level_data_and_logger() -> None:
    ctx, channel = make(log_level="debug")
    await ctx.log("info", {"rows": 3}, logger="db")
    await ctx.log("error", "plain text")
    assert channel.logs == [
        {"level": "info", "data": {"rows": 3}, "logger": "db"},
        {"level": "error", "data": "plain text"},
    ]


async def test_log_respects_the_level_the_client_asked_for() -> None:
    ctx, channel = make(log_level="warning")
    for level in ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"):
        await ctx.log(level, level)
    assert [entry["level"] for entry in channel.logs] == [
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    ]


async def test_no_logs_when_the_client_asked_for_none() -> None:
    ctx, channel = make(log_level=None)
    await ctx.log("emergency", "nobody hears this")
    assert channel.notifications == []


async def test_unknown_log_level_is_refused_even_if_unheard() -> None:
    ctx, _ = make(log_level=None)
    with pytest.raises(ValueError, match="unknown log level 'verbose'"):
        await ctx.log("verbose", "x")


async def test_log_data_is_made_json_friendly() -> None:
    ctx, channel = make()
    await ctx.log("info", {"when": (1, 2), "tags": {"a"}})
    assert channel.logs[0]["data"] == {"when": [1, 2], "tags": ["a"]}


def test_identity_properties_come_from_the_channel() -> None:
    ctx, _ = make(request_id="req-9", session_id="s-1", revision="2025-06-18")
    assert (ctx.request_id, ctx.session_id, ctx.revision) == ("req-9", "s-1", "2025-06-18")
