"""``mcpd install CLIENT`` run as a real command against a temporary HOME and project.

Each test reads back the client's file as the client would: other entries and keys kept,
the file's indentation kept, the entry in the client's documented shape and place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcpd.install_clients import CLIENTS, PLACEHOLDER, Server

URL = "http://127.0.0.1:8765/mcp"


class Home:
    """A temporary HOME (and XDG_CONFIG_HOME under it) with a project directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = root / "work" / "project"
        self.project.mkdir(parents=True)
        self.env = {
            **os.environ,
            "HOME": str(root),
            "XDG_CONFIG_HOME": str(root / ".config"),
            "CONFIGURATION_DIRECTORY": str(root / "etc"),  # no system config here
        }

    def mcpd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mcpd", "install", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.project,
            check=False,
            timeout=60,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.mcpd(*args)
        assert result.returncode == 0, result.stderr
        return result

    def config(self, text: str) -> Path:
        path = self.root / "mcpd.toml"
        path.write_text(text)
        return path


def read(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path)


def test_claude_code_user_scope_merges_into_its_state_file(home: Home) -> None:
    state = home.root / ".claude.json"
    state.write_text(
        json.dumps(
            {"numStartups": 7, "mcpServers": {"other": {"type": "stdio", "command": "x"}}},
            indent=4,
        )
    )
    result = home.ok("claude-code")
    assert result.stdout.splitlines()[0] == (
        f"added 'mcpd' ({URL}) in {state} (Claude Code, user scope)"
    )
    document = read(state)
    assert document["numStartups"] == 7
    assert document["mcpServers"] == {
        "other": {"type": "stdio", "command": "x"},
        "mcpd": {"type": "http", "url": URL},
    }
    assert '\n    "mcpServers"' in state.read_text()  # the file's own four-space indent


def test_claude_code_project_and_local_scopes(home: Home) -> None:
    home.ok("claude-code", "--scope", "project")
    assert read(home.project / ".mcp.json") == {
        "mcpServers": {"mcpd": {"type": "http", "url": URL}}
    }
    home.ok("claude-code", "--scope", "local", "--project", str(home.project))
    state = read(home.root / ".claude.json")
    assert state == {
        "projects": {str(home.project): {"mcpServers": {"mcpd": {"type": "http", "url": URL}}}}
    }


def test_claude_desktop_gets_the_stdio_bridge(home: Home) -> None:
    home.ok("claude-desktop")
    config = home.root / ".config" / "Claude" / "claude_desktop_config.json"
    assert read(config) == {
        "mcpServers": {
            "mcpd": {
                "command": "npx",
                "args": ["-y", "mcp-remote", URL, "--transport", "http-only"],
            }
        }
    }
    assert oct(config.stat().st_mode & 0o777) == "0o600"  # it may soon hold a key


def test_cursor_user_and_project(home: Home) -> None:
    home.ok("cursor")
    assert read(home.root / ".cursor" / "mcp.json") == {"mcpServers": {"mcpd": {"url": URL}}}
    home.ok("cursor", "--scope", "project")  # --project defaults to the working directory
    assert read(home.project / ".cursor" / "mcp.json") == {"mcpServers": {"mcpd": {"url": URL}}}


def test_vscode_user_and_project_keep_inputs(home: Home) -> None:
    home.ok("vscode")
    user = home.root / ".config" / "Code" / "User" / "mcp.json"
    assert read(user) == {"servers": {"mcpd": {"type": "http", "url": URL}}}
    workspace = home.project / ".vscode" / "mcp.json"
    workspace.parent.mkdir()
    inputs = [{"type": "promptString", "id": "token", "description": "a token", "password": True}]
    workspace.write_text(json.dumps({"inputs": inputs, "servers": {}}, indent="\t"))
    home.ok("vscode", "--scope", "project")
    assert read(workspace) == {
        "inputs": inputs,
        "servers": {"mcpd": {"type": "http", "url": URL}},
    }
    assert workspace.read_text().startswith('{\n\t"inputs"')  # tabs stay tabs


def test_the_url_comes_from_the_effective_config(home: Home) -> None:
    config = home.config(
        '[server]\nlisten = ["unix:/run/m.sock", "0.0.0.0:9100"]\npath = "/x"\n'
        "[auth]\nallow_anonymous_remote = true\n"
    )
    home.ok("cursor", "--config", str(config))
    url = "http://127.0.0.1:9100/x"  # a wildcard listener is reached on loopback from here
    assert read(home.root / ".cursor" / "mcp.json") == {"mcpServers": {"mcpd": {"url": url}}}
    six = home.config('[server]\nlisten = ["[::1]:9200"]\n')
    home.ok("claude-desktop", "--config", str(six))
    desktop = read(home.root / ".config" / "Claude" / "claude_desktop_config.json")
    args = desktop["mcpServers"]["mcpd"]["args"]
    assert args[2:] == ["http://[::1]:9200/mcp", "--transport", "http-only", "--allow-http"]


def test_an_entry_of_the_same_name_is_kept_unless_forced(home: Home) -> None:
    target = home.root / ".cursor" / "mcp.json"
    home.ok("cursor", "--url", "http://127.0.0.1:1/mcp")
    before = target.read_bytes()
    refused = home.mcpd("cursor")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"mcpd: {target}: mcpServers.mcpd already exists and differs; pass --force to "
        "replace it, or --name to add this one beside it"
    )
    assert target.read_bytes() == before
    again = home.ok("cursor", "--url", "http://127.0.0.1:1/mcp")
    assert again.stdout.strip() == f"{target} already has this entry for 'mcpd'; nothing to do"
    home.ok("cursor", "--name", "mcpd-2")
    forced = home.ok("cursor", "--force")
    assert forced.stdout.startswith(f"replaced 'mcpd' ({URL}) in {target}")
    assert read(target)["mcpServers"] == {"mcpd": {"url": URL}, "mcpd-2": {"url": URL}}


