"""The mcpd command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcpd._version import __version__


def mcpd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpd", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_version() -> None:
    result = mcpd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mcpd {__version__}"


def test_config_check(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[tools]\npage_size = 5\n")
    result = mcpd("config", "check", "--config", str(good))
    assert result.returncode == 0
    assert result.stdout.strip() == f"OK: {good}"


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nlisten = 5\n")
    for command in (("config", "check"), ("serve",), ("tools", "list")):
        result = mcpd(*command, "--config", str(bad))
        assert result.returncode == 2
        assert result.stderr.strip().startswith(f"mcpd: {bad}: server.listen:")
        assert "Traceback" not in result.stderr


def test_bad_listen_flag() -> None:
    result = mcpd("serve", "--listen", "nowhere")
    assert result.returncode == 2
    assert "nowhere" in result.stderr


def test_tools_and_plugins_list(tmp_path: Path) -> None:
    listed = mcpd("tools", "list", "--json")
    assert listed.returncode == 0
    tools = json.loads(listed.stdout)
    names = [tool["name"] for tool in tools]
    assert names == sorted(names)
    assert "countdown" in names  # the example plugin is installed by the test command
    plugins = json.loads(mcpd("plugins", "list", "--json").stdout)
    example = next(p for p in plugins if p["name"] == "example")
    assert example["state"] == "loaded"
    assert example["distribution"] == "mcpd-example"
    table = mcpd("plugins", "list").stdout
    assert table.splitlines()[0].split() == [
        "PLUGIN",
        "DISTRIBUTION",
        "VERSION",
        "STATE",
        "TOOLS",
        "ERROR",
    ]


def test_disabled_plugin_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "mcpd.toml"
    config.write_text('[plugins]\ndisable = ["example"]\n')
    plugins = json.loads(mcpd("plugins", "list", "--json", "--config", str(config)).stdout)
    assert next(p for p in plugins if p["name"] == "example")["state"] == "disabled"
    tools = json.loads(mcpd("tools", "list", "--json", "--config", str(config)).stdout)
    assert "countdown" not in [tool["name"] for tool in tools]
