"""2026-07-28 input rounds across restarts: the ``requestState`` key is made once into the state
directory, so a state handed out by one daemon opens in the next; used once, it stays used;
``mcpd state rotate-key`` and a reload replace the key while states sealed with the old one
still open (for ``input_timeout_seconds``)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import messages_of
from support.daemon import Daemon
from support.eras import ALL_CAPABILITIES, headers_for, modern_body
from support.restarts import free_port, restart_config

ASK_NAME = {"name": "ask_name", "arguments": {}}
ACCEPT = {"q0": {"action": "accept", "content": {"name": "Ada"}}}


class Modern:
    def __init__(self, http: httpx.Client, url: str) -> None:
        self.http, self.url, self.ids = http, url, 0

    def send(self, params: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        body = modern_body("tools/call", params, request_id=self.ids, capabilities=ALL_CAPABILITIES)
        return messages_of(self.http.post(self.url, json=body, headers=headers_for(body)))[-1]

    def state(self) -> str:
        """A fresh ``requestState``: ask_name's first round."""
        result = self.send(ASK_NAME)["result"]
        assert result["resultType"] == "input_required"
        token: str = result["requestState"]
        return token

    def answer(self, token: str) -> dict[str, Any]:
        """The retry carrying ``token`` and the answer."""
        return self.send({**ASK_NAME, "requestState": token, "inputResponses": ACCEPT})


def completed(message: dict[str, Any]) -> bool:
    result = message.get("result", {})
    return result.get("resultType") == "complete" and result["content"][0]["text"] == "accept:Ada"


def refused(message: dict[str, Any], why: str) -> bool:
    error = message.get("error", {})
    return error.get("code") == -32602 and why in error.get("message", "")


@pytest.fixture
def config(tmp_path: Path, markers: Path) -> Path:
    return restart_config(
        tmp_path / "mcpd.toml", markers, port=free_port(), state_dir=tmp_path / "state"
    )


def mcpd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpd", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_request_state_opens_after_a_restart_once(
    config: Path, plugin_site: Path, http: httpx.Client
) -> None:
    first = Daemon.start(config, pythonpath=plugin_site)
    modern = Modern(http, first.url)
    handed_out, used = modern.state(), modern.state()
    assert completed(modern.answer(used))
    assert first.stop() == 0
    second = Daemon.start(config, pythonpath=plugin_site)
    try:
        assert second.wait_for("state.restored")["nonces"] == 1
        assert completed(modern.answer(handed_out))  # sealed by the last process: it opens
        assert refused(modern.answer(handed_out), "already used")
        assert refused(modern.answer(used), "already used")  # used before the restart
    finally:
        assert second.stop() == 0


def test_rotating_the_key_keeps_open_rounds_valid(
    config: Path, plugin_site: Path, http: httpx.Client
) -> None:
    daemon = Daemon.start(config, pythonpath=plugin_site)
    restarted: Daemon | None = None
    try:
        modern = Modern(http, daemon.url)
        before = [modern.state(), modern.state()]
        shown = json.loads(mcpd("state", "show", "--config", str(config), "--json").stdout)
        old_key = shown["keys"]["request_state"][0]["id"]

        rotated = mcpd("state", "rotate-key", "--config", str(config))
        assert rotated.returncode == 0, rotated.stderr
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_for("state.key_rotated")["previous_accepted"] == 1
        shown = json.loads(mcpd("state", "show", "--config", str(config), "--json").stdout)
        current, previous = shown["keys"]["request_state"]
        assert previous["id"] == old_key
        assert previous["retired"] is not None
        assert current["id"] != old_key
        assert current["id"] in rotated.stdout
        assert completed(modern.answer(before[0]))  # the old key still opens its states
        after = modern.state()  # sealed with the new key

        assert daemon.stop() == 0
        restarted = Daemon.start(config, pythonpath=plugin_site)
        assert completed(modern.answer(after))
        assert completed(modern.answer(before[1]))  # retired less than the timeout ago
    finally:
        assert daemon.stop() == 0
        if restarted is not None:
            assert restarted.stop() == 0


def test_the_state_cli_says_what_is_missing(tmp_path: Path) -> None:
    missing = mcpd("state", "show", "--state-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "no such directory" in missing.stderr
    configured = tmp_path / "keyed.toml"
    configured.write_text(f'[tools]\nrequest_state_key = "{"k" * 40}"\n')
    refused_rotation = mcpd(
        "state", "rotate-key", "--config", str(configured), "--state-dir", str(tmp_path)
    )
    assert refused_rotation.returncode == 2
    assert "request_state_key is configured" in refused_rotation.stderr
