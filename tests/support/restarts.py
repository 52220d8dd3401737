"""Restarting a real daemon: one address across runs, a state directory, systemd's socket.

- ``restart_config``: the test daemon's config on a fixed address, with a state directory
  and resumable streams, so that the next daemon is where clients look for the last one.
- ``HeldSocket``: the test plays systemd: it holds the listening socket and hands it to each
  daemon as ``LISTEN_FDS`` does, so connections made while no daemon runs wait in its backlog;
  and it keeps a file descriptor store (``FdStore``) on the daemon's ``NOTIFY_SOCKET``: what a
  daemon stores there (``FDSTORE=1``) the next one gets after the listener, as systemd does.
- ``SocketActivate``: the same address served by daemons run under ``systemd-socket-activate``
  (which binds the socket, then execs the daemon on the first connection).
- ``EventStream``: an SSE response (a GET stream) read in a thread, event by event.

Every wait is bounded only to turn a hang into a failure.
"""

from __future__ import annotations

import array
import json
import os
import select
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from support.daemon import WAIT, Daemon, daemon_config, write_config

# Plays systemd: the listening socket arrives as fd 3, the stored ones as 4, 5, ... (moved out
# of the way first: a source may sit on a target), with LISTEN_PID naming the daemon.
ACTIVATE = (
    "import fcntl, os, sys\n"
    "fds = [int(fd) for fd in os.environ.pop('HELD_FDS').split(',')]\n"
    "high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 1000) for fd in fds]\n"
    "for fd in fds:\n"
    "    os.close(fd)  # only the daemon's copies stay: a kept connection closes with them\n"
    "for target, fd in enumerate(high, start=3):\n"
    "    os.dup2(fd, target)\n"
    "    os.close(fd)\n"
    "os.environ.update(LISTEN_FDS=str(len(fds)), LISTEN_PID=str(os.getpid()),\n"
    "                  LISTEN_FDNAMES=os.environ.pop('HELD_NAMES'))\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def restart_config(
    path: Path, markers: Path, *, port: int, state_dir: Path, extra: str = "", server: str = ""
) -> Path:
    """The test daemon's config on ``127.0.0.1:port``, keeping its state in ``state_dir``.

    ``server`` adds ``[server]`` keys; ``extra`` adds tables.
    """
    text = daemon_config(path, markers, extra).read_text()
    text = text.replace('listen = ["127.0.0.1:0"]', f'listen = ["127.0.0.1:{port}"]')
    text = text.replace(
        "resume_window_seconds = 0",
        f'resume_window_seconds = 30\nstate_dir = "{state_dir}"\n{server}',
    )
    return write_config(path, text)


