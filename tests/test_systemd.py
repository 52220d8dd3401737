"""mcpd.systemd against real datagram sockets and real fds, and the unit files under systemd-analyze."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from mcpd.systemd import (
    KEPT_PREFIX,
    ActivatedSocket,
    Notifier,
    ServiceEnvironment,
    keep_watchdog_fed,
    ping_interval,
    take_environment,
)

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "systemd"
PID = 4242


# -- the environment ---------------------------------------------------------------------------


def test_take_environment_reads_everything_and_unsets_it() -> None:
    environ = {
        "NOTIFY_SOCKET": "@mcpd-notify",
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": str(PID),
        "LISTEN_FDS": "2",
        "LISTEN_PID": str(PID),
        "LISTEN_FDNAMES": "http:unix",
        "PATH": "/usr/bin",
    }
    found = take_environment(environ, pid=PID)
    assert found == ServiceEnvironment(
        notify_socket="@mcpd-notify",
        watchdog_interval=30.0,
        sockets=(ActivatedSocket(3, "http"), ActivatedSocket(4, "unix")),
    )
    assert [s.bind for s in found.sockets] == ["fd://3", "fd://4"]
    assert environ == {"PATH": "/usr/bin"}  # children inherit none of it


def test_stored_connections_are_told_apart_from_listeners() -> None:
    environ = {
        "LISTEN_FDS": "3",
        "LISTEN_PID": str(PID),
        "LISTEN_FDNAMES": f"mcpd.socket:{KEPT_PREFIX}0a1b:{KEPT_PREFIX}2c3d",
    }
    found = take_environment(environ, pid=PID)
    assert found.sockets == (ActivatedSocket(3, "mcpd.socket"),)  # only it is served
    assert found.kept == (
        ActivatedSocket(4, f"{KEPT_PREFIX}0a1b"),
        ActivatedSocket(5, f"{KEPT_PREFIX}2c3d"),
    )


def test_nothing_set_means_a_plain_process() -> None:
    assert take_environment({}, pid=PID) == ServiceEnvironment()


@pytest.mark.parametrize(
    "listen",
    [
        {"LISTEN_FDS": "1", "LISTEN_PID": str(PID + 1)},  # meant for another process
        {"LISTEN_FDS": "1"},  # no LISTEN_PID: not known to be ours
        {"LISTEN_FDS": "one", "LISTEN_PID": str(PID)},
        {"LISTEN_FDS": "0", "LISTEN_PID": str(PID)},
    ],
)
def test_sockets_not_addressed_to_us_are_ignored_and_unset(listen: dict[str, str]) -> None:
    environ = dict(listen)
    assert take_environment(environ, pid=PID).sockets == ()
    assert environ == {}


def test_missing_fd_names_default_to_unknown() -> None:
    environ = {"LISTEN_FDS": "2", "LISTEN_PID": str(PID), "LISTEN_FDNAMES": "http"}
    assert take_environment(environ, pid=PID).sockets == (
        ActivatedSocket(3, "http"),
        ActivatedSocket(4, "unknown"),
    )


@pytest.mark.parametrize(
    ("watchdog", "interval"),
    [
        ({"WATCHDOG_USEC": "500000"}, 0.5),  # no WATCHDOG_PID: for whoever reads it
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(PID)}, 0.5),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(PID + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(watchdog: dict[str, str], interval: float | None) -> None:
    assert take_environment(dict(watchdog), pid=PID).watchdog_interval == interval


def test_inherited_fds_are_made_close_on_exec() -> None:
    """In a fresh process whose fd 3 really is an inheritable socket, as systemd passes it."""
    program = textwrap.dedent(
        """
        import os, socket
        from mcpd.systemd import take_environment
        listener = socket.socket()
        os.dup2(listener.fileno(), 3)
        os.set_inheritable(3, True)
        env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())}
        found = take_environment(env)
        print(found.sockets[0].bind, os.get_inheritable(3))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.split() == ["fd://3", "False"]


# -- notifications -----------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace, as $NOTIFY_SOCKET would name it."""
    name = f"@mcpd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(30)
    yield sock, name
    sock.close()


def _fields(sock: socket.socket) -> dict[str, str]:
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().split("\n"))


