"""A real daemon over h2c (prior knowledge, the lean h2 path): a client's RST_STREAM cancels its
tool call (the tool's ``finally`` runs, as on HTTP/1.1), and a slow call never holds the other
streams of its connection. Over raw ``h2`` (``support.h2c``) and httpx with http2."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import h2.errors
import httpx
import trio
from support.client import modern_headers, modern_meta
from support.daemon import WAIT, Daemon, wait_for_file
from support.eras import headers_for, modern_body
from support.h2c import H2c


def _address(daemon: Daemon) -> tuple[str, int]:
    host, _, port = daemon.url.removeprefix("http://").partition("/")[0].rpartition(":")
    return host, int(port)


def _slow_call(tag: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "slow",
            "arguments": {"seconds": 30, "tag": tag},
            "_meta": modern_meta(progressToken=tag),
        },
    }


async def _post(client: H2c, body: dict[str, Any], headers: dict[str, str]) -> int:
    data = json.dumps(body).encode()
    pairs = [*headers.items(), ("content-length", str(len(data)))]
    return await client.request("POST", "/mcp", pairs, data)


async def _running_slow_call(client: H2c) -> tuple[int, str]:
    """A slow call, once it is visibly running (its first progress notification)."""
    tag = f"h2-{uuid.uuid4().hex[:8]}"
    stream = await _post(client, _slow_call(tag), modern_headers("tools/call", "slow"))
    with trio.fail_after(WAIT):
        await client.until(lambda: b"notifications/progress" in client.streams[stream].data)
    return stream, tag


async def test_a_reset_stream_cancels_its_tool_call(daemon: Daemon, markers: Path) -> None:
    client = await H2c.connect(_address(daemon))
    stream, tag = await _running_slow_call(client)
    client.conn.reset_stream(stream, error_code=h2.errors.ErrorCodes.CANCEL)
    await client.flush()
    marker = await trio.to_thread.run_sync(wait_for_file, markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"
    assert "client disconnected" in marker["reason"]
    await client.aclose()


async def test_a_slow_call_does_not_hold_the_other_streams(daemon: Daemon, markers: Path) -> None:
    client = await H2c.connect(_address(daemon))
    slow, tag = await _running_slow_call(client)
    body = modern_body("tools/call", {"name": "echo", "arguments": {"text": "beside"}})
    quick = await _post(client, body, headers_for(body))
    with trio.fail_after(WAIT):
        await client.until(lambda: client.streams[quick].ended)
    answer = json.loads(bytes(client.streams[quick].data))
    assert answer["result"]["content"][0]["text"] == "beside"
    assert not client.streams[slow].ended
    await client.aclose()  # the connection goes: the slow call is cancelled too
    marker = await trio.to_thread.run_sync(wait_for_file, markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"


async def test_httpx_over_h2c_prior_knowledge(daemon: Daemon) -> None:
    body = modern_body("tools/call", {"name": "echo", "arguments": {"text": "httpx"}})
    async with httpx.AsyncClient(http1=False, http2=True, timeout=WAIT) as http:
        answers = []
        async with trio.open_nursery() as nursery:

            async def call() -> None:
                answers.append(await http.post(daemon.url, json=body, headers=headers_for(body)))

            for _ in range(4):
                nursery.start_soon(call)
    assert {answer.http_version for answer in answers} == {"HTTP/2"}
    texts = [answer.json()["result"]["content"][0]["text"] for answer in answers]
    assert texts == ["httpx"] * 4