class FdStore:
    """systemd's side of ``NOTIFY_SOCKET`` as far as the file descriptor store goes: fds sent
    with ``FDSTORE=1`` are kept under their ``FDNAME``, ``FDSTOREREMOVE=1`` drops them, and one
    whose peer hung up is dropped before it is passed on (systemd polls them for that). Every
    other notification (READY=1, STATUS=...) is kept as text, in order."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="mcpd-notify-")
        self.address = os.path.join(self._dir, "notify")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.address)
        self._lock = threading.Lock()
        self.stored: dict[str, list[int]] = {}
        self.messages: list[str] = []
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        space = socket.CMSG_SPACE(64 * array.array("i").itemsize)
        while True:
            try:
                data, ancillary, _, _ = self._socket.recvmsg(4096, space)
            except OSError:
                return  # closed
            fds: list[int] = []
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    passed = array.array("i")
                    passed.frombytes(payload[: len(payload) - len(payload) % passed.itemsize])
                    fds.extend(passed)
            self._take(data.decode(errors="replace"), fds)

    def _take(self, text: str, fds: list[int]) -> None:
        fields = dict(line.partition("=")[::2] for line in text.splitlines())
        name = fields.get("FDNAME", "stored")
        with self._lock:
            self.messages.append(text)
            if fields.get("FDSTORE") == "1" and fds:
                self.stored.setdefault(name, []).extend(fds)
                return
            if fields.get("FDSTOREREMOVE") == "1":
                for fd in self.stored.pop(name, []):
                    os.close(fd)
        for fd in fds:  # not for the store: systemd closes them too
            os.close(fd)

    def passed(self) -> list[tuple[str, int]]:
        """The stored fds to pass to the next daemon, as (name, fd); hung-up ones dropped."""
        with self._lock:
            for name, fds in list(self.stored.items()):
                alive = [fd for fd in fds if not _hung_up(fd)]
                for fd in set(fds) - set(alive):
                    os.close(fd)
                if alive:
                    self.stored[name] = alive
                else:
                    del self.stored[name]
            return [(name, fd) for name, fds in self.stored.items() for fd in fds]

    def names(self) -> list[str]:
        with self._lock:
            return list(self.stored)

    def close(self) -> None:
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._thread.join(WAIT)
        with self._lock:
            for fds in self.stored.values():
                for fd in fds:
                    os.close(fd)
            self.stored.clear()
        os.unlink(self.address)
        os.rmdir(self._dir)


def _hung_up(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


class HeldSocket:
    """A listening socket that outlives the daemons it is handed to (as systemd's does), and
    an fd store (``store``) that does too."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(512)
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.store = FdStore()

    def spawn(self, config: Path, pythonpath: Path, env: Mapping[str, str] | None = None) -> Daemon:
        fd = self.listener.fileno()
        stored = self.store.passed()
        fds = [fd, *(kept for _, kept in stored)]
        passed = {
            "HELD_FDS": ",".join(map(str, fds)),
            "HELD_NAMES": ":".join(["http", *(name for name, _ in stored)]),
            "NOTIFY_SOCKET": self.store.address,
        }
        return Daemon.spawn(
            config,
            pythonpath=pythonpath,
            env={**(env or {}), **passed},
            wrapper=[sys.executable, "-c", ACTIVATE],
            pass_fds=tuple(fds),
        )

    def start(self, config: Path, pythonpath: Path, env: Mapping[str, str] | None = None) -> Daemon:
        daemon = self.spawn(config, pythonpath, env)
        daemon.wait_until_listening()
        return daemon

    def close(self) -> None:
        self.listener.close()
        self.store.close()


class SocketActivate:
    """Daemons on one address, each run by ``systemd-socket-activate``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def start(self, config: Path, pythonpath: Path) -> Daemon:
        wrapper = [
            "systemd-socket-activate",
            f"--listen=127.0.0.1:{self.port}",
            "--fdname=http",
            "-E",
            "PYTHONPATH",
        ]
        daemon = Daemon.spawn(config, pythonpath=pythonpath, wrapper=wrapper)
        wait_until(lambda: _listening(self.port) or daemon.process.poll() is not None)
        # The wrapper execs the daemon on the first connection: make it, and wait for it.
        with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT):
            daemon.wait_until_listening()
        return daemon


def _listening(port: int) -> bool:
    try:
        with open("/proc/net/tcp") as table:
            rows = table.read().splitlines()[1:]
    except OSError:
        return False
    wanted = f"0100007F:{port:04X}"
    return any(row.split()[1] == wanted and row.split()[3] == "0A" for row in rows)


def wait_until(condition: Callable[[], object], what: str = "condition") -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {WAIT}s"
        time.sleep(0.01)


class EventStream:
    """A GET stream read in a thread: its status, headers and events (``id``, ``data``)."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.events: list[dict[str, Any]] = []
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._client = httpx.Client(timeout=httpx.Timeout(WAIT, read=None))
        self._thread = threading.Thread(target=self._read, args=(url, dict(headers)), daemon=True)
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self._note(status=response.status_code, headers=response.headers)
                event: dict[str, Any] = {}
                for line in response.iter_lines():
                    event = self._line(event, line)
        except (httpx.HTTPError, OSError) as exc:
            self.error = exc
        finally:
            self.ended.set()
            self._note()

    def _line(self, event: dict[str, Any], line: str) -> dict[str, Any]:
        if line == "":
            if "data" in event or "id" in event:
                with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
            return {}
        if line.startswith(":"):
            return event
        field, _, value = line.partition(":")
        event[field] = value.removeprefix(" ")
        return event

    def _note(self, **fields: Any) -> None:
        with self._changed:
            for name, value in fields.items():
                setattr(self, name, value)
            self._changed.notify_all()

    def messages(self) -> list[dict[str, Any]]:
        with self._changed:
            return [json.loads(e["data"]) for e in self.events if e.get("data")]

    def wait_for(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first JSON-RPC message on the stream that matches (waits for it)."""
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                for found in self.messages():
                    if match(found):
                        return found
                assert not self.ended.is_set(), f"stream ended: {self.events} {self.error}"
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no matching message within {WAIT}s: {self.events}"
                self._changed.wait(min(remaining, 0.5))

    def wait_started(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.status is not None or self.ended.is_set(), WAIT)
        assert self.status is not None, f"no response: {self.error}"

    def last_id(self) -> str:
        with self._changed:
            ids = [e["id"] for e in self.events if "id" in e]
        assert ids, self.events
        return ids[-1]

    def wait_ended(self) -> None:
        assert self.ended.wait(WAIT), "the stream did not end"

    def close(self) -> None:
        self._client.close()
        self._thread.join(WAIT)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
