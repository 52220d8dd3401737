"""What the service manager hands the daemon, and the messages the daemon sends back.

systemd talks to a ``Type=notify`` service through the environment and one datagram socket:

* ``NOTIFY_SOCKET``: where ``READY=1``, ``RELOADING=1``, ``STOPPING=1``, ``STATUS=`` and
  ``WATCHDOG=1`` go (a filesystem path, or an abstract name written with a leading ``@``);
* ``WATCHDOG_USEC`` / ``WATCHDOG_PID``: how often the manager expects ``WATCHDOG=1``;
* ``LISTEN_FDS`` / ``LISTEN_PID`` / ``LISTEN_FDNAMES``: sockets it opened for us (socket
  activation), passed as file descriptors 3, 4, ... ; after them, the descriptors the last
  process of the service left in its file descriptor store (``FDSTORE=1``, see
  ``Notifier.store_fd``): mcpd keeps the open connections of 2024-11-05 SSE sessions there
  across a restart, named ``KEPT_PREFIX…`` (``ServiceEnvironment.kept``).

No C library is needed for any of it. ``take_environment`` reads these variables once and
removes them, so plugin subprocesses do not inherit them and mistake themselves for the
service. Sending never blocks and never raises: a notification that cannot be delivered is
dropped, because a stuck or full notify socket must not stall the event loop.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import socket
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

import trio

__all__ = [
    "KEPT_PREFIX",
    "ActivatedSocket",
    "Notifier",
    "ServiceEnvironment",
    "keep_watchdog_fed",
    "ping_interval",
    "take_environment",
]

FIRST_LISTEN_FD = 3  # SD_LISTEN_FDS_START
# The names of the connections mcpd keeps in the fd store; every other passed fd is a listener.
KEPT_PREFIX = "mcpd-sse-"
MAX_PING_INTERVAL = 1.0  # seconds between WATCHDOG=1 pings, at most
_VARIABLES = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)


@dataclass(frozen=True, slots=True)
class ActivatedSocket:
    """One socket the service manager opened and passed in."""

    fd: int
    name: str  # from LISTEN_FDNAMES; systemd's default is "unknown"

    @property
    def bind(self) -> str:
        """The form hypercorn's ``bind`` setting understands."""
        return f"fd://{self.fd}"


@dataclass(frozen=True, slots=True)
class ServiceEnvironment:
    """What the service manager told this process; empty when run by hand."""

    notify_socket: str | None = None
    watchdog_interval: float | None = None  # seconds the manager waits for WATCHDOG=1
    sockets: tuple[ActivatedSocket, ...] = ()  # listening sockets
    kept: tuple[ActivatedSocket, ...] = ()  # connections from the fd store (KEPT_PREFIX)


def take_environment(
    environ: MutableMapping[str, str] | None = None, *, pid: int | None = None
) -> ServiceEnvironment:
    """Read the service manager's variables from ``environ`` (default: ``os.environ``), unset them.

    Variables addressed to another process (``LISTEN_PID``/``WATCHDOG_PID`` not ours) or
    malformed ones are ignored, as ``sd_listen_fds`` and ``sd_watchdog_enabled`` do.
    """
    env = os.environ if environ is None else environ
    own_pid = os.getpid() if pid is None else pid
    passed = _activated_sockets(env, own_pid)
    found = ServiceEnvironment(
        notify_socket=env.get("NOTIFY_SOCKET") or None,
        watchdog_interval=_watchdog_interval(env, own_pid),
        sockets=tuple(s for s in passed if not s.name.startswith(KEPT_PREFIX)),
        kept=tuple(s for s in passed if s.name.startswith(KEPT_PREFIX)),
    )
    for name in _VARIABLES:
        env.pop(name, None)
    return found


def _for_us(env: MutableMapping[str, str], variable: str, own_pid: int) -> bool:
    """True when ``variable`` is unset (meaning "whoever reads it") or names this process."""
    value = env.get(variable)
    return value is None or (value.isdigit() and int(value) == own_pid)


def _watchdog_interval(env: MutableMapping[str, str], own_pid: int) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0 or not _for_us(env, "WATCHDOG_PID", own_pid):
        return None
    return int(usec) / 1_000_000


