"""Tools for mcpd's benchmarks (tests/benchmarks/bench.py); the SDK server there has the same."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

import mcpd
from mcpd.plugin.tool import Tool


@mcpd.tool
async def blob(size: int) -> str:
    """A text result of ``size`` bytes (the large-result benchmark)."""
    return "x" * size


@mcpd.tool
async def progress_echo(text: str, ctx: mcpd.Context) -> str:
    """Report progress once, then return the text: the answer becomes an SSE stream."""
    await ctx.report_progress(1, total=1)
    return text


@mcpd.tool
async def nap(seconds: float) -> str:
    """Sleep silently (the pending-calls benchmark: what waiting costs)."""
    await trio.sleep(seconds)
    return "rested"


@mcpd.hookimpl
def register_tools(settings: Mapping[str, Any]) -> list[Tool]:
    return [blob, progress_echo, nap]
