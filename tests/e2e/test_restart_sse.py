"""2024-11-05 HTTP+SSE sessions across a real restart: the ``GET /sse`` connection is handed to
the fd store (the test plays systemd: ``HeldSocket``) and the next daemon writes on it.

The client never reconnects: the official Python SDK's ``sse_client`` and a raw client keep
the one connection they opened, and go on POSTing with the same ``session_id``.
"""

from __future__ import annotations

import itertools
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import h11
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.types import ToolListChangedNotification
from support.daemon import WAIT, Daemon, calls_served, wait_for_file
from support.keys import key_table, new_key
from support.restarts import HeldSocket, SocketActivate, restart_config

ACCEPT_SSE = {"accept": "text/event-stream"}


@pytest.fixture
def held() -> Iterator[HeldSocket]:
    socket = HeldSocket()
    yield socket
    socket.close()


def config_for(tmp_path: Path, markers: Path, server: str = "") -> Path:
    return restart_config(
        tmp_path / "mcpd.toml", markers, port=0, state_dir=tmp_path / "state", server=server
    )


class RawSse:
    """An SSE connection read byte by byte through h11 (so its framing is checked across the
    hand-over), with POSTs over httpx to the endpoint it announced."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.h11 = h11.Connection(h11.CLIENT)
        auth = {"authorization": f"Bearer {token}"} if token else {}
        headers = {"host": f"127.0.0.1:{port}", "accept": "text/event-stream", **auth}
        request = h11.Request(method="GET", target="/sse", headers=list(headers.items()))
        self.sock.sendall(self.h11.send(request) + self.h11.send(h11.EndOfMessage()))
        self.response = self._next(h11.Response)
        self._buffer = b""
        kind, data = self.next_event()
        assert kind == "endpoint"
        self.endpoint = data
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=WAIT)
        self.ids = iter(range(1, 1000))

    def _next(self, wanted: type) -> Any:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(self.sock.recv(65536))
                continue
            assert isinstance(event, wanted), event
            return event

    def next_event(self) -> tuple[str, str]:
        while b"\n\n" not in self._buffer:
            self._buffer += bytes(self._next(h11.Data).data)
        raw, _, self._buffer = self._buffer.partition(b"\n\n")
        kind, data = "message", ""
        for line in raw.decode().split("\n"):
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].lstrip()
        if not data:  # a keep-alive comment
            return self.next_event()
        return kind, data

    def next_message(self) -> dict[str, Any]:
        kind, data = self.next_event()
        assert kind == "message"
        return json.loads(data)  # type: ignore[no-any-return]

    def request(self, method: str, params: dict[str, Any] | None = None) -> int:
        request_id = next(self.ids)
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        response = self.http.post(self.endpoint, json=message)
        assert response.status_code == 202, response.text
        return request_id

    def reply(self, request_id: int) -> dict[str, Any]:
        while True:
            message = self.next_message()
            if message.get("id") == request_id and "method" not in message:
                return message

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.reply(self.request(method, params))

    def initialize(self) -> None:
        params = {
            "protocolVersion": "2024-11-05",
            "capabilities": {},
            "clientInfo": {"name": "raw-sse", "version": "0"},
        }
        assert "result" in self.call("initialize", params)
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert self.http.post(self.endpoint, json=note).status_code == 202

    def ended(self) -> str:
        """How the server ended the connection, read to EOF: "clean" (the body's last chunk
        came), "aborted" (it closed inside the body), or "open" (it did not end)."""
        self.sock.settimeout(WAIT)
        try:
            while data := self.sock.recv(65536):
                self.h11.receive_data(data)
        except ConnectionResetError:
            return "aborted"
        except TimeoutError:
            return "open"
        self.h11.receive_data(b"")
        try:
            while (event := self.h11.next_event()) is not h11.NEED_DATA:
                if type(event) is h11.EndOfMessage:
                    return "clean"
                if type(event) is h11.ConnectionClosed:
                    return "aborted"
        except h11.RemoteProtocolError:  # EOF inside the body
            return "aborted"
        return "aborted"

    def close(self) -> None:
        self.http.close()
        self.sock.close()


def echo(session: RawSse, text: str) -> str:
    reply = session.call("tools/call", {"name": "echo", "arguments": {"text": text}})
    return str(reply["result"]["content"][0]["text"])


class Daemons:
    """One test's daemons, one after the other on the same held socket and state directory;
    each is stopped at the end (a failed test leaves none running)."""

    def __init__(self, held: HeldSocket | SocketActivate, config: Path, site: Path) -> None:
        self._held, self._config, self._site = held, config, site
        self.all: list[Daemon] = []

    def start(self) -> Daemon:
        self.all.append(self._held.start(self._config, self._site))
        return self.all[-1]

    def stop(self) -> Daemon:
        """Stop the running one (SIGTERM, clean exit); it, for its logs."""
        assert self.all[-1].stop() == 0
        return self.all[-1]

    def restart(self) -> Daemon:
        self.stop()
        return self.start()

    def close(self) -> None:
        for daemon in self.all:
            daemon.stop()


@pytest.fixture
def daemons(
    tmp_path: Path, markers: Path, plugin_site: Path, held: HeldSocket
) -> Iterator[Callable[..., Daemons]]:
    made: list[Daemons] = []

    def make(config: Path | None = None, on: HeldSocket | SocketActivate = held) -> Daemons:
        made.append(Daemons(on, config or config_for(tmp_path, markers), plugin_site))
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.fixture
def connect() -> Iterator[Callable[..., RawSse]]:
    opened: list[RawSse] = []

    def open_one(port: int, token: str | None = None) -> RawSse:
        opened.append(RawSse(port, token))
        opened[-1].initialize()
        return opened[-1]

    yield open_one
    for session in opened:
        session.close()


def test_a_raw_sse_session_goes_on_on_its_connection_across_restarts(
    daemons: Callable[..., Daemons], connect: Callable[..., RawSse], held: HeldSocket
) -> None:
    run = daemons()
    run.start()
    session = connect(held.port)
    assert echo(session, "before") == "before"
    for n in range(2):  # twice: a connection taken over is kept again
        run.restart()
        assert echo(session, f"after {n}") == f"after {n}"
    read = session.call("resources/read", {"uri": "fixture://text"})
    assert read["result"]["contents"][0]["text"] == "hello from the fixture"
    for before, after in itertools.pairwise(run.all):
        assert before.wait_for("http_sse.connections_kept")["kept"] == 1
        assert after.wait_for("state.restored")["sse_connections"] == 1
    assert not any(d.events("session.created") for d in run.all[1:])
    assert calls_served(run.all, 3) == [1, 1, 1]
    assert held.store.names() == []  # the running daemon took it out of the store


def test_a_kept_sse_session_answers_only_its_own_principal(
    tmp_path: Path,
    markers: Path,
    daemons: Callable[..., Daemons],
    connect: Callable[..., RawSse],
    held: HeldSocket,
) -> None:
    keys = {"alice": new_key("alice"), "bob": new_key("bob")}
    tables = "".join(key_table(name, hash_line) for name, (_, hash_line) in keys.items())
    config = restart_config(
        tmp_path / "mcpd.toml",
        markers,
        port=0,
        state_dir=tmp_path / "state",
        extra=f'[auth]\nmode = "keys"\n\n{tables}',
    )
    run = daemons(config)
    run.start()
    alice = connect(held.port, keys["alice"][0])
    second = run.restart()
    assert second.wait_for("state.restored")["sse_connections"] == 1
    ping = {"jsonrpc": "2.0", "id": 99, "method": "ping"}
    with httpx.Client(base_url=f"http://127.0.0.1:{held.port}", timeout=WAIT) as http:
        bob = {"authorization": f"Bearer {keys['bob'][0]}"}
        assert http.post(alice.endpoint, json=ping, headers=bob).status_code == 404
        assert http.post(alice.endpoint, json=ping).status_code == 401
    assert echo(alice, "still mine") == "still mine"
    [audit] = [e for e in second.events("audit") if e.get("method") == "tools/call"]
    assert audit["principal"] == '["keys","alice"]'  # the key, not the name alone


def test_a_call_running_at_the_stop_ends_with_its_error_on_the_kept_stream(
    markers: Path, daemons: Callable[..., Daemons], connect: Callable[..., RawSse], held: HeldSocket
) -> None:
    run = daemons()
    run.start()
    session = connect(held.port)
    tag = f"sse-stop-{uuid.uuid4().hex[:8]}"
    arguments = {"seconds": 60, "tag": tag}
    slow = session.request(
        "tools/call", {"name": "slow", "arguments": arguments, "_meta": {"progressToken": 1}}
    )
    assert session.next_message()["method"] == "notifications/progress"  # it runs
    first = run.stop()
    run.start()
    error = session.reply(slow)["error"]
    assert error["code"] == -32000, error
    assert wait_for_file(markers / f"{tag}.json")["outcome"] == "cancelled"
    assert echo(session, "after") == "after"
    assert first.wait_for("state.requests_lost")["requests"] == 1


def test_without_its_state_a_kept_connection_is_closed(
    tmp_path: Path,
    daemons: Callable[..., Daemons],
    connect: Callable[..., RawSse],
    held: HeldSocket,
) -> None:
    run = daemons()
    run.start()
    session = connect(held.port)
    run.stop()
    (tmp_path / "state" / "mcpd-state.json").unlink()  # the connection is in the store
    assert len(held.store.names()) == 1
    second = run.start()
    assert session.ended() == "aborted"  # its client sees it end, at once
    assert second.wait_for("http_sse.kept_connections_closed")["connections"] == 1
    assert held.store.names() == []


def test_with_keep_sse_connections_off_the_connection_ends_at_the_stop(
    tmp_path: Path,
    markers: Path,
    daemons: Callable[..., Daemons],
    connect: Callable[..., RawSse],
    held: HeldSocket,
) -> None:
    run = daemons(config_for(tmp_path, markers, server="keep_sse_connections = false"))
    run.start()
    session = connect(held.port)
    run.stop()
    assert session.ended() == "clean"
    assert held.store.names() == []


def test_without_an_fd_store_the_connection_ends_at_the_stop(
    daemons: Callable[..., Daemons], connect: Callable[..., RawSse]
) -> None:
    activate = SocketActivate()  # no NOTIFY_SOCKET: nowhere to keep it
    run = daemons(on=activate)
    run.start()
    session = connect(activate.port)
    first = run.stop()
    assert session.ended() == "clean"
    assert first.wait_for("state.saved")["sessions"] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_python_sdk_sse_client_goes_on_across_a_restart(
    daemons: Callable[..., Daemons], held: HeldSocket
) -> None:
    run = daemons()
    run.start()
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(getattr(message, "root", message), ToolListChangedNotification):
            changed.set()

    async def session() -> dict[str, Any]:
        url = f"http://127.0.0.1:{held.port}/sse"
        async with (
            sse_client(url) as (read, write),
            ClientSession(read, write, message_handler=on_message) as client,
        ):
            await client.initialize()
            before = await client.call_tool("echo", {"text": "before"})
            await anyio.to_thread.run_sync(run.restart)
            after = await client.call_tool("echo", {"text": "after"})
            text = await client.read_resource("fixture://text")
            await client.call_tool("announce", {"kind": "tools"})
            with anyio.fail_after(WAIT):  # a notification on the kept stream
                await changed.wait()
            return {"before": before, "after": after, "text": text}

    seen = anyio.run(session, backend="asyncio")
    assert seen["before"].content[0].text == "before"
    assert seen["after"].content[0].text == "after"
    assert seen["text"].contents[0].text == "hello from the fixture"
    assert run.all[1].wait_for("state.restored")["sse_connections"] == 1
