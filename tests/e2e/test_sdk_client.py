"""Interoperability with the official MCP Python SDK client (``mcp`` 2.3.0), in every mode.

``legacy`` speaks the initialize handshake (2025-11-25), ``auto`` probes ``server/discover``
and adopts 2026-07-28, and a pinned version skips the probe. The SDK runs on asyncio (its
default anyio backend), inside these sync tests.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from support.daemon import Daemon, wait_for_file

MODES = ["legacy", "auto", "2026-07-28"]
pytestmark = pytest.mark.filterwarnings(
    # The SDK flags the logging capability as deprecated in 2026-07-28; we test it anyway.
    "ignore::mcp.shared.exceptions.MCPDeprecationWarning"
)


def run(coroutine: Any, *args: Any) -> Any:
    return anyio.run(coroutine, *args, backend="asyncio")


@pytest.mark.parametrize("mode", MODES)
def test_tools_round_trip(daemon: Daemon, mode: str) -> None:
    async def session() -> dict[str, Any]:
        async with Client(daemon.url, mode=mode) as client:
            names: list[str] = []
            cursor = None
            while True:  # the test daemon pages tools 4 at a time
                page = await client.list_tools(cursor=cursor)
                names += [tool.name for tool in page.tools]
                if (cursor := page.next_cursor) is None:
                    break
            return {
                "version": client.protocol_version,
                "names": names,
                "echo": await client.call_tool("echo", {"text": "hi"}),
                "add": await client.call_tool("add", {"a": 2, "b": 5}),
                "fail": await client.call_tool("fail", {"message": "nope"}),
                "picture": await client.call_tool("picture", {}),
            }

    seen = run(session)
    assert seen["version"] == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert {"echo", "add", "slow", "countdown"} <= set(seen["names"])
    assert len(seen["names"]) == len(set(seen["names"]))
    assert seen["echo"].content[0].text == "hi"
    assert seen["add"].structured_content == {"result": 7}
    assert seen["fail"].is_error is True
    assert seen["picture"].content[0].type == "image"


@pytest.mark.parametrize("mode", MODES)
def test_progress_and_logs(daemon: Daemon, mode: str) -> None:
    progress: list[float] = []
    levels: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def on_log(params: Any) -> None:
        levels.append(params.level)

    async def session() -> None:
        log_level = None if mode == "legacy" else "info"
        async with Client(
            daemon.url, mode=mode, logging_callback=on_log, log_level=log_level
        ) as client:
            if mode == "legacy":
                await client.set_logging_level("info")
            tag = f"sdk-progress-{uuid.uuid4().hex[:8]}"
            await client.call_tool(
                "slow", {"seconds": 0.3, "tag": tag}, progress_callback=on_progress
            )
            await client.call_tool("chatty", {})

    run(session)
    assert len(progress) >= 2
    assert progress == sorted(progress)
    assert "info" in levels
    assert "debug" not in levels


@pytest.mark.parametrize("mode", MODES)
def test_cancelling_a_call_cancels_the_tool(daemon: Daemon, markers: Path, mode: str) -> None:
    tag = f"sdk-cancel-{uuid.uuid4().hex[:8]}"

    async def session() -> str:
        async with Client(daemon.url, mode=mode) as client:
            with anyio.move_on_after(0.5):
                await client.call_tool("slow", {"seconds": 60, "tag": tag})
            return (await client.call_tool("echo", {"text": "still fine"})).content[0].text

    assert run(session) == "still fine"
    marker = wait_for_file(markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"
    expected = "cancelled by the client" if mode == "legacy" else "client disconnected"
    assert expected in marker["reason"]


def test_closing_a_legacy_client_ends_its_session(daemon: Daemon) -> None:
    async def session() -> None:
        async with Client(daemon.url, mode="legacy") as client:
            await client.call_tool("echo", {"text": "x"})

    before = len(daemon.events("session.ended"))
    run(session)
    daemon.wait_for("session.ended", lambda e: e.get("reason") == "session deleted by the client")
    assert len(daemon.events("session.ended")) > before
