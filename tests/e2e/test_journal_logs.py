"""The real daemon, its stderr on a (stand-in) journal stream: one ``<N>`` line per event.

systemd connects stderr to journald and sets ``JOURNAL_STREAM`` to that stream's device and
inode. Here stderr is a file and ``JOURNAL_STREAM`` names that file, which is exactly what
the daemon can observe under systemd.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from signal import SIGTERM

import httpx
import pytest
from support.client import Legacy
from support.daemon import WAIT, daemon_config

ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
PRIORITY = re.compile(r"<[0-7]>\S")
LISTENING = re.compile(r"^<6>\S+: daemon\.listening .*?binds=(\[[^\]]*\])", re.MULTILINE)


@pytest.fixture
def journal_daemon(
    tmp_path: Path, plugin_site: Path, markers: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    config = daemon_config(tmp_path / "mcpd.toml", markers)
    log = tmp_path / "journal"
    log.touch()
    status = log.stat()
    env = {
        **os.environ,
        "JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(plugin_site), os.environ.get("PYTHONPATH")])
        ),
    }
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcpd", "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    try:
        yield process, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for_url(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_text())
        if found:
            return f"{json.loads(found.group(1))[0]}/mcp"
        assert process.poll() is None, f"daemon exited:\n{log.read_text()}"
        time.sleep(0.02)
    raise AssertionError(f"daemon did not log daemon.listening:\n{log.read_text()}")


def test_daemon_logs_journal_lines_one_per_event(
    journal_daemon: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, log = journal_daemon
    url = wait_for_url(process, log)
    with httpx.Client(timeout=30) as http:
        client = Legacy(http, url).initialize()
        assert client.call("crash")["isError"] is True
    process.send_signal(SIGTERM)
    assert process.wait(timeout=WAIT) == 0

    lines = log.read_text().splitlines()
    assert lines, "the daemon logged nothing"
    for line in lines:
        assert PRIORITY.match(line), line
        assert not ISO_TIME.search(line), line
    (crashed,) = [line for line in lines if " tool.crashed " in line]
    assert crashed.startswith("<3>")
    # Type, place and stack, one line; the exception's text (which may quote arguments and
    # secrets) only with [logging] log_arguments = true.
    assert "error_type=RuntimeError" in crashed
    assert "mcpd_fixture_tools.py:" in crashed
    assert "distribution=mcpd-fixture-tools" in crashed
    assert "internal details" not in crashed
    # hypercorn's own records (standard-library logging) take the same format.
    assert any(line.startswith("<6>hypercorn.error: Running on http://") for line in lines)
    assert any(line.startswith("<6>mcpd.daemon: daemon.stopped exit_status=0") for line in lines)
