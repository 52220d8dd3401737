"""``mcpd install CLIENT``: this daemon's server entry, written into an MCP client's config.

Each client's documented file and format (``--scope user`` unless told otherwise):

- ``claude-code``: ``~/.claude.json`` (user; ``local``: under ``projects.<dir>``) or
  ``<dir>/.mcp.json`` (project); table ``mcpServers``; ``{"type": "http", "url", "headers"}``.
- ``claude-desktop``: ``claude_desktop_config.json`` in the app's config directory; table
  ``mcpServers``. The app starts stdio servers only, so the entry runs the bridge
  ``npx -y mcp-remote URL``.
- ``cursor``: ``~/.cursor/mcp.json`` or ``<dir>/.cursor/mcp.json``; table ``mcpServers``;
  ``{"url", "headers"}``.
- ``vscode``: ``mcp.json`` in the user profile or ``<dir>/.vscode/mcp.json``; table
  ``servers``; ``{"type": "http", "url", "headers"}``.

The URL comes from the effective config (the first TCP listener and ``[server] path``). When
callers must authenticate (``mcpd.checks.auth_enabled``) the entry carries an
``Authorization: Bearer <your key>`` placeholder for the user to fill in. The merge itself
(other entries kept, a same-named one refused without ``--force``, dry runs) is
``mcpd.client_config``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mcpd.checks import auth_enabled
from mcpd.client_config import Plan, plan, write
from mcpd.config import Settings
from mcpd.startup import StartupError

KEY_PLACEHOLDER: Final = "<your key>"
PLACEHOLDER: Final = f"Bearer {KEY_PLACEHOLDER}"
SCOPES: Final = ("user", "project", "local")
# mcp-remote accepts plain http only for these hosts unless told --allow-http.
_HTTP_OK_FOR_MCP_REMOTE: Final = ("localhost", "127.0.0.1")


@dataclass(frozen=True, slots=True)
class Server:
    """What a client needs to reach this daemon."""

    name: str
    url: str
    auth: bool

    @property
    def headers(self) -> dict[str, dict[str, str]]:
        """``{"headers": {...}}`` when callers must authenticate, else nothing."""
        return {"headers": {"Authorization": PLACEHOLDER}} if self.auth else {}


@dataclass(frozen=True, slots=True)
class Where:
    """A config file and the keys leading to its table of servers."""

    file: Path
    table: tuple[str, ...]


Locate = Callable[[str, Path, Mapping[str, str], str], Where]  # scope, project, environ, platform


@dataclass(frozen=True, slots=True)
class Client:
    title: str
    scopes: tuple[str, ...]
    locate: Locate
    entry: Callable[[Server], dict[str, Any]]
    next_step: str


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ["HOME"]) if environ.get("HOME") else Path.home()


def _app_config(environ: Mapping[str, str], platform: str) -> Path:
    """Where desktop apps keep their settings: what Electron calls ``appData``."""
    if platform == "darwin":
        return _home(environ) / "Library" / "Application Support"
    if platform == "win32":
        return Path(environ.get("APPDATA") or _home(environ) / "AppData" / "Roaming")
    return Path(environ.get("XDG_CONFIG_HOME") or _home(environ) / ".config")


def _claude_code(scope: str, project: Path, environ: Mapping[str, str], platform: str) -> Where:
    if scope == "project":
        return Where(project / ".mcp.json", ("mcpServers",))
    state = _home(environ) / ".claude.json"
    if scope == "local":  # this project only, kept out of the project's files
        return Where(state, ("projects", str(project), "mcpServers"))
    return Where(state, ("mcpServers",))


def _claude_desktop(scope: str, project: Path, environ: Mapping[str, str], platform: str) -> Where:
    folder = _app_config(environ, platform) / "Claude"
    return Where(folder / "claude_desktop_config.json", ("mcpServers",))


def _cursor(scope: str, project: Path, environ: Mapping[str, str], platform: str) -> Where:
    base = project if scope == "project" else _home(environ)
    return Where(base / ".cursor" / "mcp.json", ("mcpServers",))


def _vscode(scope: str, project: Path, environ: Mapping[str, str], platform: str) -> Where:
    if scope == "project":
        return Where(project / ".vscode" / "mcp.json", ("servers",))
    return Where(_app_config(environ, platform) / "Code" / "User" / "mcp.json", ("servers",))


def _http_entry(server: Server) -> dict[str, Any]:
    return {"type": "http", "url": server.url, **server.headers}


def _url_entry(server: Server) -> dict[str, Any]:
    return {"url": server.url, **server.headers}


def _bridge_entry(server: Server) -> dict[str, Any]:
    """Claude Desktop starts local stdio servers only: mcp-remote bridges to the URL."""
    args = ["-y", "mcp-remote", server.url, "--transport", "http-only"]
    scheme, _, rest = server.url.partition("://")
    host = rest.split("/")[0].rpartition(":")[0] or rest.split("/")[0]
    if scheme == "http" and host not in _HTTP_OK_FOR_MCP_REMOTE:
        args.append("--allow-http")
    if not server.auth:
        return {"command": "npx", "args": args}
    # No space inside an argument: some clients split arguments on spaces (mcp-remote's note).
    args += ["--header", "Authorization:${MCPD_AUTHORIZATION}"]
    return {"command": "npx", "args": args, "env": {"MCPD_AUTHORIZATION": PLACEHOLDER}}


CLIENTS: Final[dict[str, Client]] = {
    "claude-code": Client(
        "Claude Code",
        SCOPES,
        _claude_code,
        _http_entry,
        "`claude mcp list` shows it; restart running Claude Code sessions",
    ),
    "claude-desktop": Client(
        "Claude Desktop",
        ("user",),
        _claude_desktop,
        _bridge_entry,
        "restart Claude Desktop; it starts the bridge with npx (Node.js 18 or newer)",
    ),
    "cursor": Client(
        "Cursor",
        ("user", "project"),
        _cursor,
        _url_entry,
        "Cursor lists it under its MCP settings; switch it on there",
    ),
    "vscode": Client(
        "VS Code",
        ("user", "project"),
        _vscode,
        _http_entry,
        "start it from VS Code's MCP servers list (command: MCP: List Servers)",
    ),
}


def server_url(settings: Settings) -> str:
    """The URL of the first TCP listener, as a client on this host reaches it."""
    scheme = "https" if getattr(settings.server, "tls_certificate", "") else "http"
    for address in settings.server.listen:
        if address.startswith("unix:"):
            continue
        host, _, port = address.rpartition(":")
        if port == "0":
            raise StartupError(
                f"server.listen: {address!r} gets a new port at every start, so no client "
                "entry can name it; listen on a fixed port, or pass --url"
            )
        host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
        return f"{scheme}://{host}:{port}{settings.server.path}"
    raise StartupError(
        "server.listen: only unix sockets, which these clients cannot reach; add a TCP "
        "listener such as 127.0.0.1:8765, or pass --url"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mcpd install`` (``--config`` is added by the caller)."""
    parser.add_argument("client", nargs="?", choices=sorted(CLIENTS), metavar="CLIENT")
    parser.add_argument("--print", action="store_true", help="print the entry, write nothing")
    parser.add_argument("--dry-run", action="store_true", help="show the change, write nothing")
    parser.add_argument("--force", action="store_true", help="replace an entry of the same name")
    parser.add_argument("--scope", choices=SCOPES, default="user", help="default: user")
    parser.add_argument(
        "--project", type=Path, default=Path(), metavar="DIR", help="for --scope project/local"
    )
    parser.add_argument("--name", default="mcpd", help="the entry's name (default: mcpd)")
    parser.add_argument("--url", help="the URL clients use (default: from the config)")
    parser.add_argument("--file", type=Path, metavar="PATH", help="write this file instead")


