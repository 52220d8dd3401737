"""A real daemon as systemd runs it: notifications, watchdog, SIGHUP reloads, socket activation.

The test plays the service manager: it owns the ``$NOTIFY_SOCKET`` datagram socket and reads
what the daemon sends, and it runs the daemon under ``systemd-socket-activate`` to hand it a
listening socket. Waits are bounded only to turn a hang into a failure.
"""

from __future__ import annotations

import shutil
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.client import Legacy
from support.daemon import WAIT, Daemon, daemon_config, write_config
from support.plugins import install_plugins

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "plugins"
Message = dict[str, str]


class NotifySocket:
    """The service manager's end of ``$NOTIFY_SOCKET``: every datagram, parsed, in order."""

    def __init__(self) -> None:
        self.name = f"@mcpd-test-{uuid.uuid4().hex}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + self.name[1:])
        self.received: list[Message] = []

    def env(self, watchdog_usec: int | None = None) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": self.name}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def wait_for(self, match: Callable[[Message], bool]) -> Message:
        """The next message that matches (earlier ones are kept in ``received``)."""
        deadline = time.monotonic() + WAIT
        while (remaining := deadline - time.monotonic()) > 0:
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                break
            message = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.received.append(message)
            if match(message):
                return message
        raise AssertionError(f"no matching notification within {WAIT}s: {self.received}")

    def close(self) -> None:
        self._sock.close()


def ready(message: Message) -> bool:
    return message.get("READY") == "1"


def reloading(message: Message) -> bool:
    return message.get("RELOADING") == "1"


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    receiver = NotifySocket()
    yield receiver
    receiver.close()


@pytest.fixture
def config(tmp_path: Path, markers: Path) -> Path:
    return daemon_config(tmp_path / "mcpd.toml", markers)


def test_ready_watchdog_reload_and_stopping(
    config: Path, plugin_site: Path, notify: NotifySocket, http: httpx.Client
) -> None:
    daemon = Daemon.start(config, pythonpath=plugin_site, env=notify.env(watchdog_usec=200_000))
    try:
        status = notify.wait_for(ready)["STATUS"]
        assert daemon.binds[0] in status
        assert "plugins" in status
        # Two pings after READY=1: they keep coming from the running loop.
        notify.wait_for(lambda m: m == {"WATCHDOG": "1"})
        notify.wait_for(lambda m: m == {"WATCHDOG": "1"})

        daemon.signal(signal.SIGHUP)
        started = notify.wait_for(reloading)
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert 0 < int(started["MONOTONIC_USEC"]) <= now
        assert notify.wait_for(ready)["STATUS"] == status
        reloaded = daemon.wait_for("daemon.reloaded")
        assert "restart" in reloaded["note"]
        assert Legacy(http, daemon.url).initialize().call("echo", {"text": "hi"})["content"]
    finally:
        assert daemon.stop() == 0
    assert notify.wait_for(lambda m: m.get("STOPPING") == "1")


def test_a_broken_config_on_reload_keeps_the_daemon_serving(
    config: Path, plugin_site: Path, notify: NotifySocket, http: httpx.Client
) -> None:
    daemon = Daemon.start(config, pythonpath=plugin_site, env=notify.env())
    try:
        good = notify.wait_for(ready)["STATUS"]
        client = Legacy(http, daemon.url).initialize()
        text = config.read_text()
        write_config(config, text + "\n[server]\nlisten = 8765\n")

        daemon.signal(signal.SIGHUP)
        notify.wait_for(reloading)
        status = notify.wait_for(ready)["STATUS"]
        assert "reload failed" in status
        assert str(config) in status
        failed = daemon.wait_for("daemon.reload_failed")
        assert str(config) in failed["error"]
        assert client.call("echo", {"text": "still"})["content"][0]["text"] == "still"

        write_config(config, text)
        daemon.signal(signal.SIGHUP)
        notify.wait_for(reloading)
        assert notify.wait_for(ready)["STATUS"] == good
    finally:
        assert daemon.stop() == 0


