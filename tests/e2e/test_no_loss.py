"""No accepted request is lost to a reload or to a restart behind a held socket.

A reload (SIGHUP) swaps the plugin registry while calls run. A restart under systemd keeps
the listening socket open in the service manager, so connections made while no daemon runs
wait in its backlog for the next one; here the test itself plays the service manager,
holding the socket and handing it to each daemon as LISTEN_FDS does.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import Legacy, modern_post
from support.daemon import WAIT, Daemon, calls_served, daemon_config

CLIENTS = 8
CALLS_PER_CLIENT = 12

# Plays systemd: the listening socket arrives as fd 3, with LISTEN_PID naming the daemon.
ACTIVATE = (
    "import os, sys\n"
    "os.dup2(int(os.environ.pop('HELD_FD')), 3)\n"
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES='http')\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


@pytest.fixture
def config(tmp_path: Path, markers: Path) -> Path:
    return daemon_config(tmp_path / "mcpd.toml", markers)


def call_many(url: str, client: int, results: list[Any]) -> None:
    """One client: a session and stateless requests, alternating, each must succeed."""
    with httpx.Client(timeout=60) as http:
        session = Legacy(http, url).initialize()
        for n in range(CALLS_PER_CLIENT):
            text = f"{client}-{n}"
            if n % 2:
                result = session.call("echo", {"text": text})
            else:
                response = modern_post(
                    http, url, "tools/call", {"name": "echo", "arguments": {"text": text}}
                )
                result = response.json()["result"]
            results.append((text, result["content"][0]["text"]))


def wait_until(condition: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def post_retrying_unsent(http: httpx.Client, url: str, text: str) -> httpx.Response:
    """A stateless echo call. A connection the server closed before reading the request
    (an idle keep-alive connection at shutdown) carries no accepted request: HTTP clients
    retry those, and so does this one. Anything else is a failure."""
    for _ in range(3):
        try:
            return modern_post(
                http, url, "tools/call", {"name": "echo", "arguments": {"text": text}}
            )
        except (httpx.RemoteProtocolError, httpx.ConnectError, httpx.ReadError) as exc:
            if "without sending a response" not in str(exc) and not isinstance(
                exc, httpx.ConnectError | httpx.ReadError
            ):
                raise
    raise AssertionError(f"no answer for {text}")


def run_clients(url: str, during: Any) -> list[Any]:
    results: list[Any] = []
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(call_many, url, c, results) for c in range(CLIENTS)]
        during()
        for future in futures:
            future.result()  # re-raises any failed request
    return results


def test_reloads_under_load_lose_nothing(config: Path, plugin_site: Path, markers: Path) -> None:
    daemon = Daemon.start(config, pythonpath=plugin_site)
    try:
        reloads = 0

        def reload_repeatedly() -> None:
            nonlocal reloads
            for _ in range(5):
                daemon.process.send_signal(signal.SIGHUP)
                reloads += 1
                wait_until(lambda n=reloads: len(daemon.events("daemon.reloaded")) >= n)

        results = run_clients(daemon.url, reload_repeatedly)
        assert len(results) == CLIENTS * CALLS_PER_CLIENT
        assert all(sent == echoed for sent, echoed in results)
        assert len(daemon.events("daemon.reloaded")) == 5
    finally:
        assert daemon.stop() == 0


@pytest.fixture
def held_socket() -> Iterator[socket.socket]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    yield listener
    listener.close()


def spawn_on(listener: socket.socket, config: Path, plugin_site: Path) -> Daemon:
    fd = listener.fileno()
    wrapper = [sys.executable, "-c", ACTIVATE]
    return Daemon.spawn(
        config,
        pythonpath=plugin_site,
        env={"HELD_FD": str(fd)},
        wrapper=wrapper,
        pass_fds=(fd,),
    )


def test_a_restart_behind_a_held_socket_loses_no_request(
    config: Path, plugin_site: Path, held_socket: socket.socket
) -> None:
    port = held_socket.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mcp"
    first = spawn_on(held_socket, config, plugin_site)
    first.wait_until_listening()
    second: list[Daemon] = []
    restarted = threading.Event()

    def restart() -> None:
        # Stop the first daemon mid-load; requests arriving until the next one runs wait in
        # the socket's backlog. (Sessions across a restart: tests/e2e/test_restart_clients.py.)
        wait_until(lambda: len(results) >= CLIENTS)
        assert first.stop() == 0
        second.append(spawn_on(held_socket, config, plugin_site))
        second[0].wait_until_listening()
        restarted.set()

    results: list[str] = []

    def client(number: int) -> None:
        with httpx.Client(timeout=60) as http:
            for n in range(CALLS_PER_CLIENT):
                text = f"{number}-{n}-{uuid.uuid4().hex[:4]}"
                response = post_retrying_unsent(http, url, text)
                assert response.status_code == 200, response.text
                assert response.json()["result"]["content"][0]["text"] == text
                results.append(text)

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(client, c) for c in range(CLIENTS)]
            restart()
            for future in futures:
                future.result()
        assert restarted.is_set()
        assert len(results) == CLIENTS * CALLS_PER_CLIENT
        assert second[0].wait_for("daemon.socket_activated")
        # Both daemons served part of the load, and together all of it.
        served = calls_served((first, second[0]), CLIENTS * CALLS_PER_CLIENT)
        assert all(served)
        other = [e for d in (first, second[0]) for e in d.events("audit") if e["outcome"] != "ok"]
        assert sum(served) == CLIENTS * CALLS_PER_CLIENT, other
    finally:
        for daemon in second:
            assert daemon.stop() == 0