def test_dry_run_shows_the_change_and_writes_nothing(home: Home) -> None:
    target = home.project / ".mcp.json"
    result = home.ok("claude-code", "--scope", "project", "--dry-run")
    assert not target.exists()
    assert result.stdout.splitlines()[:2] == ["--- /dev/null", f"+++ {target}"]
    assert f'+      "url": "{URL}"' in result.stdout.splitlines()
    assert result.stderr.strip() == "mcpd: dry run, nothing written"


def test_a_file_with_comments_is_refused_untouched(home: Home) -> None:
    target = home.project / ".vscode" / "mcp.json"
    target.parent.mkdir()
    target.write_text('{\n  // mine\n  "servers": {}\n}\n')
    result = home.mcpd("vscode", "--scope", "project")
    assert result.returncode == 2
    assert result.stderr.startswith(f"mcpd: {target}: not plain JSON (")
    assert "add the entry by hand (mcpd install --print shows it)" in result.stderr
    assert target.read_text() == '{\n  // mine\n  "servers": {}\n}\n'


def test_print_writes_nothing(home: Home) -> None:
    generic = home.ok("--print")
    assert json.loads(generic.stdout) == {"mcpServers": {"mcpd": {"type": "http", "url": URL}}}
    vscode = home.ok("vscode", "--print")
    assert json.loads(vscode.stdout) == {"servers": {"mcpd": {"type": "http", "url": URL}}}
    assert vscode.stderr.strip() == (
        f"mcpd: this goes into {home.root / '.config' / 'Code' / 'User' / 'mcp.json'}"
    )
    assert list(home.root.iterdir()) == [home.root / "work"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "name a client (claude-code, claude-desktop, cursor, vscode) or pass --print"),
        (("claude-desktop", "--scope", "project"), "Claude Desktop has no project scope"),
        (("cursor", "--scope", "local"), "Cursor has no local scope; use one of: user, project"),
    ],
)
def test_refusals_are_one_line(home: Home, args: tuple[str, ...], message: str) -> None:
    result = home.mcpd(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"mcpd: {message}")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ('["127.0.0.1:0"]', "server.listen: '127.0.0.1:0' gets a new port at every start"),
        ('["unix:/run/mcpd.sock"]', "server.listen: only unix sockets"),
    ],
)
def test_a_config_no_client_can_reach(home: Home, listen: str, message: str) -> None:
    config = home.config(f"[server]\nlisten = {listen}\n")
    result = home.mcpd("claude-code", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"mcpd: {message}")
    assert home.ok("claude-code", "--config", str(config), "--url", URL).stdout  # the way out


def test_entries_carry_the_key_placeholder_when_auth_is_on() -> None:
    server = Server("mcpd", "https://mcp.example.org/mcp", auth=True)
    header = {"Authorization": PLACEHOLDER}
    assert PLACEHOLDER == "Bearer <your key>"
    assert CLIENTS["claude-code"].entry(server)["headers"] == header
    assert CLIENTS["cursor"].entry(server)["headers"] == header
    assert CLIENTS["vscode"].entry(server)["headers"] == header
    desktop = CLIENTS["claude-desktop"].entry(server)
    assert desktop["args"][-2:] == ["--header", "Authorization:${MCPD_AUTHORIZATION}"]
    assert desktop["env"] == {"MCPD_AUTHORIZATION": PLACEHOLDER}
    assert "--allow-http" not in desktop["args"]  # https
    plain = Server("mcpd", URL, auth=False)
    assert "headers" not in CLIENTS["vscode"].entry(plain)


@pytest.mark.parametrize(
    ("client", "platform", "environ", "expected"),
    [
        ("claude-desktop", "darwin", {"HOME": "/Users/a"},
         "/Users/a/Library/Application Support/Claude/claude_desktop_config.json"),
        ("claude-desktop", "win32", {"HOME": "/h", "APPDATA": "/h/AppData/Roaming"},
         "/h/AppData/Roaming/Claude/claude_desktop_config.json"),
        ("claude-desktop", "linux", {"HOME": "/home/a"},
         "/home/a/.config/Claude/claude_desktop_config.json"),
        ("vscode", "darwin", {"HOME": "/Users/a"},
         "/Users/a/Library/Application Support/Code/User/mcp.json"),
        ("vscode", "win32", {"HOME": "/h", "APPDATA": "/h/AppData/Roaming"},
         "/h/AppData/Roaming/Code/User/mcp.json"),
        ("vscode", "linux", {"HOME": "/home/a", "XDG_CONFIG_HOME": "/xdg"},
         "/xdg/Code/User/mcp.json"),
        ("cursor", "win32", {"HOME": "/h"}, "/h/.cursor/mcp.json"),
        ("claude-code", "darwin", {"HOME": "/Users/a"}, "/Users/a/.claude.json"),
    ],
)  # fmt: skip
def test_user_config_paths_per_platform(
    client: str, platform: str, environ: dict[str, str], expected: str
) -> None:
    where = CLIENTS[client].locate("user", Path("/p"), environ, platform)
    assert where.file == Path(expected)


def test_file_overrides_where_the_entry_goes(home: Home) -> None:
    insiders = home.root / ".config" / "Code - Insiders" / "User" / "mcp.json"
    home.ok("vscode", "--file", str(insiders))
    assert read(insiders) == {"servers": {"mcpd": {"type": "http", "url": URL}}}
    assert not (home.root / ".config" / "Code").exists()
