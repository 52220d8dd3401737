"""The 2024-11-05 HTTP+SSE transport: GET /sse announces where to POST; answers arrive as
``message`` events on that one stream; the session lives as long as the connection."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from support.daemon import Daemon, wait_for_file

ACCEPT_SSE = {"accept": "text/event-stream"}


class SseSession:
    """A raw HTTP+SSE client: the stream's events, and POSTs to the announced endpoint."""

    def __init__(self, http: httpx.Client, base: str, lines: Iterator[str]) -> None:
        self.http = http
        self.base = base
        self._lines = lines
        kind, data = self.next_event()
        assert kind == "endpoint"
        self.endpoint = data
        self.ids = iter(range(1, 1000))

    def next_event(self) -> tuple[str, str]:
        kind, data = "message", []
        for line in self._lines:
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif line == "" and data:
                return kind, "".join(data)
        raise AssertionError("the SSE stream ended")

    def next_message(self) -> dict[str, Any]:
        kind, data = self.next_event()
        assert kind == "message"
        return json.loads(data)  # type: ignore[no-any-return]

    def post(self, message: dict[str, Any]) -> httpx.Response:
        return self.http.post(self.base + self.endpoint, json=message)

    def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        request_id = next(self.ids)
        response = self.post(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        )
        assert response.status_code == 202, response.text
        return request_id

    def reply(self, request_id: int) -> dict[str, Any]:
        while True:
            message = self.next_message()
            if message.get("id") == request_id and "method" not in message:
                return message

    def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        params = {
            "protocolVersion": "2024-11-05",
            "capabilities": capabilities or {},
            "clientInfo": {"name": "tests", "version": "0"},
        }
        result = self.reply(self.request("initialize", params))["result"]
        assert (
            self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202
        )
        return result  # type: ignore[no-any-return]


def base_of(daemon: Daemon) -> str:
    return daemon.binds[0]


@contextmanager
def sse_session(http: httpx.Client, daemon: Daemon) -> Iterator[SseSession]:
    with http.stream("GET", base_of(daemon) + "/sse", headers=ACCEPT_SSE) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseSession(http, base_of(daemon), response.iter_lines())


def test_endpoint_event_then_a_whole_session(daemon: Daemon, http: httpx.Client) -> None:
    with sse_session(http, daemon) as session:
        assert session.endpoint.startswith("/messages?session_id=")
        result = session.initialize()
        assert result["protocolVersion"] == "2024-11-05"
        assert "completions" not in result["capabilities"]  # 2024-11-05 had no such capability
        echoed = session.reply(
            session.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        )
        assert echoed["result"]["content"] == [{"type": "text", "text": "hi"}]
        assert (
            "structuredContent"
            not in session.reply(
                session.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
            )["result"]
        )
        resources = session.reply(session.request("resources/list"))["result"]["resources"]
        assert resources
        missing = session.reply(session.request("resources/read", {"uri": "fixture://nope"}))
        assert missing["error"]["code"] == -32002


def test_post_needs_a_known_session(daemon: Daemon, http: httpx.Client) -> None:
    base = base_of(daemon)
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert http.post(base + "/messages", json=body).status_code == 400
    assert http.post(base + "/messages?session_id=nope", json=body).status_code == 404
    with sse_session(http, daemon) as session:
        # Before initialize: accepted, and the error travels on the stream like any answer
        # (clients of this transport treat a non-2xx POST as a dead transport).
        assert session.post(body).status_code == 202
        early = session.next_message()
        assert early["id"] == 1
        assert early["error"]["code"] == -32600
        assert "initialize" in early["error"]["message"]
        # The session still starts normally afterwards.
        assert session.initialize()["protocolVersion"] == "2024-11-05"


def test_server_asks_on_the_stream_and_takes_the_answer(daemon: Daemon, http: httpx.Client) -> None:
    with sse_session(http, daemon) as session:
        session.initialize({"elicitation": {}})
        call = session.request("tools/call", {"name": "ask_name", "arguments": {}})
        question = session.next_message()
        assert question["method"] == "elicitation/create"
        answer = {"action": "accept", "content": {"name": "Ada"}}
        reply = session.post({"jsonrpc": "2.0", "id": question["id"], "result": answer})
        assert reply.status_code == 202
        result = session.reply(call)["result"]
        assert "Ada" in result["content"][0]["text"]


def test_closing_the_connection_ends_the_session_and_cancels(
    daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    tag = f"sse-close-{uuid.uuid4().hex[:8]}"
    with sse_session(http, daemon) as session:
        session.initialize()
        session.request("tools/call", {"name": "slow", "arguments": {"seconds": 60, "tag": tag}})
        endpoint = session.endpoint
    marker = wait_for_file(markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"
    assert "client disconnected" in marker["reason"]
    late = http.post(base_of(daemon) + endpoint, json={"jsonrpc": "2.0", "id": 9, "method": "ping"})
    assert late.status_code == 404


def test_origin_is_checked(daemon: Daemon, http: httpx.Client) -> None:
    response = http.get(
        base_of(daemon) + "/sse", headers={**ACCEPT_SSE, "origin": "http://evil.example"}
    )
    assert response.status_code == 403
    response = http.get(base_of(daemon) + "/sse", headers={**ACCEPT_SSE, "host": "evil.example"})
    assert response.status_code == 421


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_official_sdk_sse_client(daemon: Daemon) -> None:
    async def session() -> dict[str, Any]:
        async with (
            sse_client(base_of(daemon) + "/sse") as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            return {
                "echo": await client.call_tool("echo", {"text": "over sse"}),
                "text": await client.read_resource("fixture://text"),
                "prompt": await client.get_prompt("greet", {"name": "Ada"}),
            }

    seen = anyio.run(session, backend="asyncio")
    assert seen["echo"].content[0].text == "over sse"
    assert seen["text"].contents[0].text
    assert "Ada" in seen["prompt"].messages[0].content.text
