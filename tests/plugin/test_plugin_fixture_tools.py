"""The fixture plugin's tools, loaded from their real installation: the e2e suite relies on them."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
import trio

from mcpd.plugin.context import Context
from mcpd.plugin.registry import Registry, load_registry
from mcpd.plugin.testing import MemoryChannel, call_tool
from mcpd.plugin.tool import Tool

WAIT = 10.0


@pytest.fixture
def registry(installed: Path, tmp_path: Path) -> Registry:
    settings = {"fixture": {"marker_dir": str(tmp_path)}}
    return load_registry(enable=["fixture"], disable=(), plugin_settings=settings)


def tool(registry: Registry, name: str) -> Tool:
    found = registry.get(name)
    assert found is not None, name
    return found


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def marker(directory: Path, tag: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / f"{tag}.json").read_text())
    return data


async def test_slow_completes_with_progress_and_a_completed_marker(
    registry: Registry, tmp_path: Path
) -> None:
    channel = MemoryChannel()
    result = await call_tool(
        tool(registry, "slow"), {"seconds": 0.12, "tag": "done"}, channel=channel
    )
    assert result == {"content": [{"type": "text", "text": "slept 0.12s"}]}
    assert len(channel.progress) >= 2
    assert marker(tmp_path, "done") == {"outcome": "completed", "reason": None}


@pytest.mark.parametrize("name", ["slow", "blocking"])
async def test_cancelled_long_tools_write_the_cancellation_reason(
    registry: Registry, tmp_path: Path, name: str
) -> None:
    channel = MemoryChannel()
    slow = tool(registry, name)
    arguments = slow.validate_arguments({"seconds": 60, "tag": name})
    with trio.fail_after(WAIT):
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow.invoke, arguments, Context(channel))
                await channel.wait_for("notifications/progress")
                scope.cancel(reason="client disconnected")
    written = marker(tmp_path, name)
    assert written["outcome"] == "cancelled"
    assert "client disconnected" in written["reason"]


async def test_forever_has_a_short_timeout(registry: Registry, tmp_path: Path) -> None:
    forever = tool(registry, "forever")
    assert forever.timeout == 0.2
    with trio.move_on_after(forever.timeout or 0):
        await call_tool(forever, {"tag": "timeout"})
    assert marker(tmp_path, "timeout")["outcome"] == "cancelled"


async def test_echo_add_fail_and_crash(registry: Registry) -> None:
    assert (await call_tool(tool(registry, "echo"), {"text": "x"}))["content"][0]["text"] == "x"
    assert (await call_tool(tool(registry, "add"), {"a": 2, "b": 3}))["structuredContent"] == {
        "result": 5
    }
    failed = await call_tool(tool(registry, "fail"), {"message": "nope"})
    assert failed == {"content": [{"type": "text", "text": "nope"}], "isError": True}
    with pytest.raises(RuntimeError):
        await call_tool(tool(registry, "crash"))


async def test_chatty_logs_four_levels_and_reports_progress(registry: Registry) -> None:
    channel = MemoryChannel(log_level="info")
    await call_tool(tool(registry, "chatty"), channel=channel)
    assert [entry["level"] for entry in channel.logs] == ["info", "warning", "error"]
    assert [entry["progress"] for entry in channel.progress] == [1, 2, 3, 4]


async def test_picture_is_a_valid_png(registry: Registry) -> None:
    block = (await call_tool(tool(registry, "picture")))["content"][0]
    data = base64.b64decode(block["data"])
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    # Every chunk's CRC must check out for a decoder to accept it.
    position = 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind_and_data = data[position + 4 : position + 8 + length]
        crc = int.from_bytes(data[position + 8 + length : position + 12 + length], "big")
        assert zlib.crc32(kind_and_data) == crc
        position += 12 + length
    assert position == len(data)


async def test_without_marker_dir_nothing_is_written(installed: Path, tmp_path: Path) -> None:
    registry = load_registry(enable=["fixture"], disable=(), plugin_settings={})
    await call_tool(tool(registry, "slow"), {"seconds": 0.01, "tag": "unwritten"})
    assert not files_in(tmp_path)