def test_ready_reloading_stopping_status_and_watchdog(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, name = receiver
    notifier = Notifier(name)
    assert notifier.enabled
    assert notifier.ready("Listening on http://127.0.0.1:8765;\n1 plugin")
    assert _fields(sock) == {"READY": "1", "STATUS": "Listening on http://127.0.0.1:8765; 1 plugin"}
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading = _fields(sock)
    assert reloading["RELOADING"] == "1"
    assert before <= int(reloading["MONOTONIC_USEC"]) <= after
    assert notifier.stopping()
    assert _fields(sock)["STOPPING"] == "1"
    assert notifier.status("busy")
    assert _fields(sock) == {"STATUS": "busy"}
    assert notifier.watchdog()
    assert _fields(sock) == {"WATCHDOG": "1"}
    notifier.close()
    assert not notifier.send(["READY=1"])


def test_an_fd_goes_to_the_store_and_out_of_it(receiver: tuple[socket.socket, str]) -> None:
    sock, name = receiver
    notifier = Notifier(name)
    left, right = socket.socketpair()
    with left, right:
        assert notifier.store_fd("mcpd-sse-1", left.fileno())
        data, fds, _, _ = socket.recv_fds(sock, 4096, 4)
        assert dict(line.split("=", 1) for line in data.decode().split("\n")) == {
            "FDSTORE": "1",
            "FDNAME": "mcpd-sse-1",
        }
        assert len(fds) == 1
        with socket.socket(fileno=fds[0]) as stored:  # the same connection, duplicated
            stored.sendall(b"through the store")
            assert right.recv(64) == b"through the store"
    assert notifier.remove_fd("mcpd-sse-1")
    assert _fields(sock) == {"FDSTOREREMOVE": "1", "FDNAME": "mcpd-sse-1"}
    notifier.close()
    assert not notifier.store_fd("mcpd-sse-2", 0)


def test_a_filesystem_socket_path_works() -> None:
    # A short directory directly under /tmp: unix socket paths are limited to 107 bytes,
    # which pytest's nested temporary directories can exceed.
    with (
        tempfile.TemporaryDirectory(dir="/tmp", prefix="mcpd-n") as directory,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        path = Path(directory) / "notify"
        sock.bind(str(path))
        sock.settimeout(30)
        assert Notifier(str(path)).ready("up")
        assert _fields(sock)["READY"] == "1"


@pytest.mark.parametrize("address", [None, "", "vsock:2:1234"])
def test_without_a_usable_socket_nothing_is_sent(address: str | None) -> None:
    notifier = Notifier(address)
    assert not notifier.enabled
    assert not notifier.ready("up")


def test_an_absent_listener_is_dropped_silently() -> None:
    assert not Notifier(f"@mcpd-test-nobody-{uuid.uuid4().hex}").ready("up")


def test_a_full_queue_drops_instead_of_blocking(receiver: tuple[socket.socket, str]) -> None:
    _, name = receiver
    notifier = Notifier(name)
    # Nobody reads: the kernel queue fills up after a few datagrams and sending must fail
    # at once rather than block (the bound only turns a regression into a failure).
    results = [notifier.watchdog() for _ in range(10_000)]
    assert results[0]
    assert not results[-1]


# -- the watchdog ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("watchdog", "every"),
    [(10.0, 1.0), (30.0, 1.0), (2.0, 0.5), (0.2, 0.05)],  # a quarter, at most one second
)
async def test_watchdog_pings_often_enough_to_tolerate_short_stalls(
    receiver: tuple[socket.socket, str],
    autojump_clock: trio.testing.MockClock,
    watchdog: float,
    every: float,
) -> None:
    assert ping_interval(watchdog) == every
    sock, name = receiver
    sock.setblocking(False)
    async with trio.open_nursery() as nursery:
        await nursery.start(keep_watchdog_fed, Notifier(name), watchdog)
        await trio.sleep(every * 4.5)  # pings at 0, 1, 2, 3 and 4 intervals
        nursery.cancel_scope.cancel()
    pings = []
    while True:
        try:
            pings.append(sock.recv(64))
        except BlockingIOError:
            break
    assert pings == [b"WATCHDOG=1"] * 5


async def test_a_wedged_event_loop_sends_no_pings(receiver: tuple[socket.socket, str]) -> None:
    sock, name = receiver
    async with trio.open_nursery() as nursery:
        await nursery.start(keep_watchdog_fed, Notifier(name), 0.02)
        assert sock.recv(64) == b"WATCHDOG=1"
        sock.setblocking(False)
        while True:  # drain whatever was sent before the loop wedges
            try:
                sock.recv(64)
            except BlockingIOError:
                break
        time.sleep(0.2)  # a blocking call wedges the loop for ten intervals  # noqa: ASYNC251
        with pytest.raises(BlockingIOError):
            sock.recv(64)
        nursery.cancel_scope.cancel()


# -- the unit files ----------------------------------------------------------------------------

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def _exposure(output: str) -> float:
    match = re.search(r"Overall exposure level for mcpd\.service: (\d+\.\d+)", output)
    assert match, output
    return float(match.group(1))


def _installed_copy(directory: Path, *drop_ins: str) -> Path:
    """The units as installed, with ExecStart pointing at this interpreter's mcpd.

    ``verify`` checks that ExecStart's binary exists, and /opt/mcpd is not on a test machine;
    ``python -m mcpd serve`` is the same command line. Drop-ins go into ``mcpd.service.d/``
    next to the copy, where systemd-analyze finds them.
    """
    text = (UNITS / "mcpd.service").read_text()
    assert "\nExecStart=/opt/mcpd/bin/mcpd serve\n" in text
    text = text.replace("ExecStart=/opt/mcpd/bin/mcpd", f"ExecStart={sys.executable} -m mcpd")
    (directory / "mcpd.service").write_text(text)
    shutil.copy(UNITS / "mcpd.socket", directory / "mcpd.socket")
    if drop_ins:
        (directory / "mcpd.service.d").mkdir()
    for name in drop_ins:
        shutil.copy(UNITS / "drop-ins" / name, directory / "mcpd.service.d" / name)
    return directory


@needs_analyze
def test_service_exposure_is_at_most_1_5() -> None:
    completed = _analyze("security", "--offline=yes", "mcpd.service", cwd=UNITS)
    assert completed.returncode == 0, completed.stderr
    assert _exposure(completed.stdout) <= 1.5


@needs_analyze
def test_with_outbound_network_the_exposure_stays_at_most_1_5(tmp_path: Path) -> None:
    copy = _installed_copy(tmp_path, "network.conf", "cffi-callbacks.conf")
    completed = _analyze("security", "--offline=yes", "./mcpd.service", cwd=copy)
    assert completed.returncode == 0, completed.stderr
    assert _exposure(completed.stdout) <= 1.5


@needs_analyze
def test_verify_prints_nothing(tmp_path: Path) -> None:
    copy = _installed_copy(tmp_path)
    completed = _analyze("verify", "./mcpd.service", "./mcpd.socket", cwd=copy)
    assert (completed.returncode, completed.stdout + completed.stderr) == (0, "")


@needs_analyze
def test_verify_prints_nothing_with_every_drop_in(tmp_path: Path) -> None:
    drop_ins = sorted(path.name for path in (UNITS / "drop-ins").glob("*.conf"))
    assert drop_ins == ["cffi-callbacks.conf", "credentials.conf", "network.conf"]
    copy = _installed_copy(tmp_path, *drop_ins)
    completed = _analyze("verify", "./mcpd.service", "./mcpd.socket", cwd=copy)
    assert (completed.returncode, completed.stdout + completed.stderr) == (0, "")


def test_the_socket_listens_where_mcpd_does_by_default() -> None:
    defaults = tomllib.loads((ROOT / "mcpd" / "defaults.toml").read_text())
    socket_unit = (UNITS / "mcpd.socket").read_text()
    listens = re.findall(r"^ListenStream=(.+)$", socket_unit, flags=re.MULTILINE)
    assert listens == defaults["server"]["listen"]


def test_the_service_command_line_is_a_valid_mcpd_command() -> None:
    service = (UNITS / "mcpd.service").read_text()
    command = re.findall(r"^ExecStart=/opt/mcpd/bin/mcpd (.+)$", service, flags=re.MULTILINE)
    assert command == ["serve"]
    completed = subprocess.run(
        [sys.executable, "-m", "mcpd", *command[0].split(), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
