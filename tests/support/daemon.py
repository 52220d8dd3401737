"""Run a real mcpd daemon as a subprocess on a loopback ephemeral port.

The daemon logs JSON lines on stderr (it is not a TTY); a reader thread collects them so
tests can wait for events (``daemon.listening`` gives the bound URL) and assert on them.
Every wait has a generous bound that only turns a hang into a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from signal import SIGTERM
from typing import Any

WAIT = 30.0  # upper bound for anything a test waits on; never an assertion about speed


class Daemon:
    def __init__(
        self, process: subprocess.Popen[str], logs: list[dict[str, Any]], raw: list[str]
    ) -> None:
        self.process = process
        self.logs = logs
        self.raw = raw
        self._changed = threading.Condition()
        self.url = ""
        self.binds: list[str] = []

    @classmethod
    def start(
        cls, config: Path, *, pythonpath: Path | None = None, env: Mapping[str, str] | None = None
    ) -> Daemon:
        daemon = cls.spawn(config, pythonpath=pythonpath, env=env)
        daemon.wait_until_listening()
        return daemon

    @classmethod
    def spawn(
        cls,
        config: Path,
        *,
        pythonpath: Path | None = None,
        env: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
        pass_fds: Sequence[int] = (),
    ) -> Daemon:
        """Start ``mcpd serve`` (under ``wrapper``, a command that execs it) without waiting."""
        environ = {**os.environ, **(env or {})}
        if pythonpath is not None:
            environ["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(pythonpath), environ.get("PYTHONPATH")])
            )
        process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "mcpd", "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=environ,
            pass_fds=tuple(pass_fds),
        )
        daemon = cls(process, [], [])
        threading.Thread(target=daemon._read, daemon=True).start()
        return daemon

    def wait_until_listening(self) -> None:
        listening = self.wait_for("daemon.listening")
        self.binds = listening["binds"]
        self.url = self.binds[0] + listening.get("path", "/mcp")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.raw.append(line)
                with contextlib.suppress(ValueError):
                    self.logs.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._changed:
            return [entry for entry in self.logs if entry.get("event") == name]

    def wait_for(
        self, name: str, match: Callable[[dict[str, Any]], bool] = lambda _: True
    ) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                for entry in self.logs:
                    if entry.get("event") == name and match(entry):
                        return entry
                if self.process.poll() is not None and not self._reader_alive():
                    raise AssertionError(
                        f"daemon exited before logging {name}:\n{''.join(self.raw)}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no {name} event within {WAIT}s:\n{''.join(self.raw[-50:])}"
                    )
                self._changed.wait(min(remaining, 0.5))

    def _reader_alive(self) -> bool:
        return (
            self.process.stderr is not None
            and not self.process.stderr.closed
            and self.process.poll() is None
        )

    def signal(self, signum: int = SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self) -> int:
        """Wait (bounded) for the process to exit by itself."""
        try:
            return self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("daemon did not exit within the bound") from None

    def stop(self, signum: int = SIGTERM) -> int:
        """Signal the daemon (if still running) and wait for its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.wait()


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def wait_for_file(path: Path) -> dict[str, Any]:
    """Wait (bounded) for a JSON marker file a fixture tool writes in its ``finally``."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text()
            if text:
                return json.loads(text)  # type: ignore[no-any-return]
        time.sleep(0.01)
    raise AssertionError(f"{path} was not written within {WAIT}s")


def daemon_config(path: Path, markers: Path, extra: str = "") -> Path:
    text = f"""
[server]
listen = ["127.0.0.1:0"]
sse_keepalive_seconds = 0.5
shutdown_grace_seconds = 2
max_body_bytes = 65536
# Disconnect cancels at once here; tests of resumption start daemons with a window.
resume_window_seconds = 0

[tools]
page_size = 4

[plugin.fixture]
marker_dir = "{markers}"
{extra}
"""
    return write_config(path, text)


def tool_calls_served(daemon: Daemon) -> list[dict[str, Any]]:
    """The audit events of the tool calls ``daemon`` answered with a result (``ok``)."""
    return [
        event
        for event in daemon.events("audit")
        if event.get("method") == "tools/call" and event.get("outcome") == "ok"
    ]


def calls_served(daemons: Sequence[Daemon], total: int) -> list[int]:
    """Per daemon, how many tool calls it answered ``ok``, once together they make ``total``
    (or what they make after ``WAIT``). A daemon logs a call's audit event before it answers,
    but the line reaches the test through a reader thread, a moment after the answer reached
    the client: counting at once can miss the last one."""
    deadline = time.monotonic() + WAIT
    while True:
        counts = [len(tool_calls_served(daemon)) for daemon in daemons]
        if sum(counts) >= total or time.monotonic() >= deadline:
            return counts
        time.sleep(0.01)
