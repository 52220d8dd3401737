"""Bounds a hostile or slow client meets, and that no accepted request goes unanswered: a body
that never completes gets 408; the 2024-11-05 transport applies back-pressure instead of
dropping answers, and ends a session whose client reads nothing; a session's requests in
flight are capped; real clients that probe ``server/discover`` over that transport connect."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client
from support.client import Legacy
from support.daemon import WAIT, Daemon, daemon_config
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "plugins"
BOUNDS = """
[server]
body_timeout_seconds = 3
stream_buffer_bytes = 65536
write_timeout_seconds = 2
max_requests_per_session = 4
"""


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    site = tmp_path_factory.mktemp("bounds-site")
    install_plugins(site, FIXTURES / "mcpd-fixture-tools", FIXTURES / "mcpd-fixture-hostile")
    markers = tmp_path_factory.mktemp("bounds-markers")
    config = daemon_config(tmp_path_factory.mktemp("bounds-cfg") / "mcpd.toml", markers)
    text = config.read_text().replace("[server]\n", BOUNDS.lstrip().split("\n", 1)[1], 1)
    config.write_text("[server]\n" + text)
    running = Daemon.start(config, pythonpath=site)
    yield running
    assert running.stop() == 0


def _address(daemon: Daemon) -> tuple[str, int]:
    host, port = daemon.binds[0].removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("framing", ["short-content-length", "endless-chunked"])
def test_a_body_that_never_completes_gets_408_and_the_connection_closes(
    bounded: Daemon, framing: str
) -> None:
    head = (
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\n"
    )
    if framing == "short-content-length":
        raw = head + 'Content-Length: 100\r\n\r\n{"jsonrpc":'
    else:
        raw = head + 'Transfer-Encoding: chunked\r\n\r\n5\r\n{"jso\r\n'
    with socket.create_connection(_address(bounded), timeout=WAIT) as sock:
        sock.sendall(raw.encode())
        answer = _read_response(sock)  # the server closes: the read returns
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in rest.lower()
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["message"].startswith("the request body did not arrive")


def test_a_sessions_requests_in_flight_are_capped(bounded: Daemon) -> None:
    with httpx.Client(timeout=WAIT) as http:
        client = Legacy(http, bounded.url).initialize()
        running = [threading.Event() for _ in range(4)]

        def call(n: int) -> None:  # cancelled by the DELETE below: no answer (spec)
            body = {
                "jsonrpc": "2.0",
                "id": f"cap-{n}",
                "method": "tools/call",
                "params": {
                    "name": "slow",
                    "arguments": {"seconds": 60, "tag": f"cap-{n}"},
                    "_meta": {"progressToken": n},
                },
            }
            with http.stream("POST", bounded.url, json=body, headers=client.headers()) as response:
                lines = response.iter_lines()
                for line in lines:
                    if "notifications/progress" in line:
                        running[n].set()
                        break
                for _ in lines:
                    pass

        waiting = [threading.Thread(target=call, args=(n,)) for n in range(4)]
        for thread in waiting:
            thread.start()
        assert all(event.wait(WAIT) for event in running)
        refused = client.rpc("tools/call", {"name": "echo", "arguments": {"text": "fifth"}})
        assert refused["error"]["code"] == -32000
        assert "in flight" in refused["error"]["message"]
        assert http.delete(bounded.url, headers=client.headers()).status_code == 200
        # Joined before the client closes: closing it would close their streams under them.
        for thread in waiting:
            thread.join(timeout=WAIT)
            assert not thread.is_alive()


class SseReader:
    """A raw 2024-11-05 SSE connection that the test reads as slowly as it likes."""

    def __init__(self, daemon: Daemon) -> None:
        self.sock = socket.create_connection(_address(daemon), timeout=WAIT)
        self.sock.sendall(
            b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        self.buffer = b""
        self.endpoint = self.event()[1]

    def event(self) -> tuple[str, str]:
        while b"\n\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "the SSE stream ended"
            self.buffer += chunk
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        kind, data = "message", ""
        for line in block.decode().splitlines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
        return kind, data

    def message(self) -> dict[str, Any]:
        while True:
            kind, data = self.event()
            if kind == "message" and data:
                return json.loads(data)  # type: ignore[no-any-return]


def _initialize(http: httpx.Client, base: str, reader: SseReader) -> None:
    params = {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t"}}
    post = http.post(
        base + reader.endpoint,
        json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params},
    )
    assert post.status_code == 202
    assert reader.message()["id"] == 0
    http.post(
        base + reader.endpoint, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )


def test_a_slow_reader_gets_every_answer_exactly_once(bounded: Daemon) -> None:
    base = bounded.binds[0]
    reader = SseReader(bounded)
    count, size = 120, 4000  # ~0.5 MB of answers through a 64 kB buffer
    statuses: list[int] = []
    with httpx.Client(timeout=WAIT) as http:
        _initialize(http, base, reader)

        def send_all() -> None:
            for n in range(count):
                body = {
                    "jsonrpc": "2.0",
                    "id": n,
                    "method": "tools/call",
                    "params": {"name": "big_text", "arguments": {"size": size}},
                }
                statuses.append(http.post(base + reader.endpoint, json=body).status_code)

        sender = threading.Thread(target=send_all)
        sender.start()
        seen: list[int] = []
        while len(seen) < count:
            message = reader.message()
            assert len(message["result"]["content"][0]["text"]) == size
            seen.append(message["id"])
        sender.join(timeout=WAIT)
    reader.sock.close()
    assert statuses == [202] * count
    assert sorted(seen) == list(range(count))


def test_a_client_that_reads_nothing_loses_its_session(bounded: Daemon) -> None:
    base = bounded.binds[0]
    reader = SseReader(bounded)
    with httpx.Client(timeout=WAIT) as http:
        _initialize(http, base, reader)
        statuses = []
        for n in range(400):  # bounded: until back-pressure gives up on this client
            body = {
                "jsonrpc": "2.0",
                "id": n,
                "method": "tools/call",
                "params": {"name": "big_text", "arguments": {"size": 60000}},
            }
            status = http.post(base + reader.endpoint, json=body).status_code
            statuses.append(status)
            if status != 202:
                break
    # Given up on either by back-pressure (the queue stayed full: 503) or by the write timeout
    # (the socket stayed full: the connection is aborted, and the session with it: 404).
    assert statuses[-1] in (404, 503)
    reader.sock.close()
    with httpx.Client(timeout=WAIT) as http:
        for _ in range(100):  # bounded: until the session is gone
            late = {"jsonrpc": "2.0", "id": "late", "method": "ping"}
            if http.post(base + reader.endpoint, json=late).status_code == 404:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the session of a client that reads nothing was kept")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_python_sdk_client_in_auto_mode_connects_over_sse(bounded: Daemon) -> None:
    """It sends server/discover first, even on this transport; the error answer on the
    stream makes it fall back to initialize."""

    async def session() -> str:
        async with Client(sse_client(bounded.binds[0] + "/sse")) as client:
            result = await client.call_tool("echo", {"text": "auto over sse"})
            return result.content[0].text  # type: ignore[union-attr]

    assert anyio.run(session, backend="asyncio") == "auto over sse"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_openai_agents_connects_over_sse(bounded: Daemon) -> None:
    from agents.mcp import MCPServerSse

    async def session() -> tuple[list[str], Any]:
        server = MCPServerSse(params={"url": bounded.binds[0] + "/sse"})
        async with server:
            tools = [tool.name for tool in await server.list_tools()]
            result = await server.call_tool("echo", {"text": "from an agent"})
            return tools, result

    tools, result = asyncio.run(session())
    assert "echo" in tools
    assert result.content[0].text == "from an agent"
