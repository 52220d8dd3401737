"""The ``mcpd`` command line: serve, inspect tools and plugins, check and show the config."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcpd._version import __version__
from mcpd.config import EMBEDDED, ConfigError, LoadedConfig, Settings, load_config
from mcpd.config_show import render_json, render_text

if TYPE_CHECKING:
    from mcpd.plugin.registry import Registry

EXIT_CONFIG = 2
TABLE_REVISION = "2025-11-25"


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
    _auth_commands(commands)
    return parser


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
    except ConfigError as exc:
        print(f"mcpd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "serve":
        return _serve(loaded.settings, partial(_settings, load))
    if args.command == "config":
        return _config(args.action, loaded, as_json=getattr(args, "json", False))
    registry = _registry(loaded.settings)
    if args.command == "tools":
        return _print_tools(registry, as_json=args.json)
    return _print_plugins(registry, as_json=args.json)


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
        print(f"OK: {', '.join([EMBEDDED, *loaded.files])}")
    elif as_json:
        print(render_json(loaded))
    else:
        print(render_text(loaded), end="")
    return 0


def _serve(settings: Settings, reread: Callable[[], Settings]) -> int:
    from mcpd.daemon import run
    from mcpd.logs import configure_logging

    configure_logging(settings.logging)
    return run(settings, reread=reread)


def _registry(settings: Settings) -> Registry:
    from mcpd.logs import configure_logging
    from mcpd.plugin.registry import load_registry

    configure_logging(settings.logging)
    return load_registry(
        enable=settings.plugins.enable,
        disable=settings.plugins.disable,
        plugin_settings=settings.plugin,
    )


def _print_tools(registry: Registry, *, as_json: bool) -> int:
    if as_json:
        print(
            json.dumps(
                [tool.definition(TABLE_REVISION) for tool in registry.tools.values()], indent=2
            )
        )
        return 0
    owners = {name: plugin.name for plugin in registry.plugins for name in plugin.tools}
    rows = [
        (tool.name, owners.get(tool.name, "?"), _first_line(tool.description))
        for tool in registry.tools.values()
    ]
    _table(("TOOL", "PLUGIN", "DESCRIPTION"), rows)
    return 0


def _print_plugins(registry: Registry, *, as_json: bool) -> int:
    if as_json:
        records: list[dict[str, Any]] = [
            {
                "name": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "state": p.state,
                "tools": list(p.tools),
                "error": p.error,
            }
            for p in registry.plugins
        ]
        print(json.dumps(records, indent=2))
        return 0
    rows = [
        (p.name, p.distribution or "-", p.version or "-", p.state, str(len(p.tools)), p.error or "")
        for p in registry.plugins
    ]
    _table(("PLUGIN", "DISTRIBUTION", "VERSION", "STATE", "TOOLS", "ERROR"), rows)
    return 0


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
