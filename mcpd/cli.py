"""The ``mcpd`` command line: serve, inspect tools and plugins, check and show the config.

Every failure a user can fix ends the command with one line on stderr (``mcpd: ...``) and a
non-zero exit status; tracebacks are kept for mcpd's own bugs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from mcpd import cli_inspect, cli_state, install_clients
from mcpd._version import __version__
from mcpd.cli_inspect import EXIT_CONFIG
from mcpd.config import ConfigError, LoadedConfig, Settings, load_config
from mcpd.config_show import render_json, render_text
from mcpd.startup import StartupError

EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcpd", description="MCP server daemon.")
    parser.add_argument("--version", action="version", version=f"mcpd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _overrides(commands.add_parser("serve", help="run the daemon"))
    tools = commands.add_parser("tools", help="inspect tools").add_subparsers(
        dest="action", required=True
    )
    _listing(tools.add_parser("list", help="list the tools the plugins provide"))
    plugins = commands.add_parser("plugins", help="inspect plugins").add_subparsers(
        dest="action", required=True
    )
    _listing(plugins.add_parser("list", help="list installed plugins and their state"))
    config = commands.add_parser("config", help="configuration").add_subparsers(
        dest="action", required=True
    )
    _overrides(config.add_parser("check", help="validate what serve or a reload would load"))
    show = config.add_parser("show", help="print the effective config and each value's origin")
    _overrides(show)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    install = commands.add_parser(
        "install",
        help="add this daemon to an MCP client's config",
        description="Write this daemon's entry into CLIENT's MCP config (other entries are "
        "kept), or print an entry for any client with --print.",
    )
    _config_option(install)
    install_clients.add_arguments(install)
    _auth_commands(commands)
    _state_commands(commands)
    return parser


def _state_commands(commands: Any) -> None:
    state = commands.add_parser(
        "state", help="the state directory: sessions and keys kept across restarts"
    ).add_subparsers(dest="action", required=True)
    show = state.add_parser("show", help="where the state is, its keys (by id), a waiting file")
    rotate = state.add_parser(
        "rotate-key",
        help="a new 2026 requestState key; the old one still opens its states for "
        "input_timeout_seconds (a running daemon uses it after a reload)",
    )
    for parser in (show, rotate):
        _config_option(parser)
        parser.add_argument(
            "--state-dir",
            type=Path,
            metavar="DIR",
            help="the state directory (default: [server] state_dir, else $STATE_DIRECTORY)",
        )
    show.add_argument("--json", action="store_true", help="machine-readable output")


def _auth_commands(commands: Any) -> None:
    auth = commands.add_parser("auth", help="authentication").add_subparsers(
        dest="action", required=True
    )
    new_key = auth.add_parser(
        "new-key", help="make a random API key; print it once, and config lines with its hash"
    )
    new_key.add_argument("--principal", required=True, metavar="NAME", help="who uses the key")
    new_key.add_argument(
        "--scope", action="append", default=[], metavar="S", help="a scope it grants (repeatable)"
    )
    new_key.add_argument(
        "--expires", metavar="ISO-DATE", help="expiry: 2027-01-31 or 2027-01-31T12:00:00Z"
    )


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="config file read last, above /etc/mcpd/mcpd.toml and its mcpd.toml.d/ drop-ins",
    )


def _overrides(parser: argparse.ArgumentParser) -> None:
    """``--config`` and the flags that override single keys, as ``serve`` takes them."""
    _config_option(parser)
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="ADDR",
        help="HOST:PORT, [IPv6]:PORT or unix:PATH (repeatable; replaces server.listen)",
    )
    parser.add_argument("--log-level", metavar="LEVEL", help="replaces logging.level")
    parser.add_argument("--log-format", metavar="FORMAT", help="replaces logging.format")


def _listing(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "auth":
        return _new_key(args)  # needs no config: it prints lines to add to one
    load = _loader(args)
    try:
        loaded = load()
        if args.command == "serve":
            return _serve(loaded.settings, partial(_settings, load))
        return _command(args, loaded)
    except (ConfigError, StartupError) as exc:
        print(f"mcpd: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _command(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.command == "config":
        return _config(args.action, loaded, as_json=getattr(args, "json", False))
    if args.command == "install":
        return install_clients.install(args, loaded.settings, os.environ)
    if args.command == "tools":
        return cli_inspect.tools_list(loaded.settings, as_json=args.json)
    if args.command == "state":
        if args.action == "rotate-key":
            return cli_state.rotate_key(loaded.settings, args.state_dir)
        return cli_state.show(loaded.settings, args.state_dir, as_json=args.json)
    return cli_inspect.plugins_list(loaded.settings, as_json=args.json)


def _loader(args: argparse.Namespace) -> Callable[[], LoadedConfig]:
    """Load every layer with this command line's arguments; a reload calls it again."""
    return partial(
        load_config,
        args.config,
        listen=getattr(args, "listen", ()),
        log_level=getattr(args, "log_level", None),
        log_format=getattr(args, "log_format", None),
    )


def _new_key(args: argparse.Namespace) -> int:
    """``mcpd auth new-key``: the key on stdout once, then the ``[[auth.keys]]`` lines."""
    from pydantic import ValidationError

    from mcpd.auth.keys import config_lines, key_hash, new_key, parse_expiry

    key = new_key()
    try:
        expires = parse_expiry(args.expires) if args.expires else None
        lines = config_lines(args.principal, key_hash(key), args.scope, expires)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'key'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        print(f"mcpd: {problems}", file=sys.stderr)
        return EXIT_CONFIG
    except ValueError as exc:
        print(f"mcpd: --expires: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"key: {key}")
    print(
        "# The key above is shown only this once: give it to the client, which sends it as\n"
        "# 'Authorization: Bearer <key>'. mcpd keeps only its hash: add these lines to the\n"
        "# config (e.g. a drop-in in /etc/mcpd/mcpd.toml.d/), then reload (SIGHUP).",
        file=sys.stderr,
    )
    print("\n".join(lines))
    return 0


def _settings(load: Callable[[], LoadedConfig]) -> Settings:
    return load().settings


def _config(action: str, loaded: LoadedConfig, *, as_json: bool) -> int:
    if action == "check":
        return cli_inspect.config_check(loaded)
    if as_json:
        print(render_json(loaded))
    else:
        print(render_text(loaded), end="")
    return 0


def _serve(settings: Settings, reread: Callable[[], Settings]) -> int:
    """Run the daemon; a start-up failure the user can fix is one line and exit status 2."""
    from mcpd.daemon import run
    from mcpd.logs import configure_logging
    from mcpd.startup import user_failure

    configure_logging(settings.logging)
    try:
        return run(settings, reread=reread)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED  # Ctrl-C before the daemon took over SIGINT (loading plugins)
    except BaseException as exc:
        failure = user_failure(exc)
        if failure is None:
            raise  # mcpd's own bug: keep the traceback
        print(f"mcpd: {failure}", file=sys.stderr)
        return EXIT_CONFIG
