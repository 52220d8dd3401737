"""Layered config with a real daemon: drop-ins picked up by SIGHUP, secrets that never log.

The daemon runs as systemd would start it: ``$CONFIGURATION_DIRECTORY`` names the system
directory (here a tmp dir, never /etc/mcpd), ``$CREDENTIALS_DIRECTORY`` holds a credential,
and ``--config`` adds the test's base config on top.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.client import Legacy
from support.daemon import WAIT, Daemon, daemon_config

SECRET = "e2e-s3cr3t-71c0"


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    """The system config directory, with an empty drop-in directory and no mcpd.toml yet."""
    directory = tmp_path / "etc"
    (directory / "mcpd.toml.d").mkdir(parents=True)
    return directory


@pytest.fixture
def env(tmp_path: Path, etc: Path) -> dict[str, str]:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "api-token").write_text(f"{SECRET}-cred\n")
    (tmp_path / "token").write_text(f"{SECRET}-file\n")
    return {
        "CONFIGURATION_DIRECTORY": str(etc),
        "CREDENTIALS_DIRECTORY": str(credentials),
        "MCPD_TEST_SECRET": f"{SECRET}-env",
    }


def _secrets(tmp_path: Path) -> str:
    return f"""
[plugin.fixture]
from_env = {{ "$env" = "MCPD_TEST_SECRET" }}
from_credential = {{ "$credential" = "api-token" }}
from_file = {{ "$file" = "{tmp_path / "token"}" }}
"""


def test_sighup_applies_a_new_drop_in_and_secrets_never_log(
    tmp_path: Path,
    etc: Path,
    env: dict[str, str],
    markers: Path,
    plugin_site: Path,
    http: httpx.Client,
) -> None:
    (etc / "mcpd.toml").write_text(_secrets(tmp_path))
    config = daemon_config(tmp_path / "local.toml", markers, extra='[logging]\nformat = "json"\n')
    daemon = Daemon.start(config, pythonpath=plugin_site, env=env)
    try:
        client = Legacy(http, daemon.url).initialize()
        echoed = client.call("settings_echo")["structuredContent"]
        assert echoed["from_env"] == f"{SECRET}-env"  # the plugin gets the resolved strings
        assert echoed["from_credential"] == f"{SECRET}-cred"
        assert echoed["from_file"] == f"{SECRET}-file"
        assert echoed["marker_dir"] == str(markers)  # the --config layer merged in
        assert "slow" in client.tool_names()

        (etc / "mcpd.toml.d" / "50-off.toml").write_text('[plugins]\ndisable = ["fixture"]\n')
        daemon.signal(signal.SIGHUP)
        reloaded = daemon.wait_for("daemon.reloaded")
        assert str(etc / "mcpd.toml.d" / "50-off.toml") in reloaded["source"]
        assert "slow" not in client.tool_names()
    finally:
        assert daemon.stop() == 0
    assert daemon.logs  # JSON lines were read
    assert SECRET not in "".join(daemon.raw)


def test_a_drop_in_with_a_missing_secret_fails_the_reload_not_the_daemon(
    tmp_path: Path,
    etc: Path,
    env: dict[str, str],
    markers: Path,
    plugin_site: Path,
    http: httpx.Client,
) -> None:
    config = daemon_config(tmp_path / "local.toml", markers)
    daemon = Daemon.start(config, pythonpath=plugin_site, env=env)
    try:
        client = Legacy(http, daemon.url).initialize()
        drop_in = etc / "mcpd.toml.d" / "60-secret.toml"
        drop_in.write_text('[plugin.fixture]\ntoken = { "$env" = "MCPD_NOT_SET" }\n')
        daemon.signal(signal.SIGHUP)
        failed = daemon.wait_for("daemon.reload_failed")
        assert failed["error"].startswith(f"{drop_in}: plugin.fixture.token: $env 'MCPD_NOT_SET'")
        assert client.call("echo", {"text": "still"})["content"][0]["text"] == "still"
    finally:
        assert daemon.stop() == 0


def test_start_with_a_bad_drop_in_exits_2_naming_it(
    tmp_path: Path, etc: Path, env: dict[str, str], markers: Path
) -> None:
    drop_in = etc / "mcpd.toml.d" / "10-typo.toml"
    drop_in.write_text("[server]\nlistne = []\n")
    config = daemon_config(tmp_path / "local.toml", markers)
    result = subprocess.run(
        [sys.executable, "-m", "mcpd", "serve", "--config", str(config)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"mcpd: {drop_in}: server.listne: unknown key (did you mean 'listen'?)"
    )
