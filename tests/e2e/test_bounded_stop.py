"""A stop is bounded whatever plugin code does: calls that will not stop after being
cancelled are given up on (their clients get the terminal -32000 error) and the daemon exits
with status 3 within the deadline it reports; if the event loop itself is blocked during the
stop, a watchdog thread ends the process (status 4) at that deadline.

Durations are not asserted against the wall clock: the daemon reports its own deadline and how
long the stop took, and the test checks one against the other.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import Legacy, messages_of, parse_sse
from support.daemon import Daemon, daemon_config, wait_for_file
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "plugins"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("stop-site")
    install_plugins(site, FIXTURES / "mcpd-fixture-tools", FIXTURES / "mcpd-fixture-hostile")
    return site


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def daemon(site: Path, markers: Path, tmp_path: Path) -> Iterator[Daemon]:
    extra = f'[plugin.hostile]\nmarker_dir = "{markers}"\n'
    config = daemon_config(tmp_path / "mcpd.toml", markers, extra)
    text = config.read_text().replace("shutdown_grace_seconds = 2", "shutdown_grace_seconds = 0.2")
    config.write_text(text.replace("[server]\n", "[server]\nstop_timeout_seconds = 1\n", 1))
    running = Daemon.start(config, pythonpath=site)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": "stuck",
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": {"progressToken": "p"}},
    }


def _stopped_within_deadline(daemon: Daemon) -> dict[str, Any]:
    draining = daemon.wait_for("daemon.draining")
    stopped = daemon.wait_for("daemon.stopped")
    assert stopped["deadline_seconds"] == draining["deadline_seconds"]
    assert stopped["elapsed_seconds"] <= stopped["deadline_seconds"]
    return stopped


def test_a_hanging_finally_is_abandoned_and_its_client_answered(
    daemon: Daemon, markers: Path
) -> None:
    tag = f"hang-{uuid.uuid4().hex[:6]}"
    with httpx.Client(timeout=30) as http:
        client = Legacy(http, daemon.url).initialize()
        body = _call("hang_in_finally", {"tag": tag})
        with http.stream("POST", daemon.url, json=body, headers=client.headers()) as response:
            lines = response.iter_lines()
            for line in lines:
                if "notifications/progress" in line:
                    break
            daemon.signal()
            rest = "\n".join(lines)
    final = parse_sse(rest)[-1]
    assert final["id"] == "stuck"
    assert final["error"]["code"] == -32000
    assert wait_for_file(markers / f"{tag}.json")["outcome"] == "hanging"
    assert daemon.wait() == 3
    (abandoned,) = daemon.events("daemon.abandoned")
    assert [call["tool"] for call in abandoned["calls"]] == ["hang_in_finally"]
    assert _stopped_within_deadline(daemon)["exit_status"] == 3


def test_a_sync_tool_that_never_checks_is_abandoned(daemon: Daemon, markers: Path) -> None:
    tag = f"stubborn-{uuid.uuid4().hex[:6]}"
    answers: list[httpx.Response] = []
    with httpx.Client(timeout=30) as http:
        client = Legacy(http, daemon.url).initialize()
        body = _call("ignore_cancellation", {"tag": tag})
        caller = threading.Thread(target=lambda: answers.append(client.post(body)))
        caller.start()
        assert wait_for_file(markers / f"{tag}.json")["outcome"] == "started"
        daemon.signal()
        caller.join(timeout=30)
    (answer,) = answers
    assert messages_of(answer)[-1]["error"]["code"] == -32000
    assert daemon.wait() == 3
    assert _stopped_within_deadline(daemon)["abandoned"] == 1


def test_a_loop_blocked_during_the_stop_is_ended_at_the_deadline(
    daemon: Daemon, markers: Path
) -> None:
    tag = f"blocker-{uuid.uuid4().hex[:6]}"
    with httpx.Client(timeout=30) as http:
        client = Legacy(http, daemon.url).initialize()
        # Blocks the loop for longer than the whole stop may take (0.2 + 1 + 10 s).
        body = _call("block_loop_in_finally", {"tag": tag, "seconds": 20})
        with http.stream("POST", daemon.url, json=body, headers=client.headers()) as response:
            lines = response.iter_lines()  # kept: dropping the iterator closes the connection
            for line in lines:
                if "notifications/progress" in line:
                    break
            daemon.signal()
            assert wait_for_file(markers / f"{tag}.json")["outcome"] == "blocking"
    assert daemon.wait() == 4
    forced = daemon.wait_for("daemon.exit_forced")
    assert forced["deadline_seconds"] == daemon.wait_for("daemon.draining")["deadline_seconds"]
    assert not daemon.events("daemon.stopped")


def test_a_stop_without_stragglers_exits_zero(daemon: Daemon) -> None:
    with httpx.Client(timeout=30) as http:
        assert Legacy(http, daemon.url).initialize().call("echo", {"text": "x"})
    assert daemon.stop() == 0
    stopped = _stopped_within_deadline(daemon)
    assert stopped["exit_status"] == 0