def install(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    """Run ``mcpd install``; a refusal raises ``StartupError`` (one line, exit 2)."""
    server = Server(args.name, args.url or server_url(settings), auth_enabled(settings))
    if args.client is None:
        if not args.print:
            raise StartupError(f"name a client ({', '.join(CLIENTS)}) or pass --print")
        print(json.dumps({"mcpServers": {server.name: _http_entry(server)}}, indent=2))
        return 0
    client = CLIENTS[args.client]
    if args.scope not in client.scopes:
        raise StartupError(
            f"{client.title} has no {args.scope} scope; use one of: {', '.join(client.scopes)}"
        )
    where = client.locate(args.scope, args.project.resolve(), environ, sys.platform)
    file = args.file.resolve() if args.file else where.file
    entry = client.entry(server)
    if args.print:
        print(json.dumps(_nested(where.table, {server.name: entry}), indent=2))
        print(f"mcpd: this goes into {file}", file=sys.stderr)
        return 0
    _apply(args, client, server, plan(file, where.table, server.name, entry, force=args.force))
    return 0


def _apply(args: argparse.Namespace, client: Client, server: Server, change: Plan) -> None:
    if change.outcome == "unchanged":
        print(f"{change.path} already has this entry for {server.name!r}; nothing to do")
        return
    if args.dry_run:
        print(change.diff(), end="")
        print("mcpd: dry run, nothing written", file=sys.stderr)
        return
    write(change)
    scope = f"{args.scope} scope" if len(client.scopes) > 1 else "user config"
    what = f"{change.outcome} {server.name!r} ({server.url})"
    print(f"{what} in {change.path} ({client.title}, {scope})")
    if server.auth:
        print(f"then: replace {KEY_PLACEHOLDER} in {change.path} with your API key")
    print(f"next: {client.next_step}")


def _nested(keys: tuple[str, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    for key in reversed(keys):
        leaf = {key: leaf}
    return leaf
