"""``mcpd tools list``, ``mcpd plugins list`` and ``mcpd config check``: what a start would load.

Each loads the plugins the way a start does, with logs on stderr at warning and above only
(the command's own output is what the user asked for). A plugin that fails to load is named
with its reason on stderr, and the command exits non-zero: 1 for the listings, 2 for
``config check`` (a config a start would not serve as written, like any config error).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from mcpd.config import EMBEDDED, LoadedConfig, LoggingSettings, Settings

if TYPE_CHECKING:
    from mcpd.checks import Finding
    from mcpd.plugin.registry import Registry

EXIT_CONFIG: Final = 2
EXIT_PLUGIN_FAILED: Final = 1
TABLE_REVISION: Final = "2025-11-25"


def quiet(settings: LoggingSettings) -> LoggingSettings:
    """The logging settings of a command that is not ``serve``: warnings and errors only."""
    level = settings.level if settings.level == "error" else "warning"
    return dataclasses.replace(settings, level=level)


def load_registry(settings: Settings) -> Registry:
    """Load the plugins as a start would, logging only warnings and errors."""
    from mcpd.logs import configure_logging
    from mcpd.plugin.registry import load_registry as load

    configure_logging(quiet(settings.logging))
    return load(
        enable=settings.plugins.enable,
        disable=settings.plugins.disable,
        plugin_settings=settings.plugin,
    )


def config_check(loaded: LoadedConfig) -> int:
    """``OK: <files>`` on stdout, or every problem on stderr and exit status 2."""
    from mcpd.checks import check

    findings = check(loaded, load_registry(loaded.settings))
    report(findings)
    if any(finding.severity == "error" for finding in findings):
        return EXIT_CONFIG
    print(f"OK: {', '.join([EMBEDDED, *loaded.files])}")
    return 0


def report(findings: Sequence[Finding]) -> None:
    """One line per finding on stderr: ``mcpd: [warning: ]<origin>: <key>: <message>``."""
    for finding in findings:
        label = "warning: " if finding.severity == "warning" else ""
        print(f"mcpd: {label}{finding}", file=sys.stderr)


def _failures(registry: Registry) -> int:
    from mcpd.checks import failed_plugins

    failed = failed_plugins(registry)
    report(failed)
    return EXIT_PLUGIN_FAILED if failed else 0


def tools_list(settings: Settings, *, as_json: bool) -> int:
    """The tools every loaded plugin serves; failed plugins named on stderr (exit 1)."""
    registry = load_registry(settings)
    if as_json:
        definitions = [tool.definition(TABLE_REVISION) for tool in registry.tools.values()]
        print(json.dumps(definitions, indent=2))
    else:
        owners = {name: plugin.name for plugin in registry.plugins for name in plugin.tools}
        rows = [
            (tool.name, owners.get(tool.name, "?"), _first_line(tool.description))
            for tool in registry.tools.values()
        ]
        _table(("TOOL", "PLUGIN", "DESCRIPTION"), rows)
    return _failures(registry)


def plugins_list(settings: Settings, *, as_json: bool) -> int:
    """Every installed plugin and its state; failed ones also on stderr (exit 1)."""
    registry = load_registry(settings)
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
    else:
        rows = [
            (p.name, p.distribution or "-", p.version or "-", p.state, str(len(p.tools)), p.error)
            for p in registry.plugins
        ]
        _table(("PLUGIN", "DISTRIBUTION", "VERSION", "STATE", "TOOLS", "ERROR"), rows)
    return _failures(registry)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _table(header: Sequence[str], rows: Sequence[Sequence[str | None]]) -> None:
    cells = [[cell or "" for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(padded).rstrip())