def _activated_sockets(env: MutableMapping[str, str], own_pid: int) -> tuple[ActivatedSocket, ...]:
    count = env.get("LISTEN_FDS", "")
    # Unlike WATCHDOG_PID, LISTEN_PID is mandatory: without it the fds may be someone else's.
    if not count.isdigit() or "LISTEN_PID" not in env or not _for_us(env, "LISTEN_PID", own_pid):
        return ()
    names = env.get("LISTEN_FDNAMES", "").split(":")
    sockets = []
    for index in range(int(count)):
        fd = FIRST_LISTEN_FD + index
        # Like sd_listen_fds: the fds are ours now, and plugin subprocesses must not keep them.
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
        name = names[index] if index < len(names) and names[index] else "unknown"
        sockets.append(ActivatedSocket(fd, name))
    return tuple(sockets)


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares ``MONOTONIC_USEC=`` with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _one_line(text: str) -> str:
    # Each notification field is one line; a newline would start a bogus field.
    return " ".join(text.split())


class Notifier:
    """Sends state changes to ``$NOTIFY_SOCKET``; every method is a no-op without one.

    Example::

        notifier = Notifier(take_environment().notify_socket)
        notifier.ready("Listening on http://127.0.0.1:8765; 2 plugins")
        notifier.stopping()
    """

    def __init__(self, address: str | None) -> None:
        self._address = _socket_address(address) if address else None
        self._socket: socket.socket | None = None
        if self._address is not None:
            with contextlib.suppress(OSError):
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        """True when there is a notify socket to send to."""
        return self._socket is not None

    def send(self, fields: Sequence[str]) -> bool:
        """Send ``KEY=value`` fields as one datagram; False if it was dropped."""
        if self._socket is None or self._address is None:
            return False
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError:  # BlockingIOError included: a full queue must not block the loop
            return False
        return True

    def ready(self, status: str) -> bool:
        """Startup or a reload has finished."""
        return self.send(["READY=1", f"STATUS={_one_line(status)}"])

    def reloading(self, status: str = "Reloading configuration") -> bool:
        """A reload has begun; systemd waits for the next ``ready``."""
        return self.send(
            ["RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", f"STATUS={_one_line(status)}"]
        )

    def stopping(self, status: str = "Shutting down") -> bool:
        """Shutdown has begun."""
        return self.send(["STOPPING=1", f"STATUS={_one_line(status)}"])

    def status(self, status: str) -> bool:
        """Free-form text ``systemctl status`` shows."""
        return self.send([f"STATUS={_one_line(status)}"])

    def watchdog(self) -> bool:
        """The event loop is alive."""
        return self.send(["WATCHDOG=1"])

    def store_fd(self, name: str, fd: int) -> bool:
        """Hand ``fd`` to the service manager's fd store as ``name``: it keeps it open across
        a restart and passes it to the next process (``ServiceEnvironment.kept``). True if the
        message went out; whether it was kept depends on the unit's
        ``FileDescriptorStoreMax=`` (systemd closes what does not fit, and logs it)."""
        if self._socket is None or self._address is None:
            return False
        fields = f"FDSTORE=1\nFDNAME={name}".encode()
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        try:
            self._socket.sendmsg([fields], rights, 0, self._address)
        except OSError:
            return False
        return True

    def remove_fd(self, name: str) -> bool:
        """Drop the fd store's copy of ``name`` (taken over, or not wanted): a connection
        must close when this process closes it, not stay open in the store."""
        return self.send(["FDSTOREREMOVE=1", f"FDNAME={name}"])

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _socket_address(address: str) -> str | None:
    if address.startswith("@"):
        return "\0" + address[1:]  # Linux abstract namespace
    if address.startswith("/"):
        return address
    return None  # e.g. "vsock:..." addresses: not supported, notifications are skipped


def ping_interval(watchdog_interval: float) -> float:
    """Seconds between ``WATCHDOG=1`` pings: a quarter of the watchdog's, at most one second.

    systemd acts ``WatchdogSec=`` after the last ping, so a wedged loop is caught that long
    after it wedged whatever the cadence; frequent pings only keep a loop that was merely
    slow for a moment from being taken for a wedged one (with 10 s, a stall must last 9 s).
    """
    return min(watchdog_interval / 4, MAX_PING_INTERVAL)


async def keep_watchdog_fed(
    notifier: Notifier,
    interval: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Send ``WATCHDOG=1`` every ``ping_interval(interval)``, from the event loop, until
    cancelled.

    Sending from a trio task rather than a thread is the point: if the loop wedges, the
    pings stop and the service manager restarts the daemon.
    """
    task_status.started()
    while True:
        notifier.watchdog()
        await trio.sleep(ping_interval(interval))
