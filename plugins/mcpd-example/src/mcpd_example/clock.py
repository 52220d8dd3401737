"""Time tools: the current time anywhere, and a countdown that shows progress and cancellation."""

from __future__ import annotations

import logging
import zoneinfo
from datetime import datetime
from typing import Annotated

import trio
from pydantic import Field
from typing_extensions import TypedDict

import mcpd
from mcpd_example.settings import current

log = logging.getLogger(__name__)


class Now(TypedDict):
    iso: str
    timezone: str
    utc_offset: str
    weekday: str
    unix: float


@mcpd.tool(title="Current time", annotations={"readOnlyHint": True, "openWorldHint": False})
def time_now(
    timezone: Annotated[
        str | None, "An IANA time zone such as Europe/Paris; the configured default if omitted"
    ] = None,
) -> Now:
    """The current date and time in a time zone, with its UTC offset."""
    name = timezone or current().default_timezone
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise mcpd.ToolError(f"unknown time zone {name!r}; use an IANA name") from None
    now = datetime.now(zone)
    return {
        "iso": now.isoformat(timespec="seconds"),
        "timezone": name,
        "utc_offset": now.strftime("%z")[:3] + ":" + now.strftime("%z")[3:],
        "weekday": now.strftime("%A"),
        "unix": now.timestamp(),
    }


@mcpd.tool(title="Countdown", annotations={"readOnlyHint": True, "openWorldHint": False})
async def countdown(
    seconds: Annotated[int, Field(ge=1, description="How long to count down")],
    ctx: mcpd.Context,
    label: Annotated[str, "Shown in progress messages"] = "countdown",
) -> str:
    """Count down one second at a time, reporting progress and logging every step.

    Handy to see progress notifications and cancellation from an MCP client: cancel the call
    and the countdown stops at once, its cleanup still runs.
    """
    limit = current().max_countdown_seconds
    if seconds > limit:
        raise mcpd.ToolError(f"at most {limit} seconds, please")
    remaining = seconds
    try:
        await ctx.log("info", f"{label}: {seconds}s", logger="mcpd_example.countdown")
        while remaining:
            await trio.sleep(1)
            remaining -= 1
            await ctx.report_progress(seconds - remaining, seconds, f"{label}: {remaining}s left")
            await ctx.log("debug", {"label": label, "remaining": remaining})
        return f"{label}: done after {seconds}s"
    finally:
        # Runs however the call ends: finished, failed or cancelled. It does not await: after
        # a cancellation every await raises Cancelled again (shield a scope if you must).
        if remaining:
            log.info("%s stopped with %d of %d seconds left", label, remaining, seconds)