def test_reload_applies_plugins_disable(
    config: Path, plugin_site: Path, notify: NotifySocket, http: httpx.Client
) -> None:
    daemon = Daemon.start(config, pythonpath=plugin_site, env=notify.env())
    try:
        notify.wait_for(ready)
        client = Legacy(http, daemon.url).initialize()
        assert "slow" in client.tool_names()  # a tool only the "fixture" plugin provides

        write_config(config, config.read_text() + '\n[plugins]\ndisable = ["fixture"]\n')
        daemon.signal(signal.SIGHUP)
        notify.wait_for(reloading)
        notify.wait_for(ready)
        assert "slow" not in client.tool_names()
        call = client.rpc("tools/call", {"name": "slow", "arguments": {"seconds": 0, "tag": "x"}})
        assert call.get("error") or call["result"].get("isError")
    finally:
        assert daemon.stop() == 0


def test_reload_discovers_a_plugin_installed_since_start(
    tmp_path: Path, config: Path, notify: NotifySocket, http: httpx.Client
) -> None:
    late_site = tmp_path / "late-site"
    late_site.mkdir()
    daemon = Daemon.start(config, pythonpath=late_site, env=notify.env())
    try:
        notify.wait_for(ready)
        client = Legacy(http, daemon.url).initialize()
        assert "echo" not in client.tool_names()

        install_plugins(late_site, FIXTURES / "mcpd-fixture-tools")
        daemon.signal(signal.SIGHUP)
        notify.wait_for(reloading)
        notify.wait_for(ready)
        assert "echo" in client.tool_names()
        assert client.call("echo", {"text": "new"})["content"][0]["text"] == "new"
    finally:
        assert daemon.stop() == 0


def test_a_reload_does_not_hold_up_shutdown(
    config: Path, plugin_site: Path, notify: NotifySocket
) -> None:
    daemon = Daemon.start(config, pythonpath=plugin_site, env=notify.env())
    notify.wait_for(ready)
    daemon.signal(signal.SIGHUP)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    notify.wait_for(lambda m: m.get("STOPPING") == "1")


def _wait_for_output(daemon: Daemon, text: str) -> None:
    deadline = time.monotonic() + WAIT
    while not any(text in line for line in daemon.raw):
        if daemon.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} within {WAIT}s: {daemon.raw}")
        time.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None,
    reason="systemd-socket-activate is not installed",
)
def test_serves_the_socket_it_is_handed(
    config: Path, plugin_site: Path, notify: NotifySocket, http: httpx.Client
) -> None:
    port = _free_port()
    # The wrapper listens, then execs the daemon on the first connection, passing only the
    # variables named with -E (and LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES).
    wrapper = ["systemd-socket-activate", f"--listen=127.0.0.1:{port}", "--fdname=http"]
    wrapper += ["-E", "PYTHONPATH", "-E", "NOTIFY_SOCKET"]
    daemon = Daemon.spawn(config, pythonpath=plugin_site, env=notify.env(), wrapper=wrapper)
    try:
        _wait_for_output(daemon, f"Listening on 127.0.0.1:{port}")
        # The config says 127.0.0.1:0; only the inherited socket can answer on this port.
        client = Legacy(http, f"http://127.0.0.1:{port}/mcp").initialize()
        assert client.init_result["serverInfo"]["name"] == "mcpd"
        assert client.call("echo", {"text": "activated"})["content"][0]["text"] == "activated"
        activated = daemon.wait_for("daemon.socket_activated")
        assert activated["sockets"] == [{"fd": 3, "name": "http"}]
        daemon.wait_until_listening()
        assert daemon.binds == [f"http://127.0.0.1:{port}"]
        assert "socket-activated" in notify.wait_for(ready)["STATUS"]
    finally:
        assert daemon.stop() == 0
