"""Clients that do not notice a restart: the official Python SDK client and pooled httpx clients
calling across a real restart, socket-activated (the test holds the socket, as systemd does,
or ``systemd-socket-activate`` binds it) and plain (SIGTERM, then a new daemon on the address).

No call is retried: a request lost to the keep-alive race at the stop, a session lost to the
restart or a stream that cannot be resumed fails the test.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import ElicitResult, ToolListChangedNotification
from support.client import Legacy, modern_post
from support.daemon import Daemon, calls_served
from support.restarts import HeldSocket, SocketActivate, free_port, restart_config, wait_until

CLIENTS = 8
CALLS = 16


@pytest.fixture
def held() -> Iterator[HeldSocket]:
    socket = HeldSocket()
    yield socket
    socket.close()


def config_for(tmp_path: Path, markers: Path, port: int) -> Path:
    return restart_config(tmp_path / "mcpd.toml", markers, port=port, state_dir=tmp_path / "state")


class Restarter:
    """Stops the running daemon and starts the next, however this test's daemons run."""

    def __init__(self, start: Callable[[], Daemon]) -> None:
        self._start = start
        self.daemons = [start()]

    @property
    def current(self) -> Daemon:
        return self.daemons[-1]

    def restart(self) -> Daemon:
        assert self.current.stop() == 0
        self.daemons.append(self._start())
        return self.current

    def stop(self) -> None:
        for daemon in self.daemons:
            assert daemon.stop() == 0


@pytest.fixture(params=["held-socket", "systemd-socket-activate", "sigterm-and-start"])
def restarter(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    markers: Path,
    plugin_site: Path,
    held: HeldSocket,
) -> Iterator[tuple[Restarter, str]]:
    if request.param == "held-socket":
        config = config_for(tmp_path, markers, 0)
        restarter = Restarter(lambda: held.start(config, plugin_site))
        url = held.url
    elif request.param == "systemd-socket-activate":
        activate = SocketActivate()
        config = config_for(tmp_path, markers, 0)
        restarter = Restarter(lambda: activate.start(config, plugin_site))
        url = activate.url
    else:
        port = free_port()
        config = config_for(tmp_path, markers, port)
        restarter = Restarter(lambda: Daemon.start(config, pythonpath=plugin_site))
        url = f"http://127.0.0.1:{port}/mcp"
    yield restarter, url
    restarter.stop()


def test_the_python_sdk_client_goes_on_across_a_restart(
    restarter: tuple[Restarter, str], request: pytest.FixtureRequest
) -> None:
    daemons, url = restarter
    # Without a socket held across the restart, connections are refused until the next
    # daemon listens, and the SDK gives up its GET stream after two refused reconnections
    # (a second apart): its calls go on, but notifications then have no stream to come by.
    held_socket = request.node.callspec.params["restarter"] != "sigterm-and-start"
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(getattr(message, "root", message), ToolListChangedNotification):
            changed.set()

    async def session() -> dict[str, Any]:
        async with Client(url, mode="legacy", message_handler=on_message) as client:
            before = await client.call_tool("echo", {"text": "before"})
            await anyio.to_thread.run_sync(daemons.restart)
            after = await client.call_tool("echo", {"text": "after"})
            read = await client.read_resource("fixture://text")
            await client.call_tool("announce", {"kind": "tools"})
            if held_socket:
                with anyio.fail_after(30):  # the GET stream resumed (Last-Event-ID) with it
                    await changed.wait()
            return {"before": before, "after": after, "read": read}

    seen_by_client = anyio.run(session, backend="asyncio")
    assert seen_by_client["before"].content[0].text == "before"
    assert seen_by_client["after"].content[0].text == "after"
    assert seen_by_client["read"].contents[0].text == "hello from the fixture"
    first, second = daemons.daemons
    assert first.wait_for("state.saved")["sessions"] == 1
    assert second.wait_for("state.restored")["sessions"] == 1
    assert not second.events("session.created")  # the same session, not a new one


def pooled_client(url: str, number: int, results: list[str], restarted: threading.Event) -> None:
    """One pooled httpx client: a session and stateless calls, alternating, none retried."""
    with httpx.Client(timeout=60) as http:
        session = Legacy(http, url).initialize()
        for n in range(CALLS):
            text = f"{number}-{n}-{uuid.uuid4().hex[:4]}"
            if n == CALLS // 2:
                assert restarted.wait(60)  # the second half runs on the next daemon
            if n % 2:
                result = session.call("echo", {"text": text})
            else:
                response = modern_post(
                    http, url, "tools/call", {"name": "echo", "arguments": {"text": text}}
                )
                assert response.status_code == 200, response.text
                result = response.json()["result"]
            assert result["content"][0]["text"] == text
            results.append(text)


def test_pooled_clients_lose_nothing_across_a_socket_activated_restart(
    tmp_path: Path, markers: Path, plugin_site: Path, held: HeldSocket
) -> None:
    config = config_for(tmp_path, markers, 0)
    first = held.start(config, plugin_site)
    second: list[Daemon] = []
    results: list[str] = []
    restarted = threading.Event()

    def restart() -> None:
        # Mid-load: the first daemon stops while the clients keep calling; requests made
        # until the next one listens wait in the held socket's backlog.
        wait_until(lambda: len(results) >= CLIENTS * 3, "calls before the restart")
        assert first.stop() == 0
        second.append(held.start(config, plugin_site))
        restarted.set()

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [
                pool.submit(pooled_client, held.url, c, results, restarted) for c in range(CLIENTS)
            ]
            restart()
            for future in futures:
                future.result()  # re-raises any failed call
        assert len(results) == CLIENTS * CALLS
        assert first.wait_for("state.saved")["sessions"] == CLIENTS
        assert second[0].wait_for("state.restored")["sessions"] == CLIENTS
        assert not second[0].events("session.created")
        served = calls_served((first, second[0]), CLIENTS * CALLS)
        assert all(served)
        assert sum(served) == CLIENTS * CALLS
    finally:
        for daemon in second:
            assert daemon.stop() == 0


def test_the_python_sdk_client_on_2026_goes_on_across_a_restart(
    tmp_path: Path, markers: Path, plugin_site: Path, held: HeldSocket
) -> None:
    """No session to keep: each request stands alone, input rounds included."""
    config = config_for(tmp_path, markers, 0)
    daemons = Restarter(lambda: held.start(config, plugin_site))

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"name": "Grace"})

    async def session() -> list[str]:
        async with Client(held.url, mode="2026-07-28", elicitation_callback=on_elicit) as client:
            before = await client.call_tool("echo", {"text": "before"})
            await anyio.to_thread.run_sync(daemons.restart)
            after = await client.call_tool("echo", {"text": "after"})
            asked = await client.call_tool("ask_name", {})
            return [r.content[0].text for r in (before, after, asked)]

    try:
        assert anyio.run(session, backend="asyncio") == ["before", "after", "accept:Grace"]
    finally:
        daemons.stop()
