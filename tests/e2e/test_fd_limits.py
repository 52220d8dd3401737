"""A real daemon at its file-descriptor limit, its fd limit at start, and its listen backlog.

Limits are set the way an operator would: ``prlimit`` runs ``mcpd serve`` with a low
RLIMIT_NOFILE. The backlog the kernel applies is read back with ``ss`` (Send-Q of a listening
socket is its backlog). Waits are bounded only to turn a hang into a failure.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
from support.client import messages_of
from support.daemon import WAIT, Daemon, write_config
from support.eras import modern_request

from mcpd.config import ServerSettings
from mcpd.daemon import FD_RESERVE, FDS_PER_SESSION

# A daemon with a couple of plugins loaded uses about a dozen descriptors.
TIGHT_LIMIT = 64

# What systemd does before it runs the service: the socket as fd 3, LISTEN_FDS=1 and
# LISTEN_PID=<the daemon> (exec keeps the pid). argv: the socket's fd, then the command.
HAND_IN = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ.update(LISTEN_FDS="1", LISTEN_FDNAMES="http", LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
"""


def _config(path: Path, markers: Path, extra: str = "") -> Path:
    return write_config(
        path,
        f"""
[server]
listen = ["127.0.0.1:0"]
# Accepted connections stay open (idle) until the test closes them.
keep_alive_timeout_seconds = 120
max_sessions = 10
{extra}

[plugin.fixture]
marker_dir = "{markers}"
""",
    )


def _limits(pid: int) -> tuple[int, int]:
    """The (soft, hard) RLIMIT_NOFILE of a running process."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-files limit for {pid}")


def _backlog(port: int) -> int:
    """The backlog of the socket listening on ``port`` (ss shows it as Send-Q)."""
    listed = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listed[:1] == ["LISTEN"], listed
    return int(listed[2])


def _port(daemon: Daemon) -> int:
    return int(daemon.binds[0].rpartition(":")[2])


def _echo(url: str, text: str) -> str:
    with httpx.Client(timeout=WAIT) as http:
        response = modern_request(
            http, url, "tools/call", {"name": "echo", "arguments": {"text": text}}
        )
    return str(messages_of(response)[-1]["result"]["content"][0]["text"])


def _connections(port: int, count: int) -> Iterator[socket.socket]:
    for _ in range(count):
        yield socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def test_descriptor_exhaustion_pauses_accepting_once_then_resumes(
    tmp_path: Path, plugin_site: Path, markers: Path
) -> None:
    config = _config(tmp_path / "mcpd.toml", markers)
    wrapper = ["prlimit", f"--nofile={TIGHT_LIMIT}:{TIGHT_LIMIT}"]
    daemon = Daemon.spawn(config, pythonpath=plugin_site, wrapper=wrapper)
    daemon.wait_until_listening()
    try:
        # The fd limit cannot be raised (hard = soft): the daemon says max_sessions won't fit.
        low = daemon.wait_for("daemon.fd_limit_low")
        assert low["limit"] == TIGHT_LIMIT
        with ExitStack() as held:
            # More connections than the daemon can accept: the rest wait in the backlog.
            for sock in _connections(_port(daemon), 2 * TIGHT_LIMIT):
                held.enter_context(sock)
            paused = daemon.wait_for("accept.paused")
            assert paused["errno"] == "EMFILE"
            time.sleep(1.0)  # exhausted for a while: upstream would log ten tracebacks by now
        # Closed: the daemon's descriptors free up, accepting resumes, a new client is served.
        daemon.wait_for("accept.resumed")
        assert _echo(daemon.url, "after the pause") == "after the pause"
    finally:
        assert daemon.stop() == 0
    assert len(daemon.events("accept.paused")) == 1
    assert not [e for e in daemon.logs if e.get("logger") == "trio.serve_listeners"]
    assert "Traceback" not in "".join(daemon.raw)


def test_the_pause_is_counted_in_a_metric(tmp_path: Path, plugin_site: Path, markers: Path) -> None:
    config = _config(tmp_path / "mcpd.toml", markers)
    wrapper = ["prlimit", f"--nofile={TIGHT_LIMIT}:{TIGHT_LIMIT}"]
    daemon = Daemon.spawn(config, pythonpath=plugin_site, wrapper=wrapper)
    daemon.wait_until_listening()
    try:
        with ExitStack() as held:
            for sock in _connections(_port(daemon), 2 * TIGHT_LIMIT):
                held.enter_context(sock)
            daemon.wait_for("accept.paused")
        daemon.wait_for("accept.resumed")
        metrics = httpx.get(daemon.binds[0] + "/metrics", timeout=WAIT).text
    finally:
        assert daemon.stop() == 0
    assert "mcpd_accept_paused_total 1.0" in metrics.splitlines()


def test_the_soft_fd_limit_is_raised_to_the_hard_limit(
    tmp_path: Path, plugin_site: Path, markers: Path
) -> None:
    config = _config(tmp_path / "mcpd.toml", markers)
    daemon = Daemon.spawn(config, pythonpath=plugin_site, wrapper=["prlimit", "--nofile=64:4096"])
    daemon.wait_until_listening()
    try:
        assert _limits(daemon.process.pid) == (4096, 4096)
        raised = daemon.wait_for("daemon.fd_limit_raised")
    finally:
        assert daemon.stop() == 0
    assert (raised["was"], raised["soft"]) == (64, 4096)
    assert not daemon.events("daemon.fd_limit_low")  # 10 sessions fit in 4096


def test_the_backlog_is_the_configured_one(
    tmp_path: Path, plugin_site: Path, markers: Path
) -> None:
    config = _config(tmp_path / "mcpd.toml", markers, extra="backlog = 77")
    daemon = Daemon.start(config, pythonpath=plugin_site)
    try:
        assert _backlog(_port(daemon)) == 77
    finally:
        assert daemon.stop() == 0


def test_a_socket_handed_in_keeps_its_own_backlog(
    tmp_path: Path, plugin_site: Path, markers: Path
) -> None:
    """hypercorn would listen() again with its backlog; systemd's Backlog= must govern."""
    config = _config(tmp_path / "mcpd.toml", markers, extra="backlog = 77")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(33)
        fd, port = listener.fileno(), listener.getsockname()[1]
        wrapper = [sys.executable, "-c", HAND_IN, str(fd)]
        daemon = Daemon.spawn(config, pythonpath=plugin_site, wrapper=wrapper, pass_fds=[fd])
        try:
            daemon.wait_until_listening()
            assert daemon.binds == ["http://127.0.0.1:" + str(port)]
            assert _backlog(port) == 33
            assert _echo(daemon.url, "handed in") == "handed in"
        finally:
            assert daemon.stop() == 0


def test_the_shipped_units_fit_the_default_limits() -> None:
    """The unit's LimitNOFILE= fits the default max_sessions; the socket's Backlog= is at
    least the daemon's own default backlog."""
    units = Path(__file__).resolve().parents[2] / "systemd"
    service = (units / "mcpd.service").read_text()
    socket_unit = (units / "mcpd.socket").read_text()
    defaults = ServerSettings()
    assert (
        _unit_value(service, "LimitNOFILE") >= FDS_PER_SESSION * defaults.max_sessions + FD_RESERVE
    )
    assert _unit_value(socket_unit, "Backlog") >= defaults.backlog


def _unit_value(unit: str, key: str) -> int:
    found = re.search(rf"^{key}=(\d+)$", unit, re.MULTILINE)
    assert found is not None, f"no {key}= in the unit"
    return int(found[1])
