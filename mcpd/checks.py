"""What a start would refuse or warn about beyond the config's own rules, as ``Finding``s.

The config's keys, values and cross-key rules (listener clashes among them) are checked by
``load_config`` itself, so a start, a reload and ``mcpd config check`` refuse the same configs
with the same sentence; new tables join there. What needs the installed plugins or the
addresses is checked here, by the code a start runs:

- a plugin that fails to load with this config (an error: a plugin's own settings model
  rejecting its ``[plugin.<name>]`` table is one way);
- a ``[plugin.<name>]`` table, or an ``enable``/``disable`` entry, that names no installed
  plugin (a warning: the name is ignored, and a start logs the same warning);
- listening beyond loopback without authentication (a warning at every start, and here).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mcpd.config import LoadedConfig, Settings
from mcpd.listen_addresses import is_local_bind

if TYPE_CHECKING:
    from mcpd.plugin.registry import Registry

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a start would refuse (``error``) or warn about (``warning``).

    Example::

        str(Finding("warning", "this table is ignored", "plugin.exmaple", "/etc/mcpd/mcpd.toml"))
        # "/etc/mcpd/mcpd.toml: plugin.exmaple: this table is ignored"
    """

    severity: Severity
    message: str
    key: str | None = None  # the dotted config key it is about
    origin: str | None = None  # the file or flag that set that key

    def __str__(self) -> str:
        return ": ".join(part for part in (self.origin, self.key, self.message) if part)


def check(loaded: LoadedConfig, registry: Registry) -> list[Finding]:
    """Everything ``mcpd config check`` reports once the config itself has loaded."""
    settings = loaded.settings
    origins = key_origins(loaded)
    findings = failed_plugins(registry, origins)
    findings += ignored_plugin_names(settings, registry, origins)
    exposed = exposure(settings, settings.server.listen)
    if exposed is not None:
        findings.append(_with_origin(exposed, origins))
    return findings


def failed_plugins(registry: Registry, origins: Mapping[str, str] | None = None) -> list[Finding]:
    """An error per plugin that failed to load, naming its settings table if it has one."""
    origins = origins or {}
    findings = []
    for plugin in registry.plugins:
        if plugin.state != "failed":
            continue
        key = f"plugin.{plugin.name}"
        dist = " ".join(filter(None, (plugin.distribution, plugin.version)))
        found = f" ({dist})" if dist else ""
        message = f"plugin {plugin.name!r}{found} fails to load: {plugin.error}"
        findings.append(Finding("error", message, *_located(key, origins)))
    return findings


def ignored_plugin_names(
    settings: Settings, registry: Registry, origins: Mapping[str, str] | None = None
) -> list[Finding]:
    """A warning per name the config gives that no installed plugin has: a
    ``[plugin.<name>]`` table, or an entry of ``[plugins] enable`` or ``disable``."""
    from mcpd.plugin.loader import unknown_names

    origins = origins or {}
    installed = sorted(plugin.name for plugin in registry.plugins)
    findings = []
    for name in settings.plugin:
        if name not in installed:
            message = f"no installed plugin is named {name!r}{_hint(name, installed)}"
            key = f"plugin.{name}"
            findings.append(
                Finding("warning", f"{message}; the table is ignored", key, origins.get(key))
            )
    for which in ("enable", "disable"):
        for name in unknown_names(getattr(settings.plugins, which) or (), registry.plugins):
            message = f"{name!r} names no installed plugin{_hint(name, installed)}"
            key = f"plugins.{which}"
            findings.append(Finding("warning", message, key, origins.get(key)))
    return findings


def _hint(name: str, installed: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, installed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def auth_enabled(settings: Settings) -> bool:
    """Whether callers must authenticate: ``[auth] mode`` set and not "none".

    mcpd has no ``[auth]`` table yet; this reads it once it exists, so the warnings and the
    client entries that depend on it (``exposure``, ``mcpd install``) follow it unchanged.
    """
    mode = getattr(getattr(settings, "auth", None), "mode", "none")
    return isinstance(mode, str) and mode != "none"


def exposure(settings: Settings, addresses: Iterable[str]) -> Finding | None:
    """The warning for MCP listeners beyond loopback that anyone reaching them may call.

    ``addresses`` are listen addresses (``HOST:PORT``, ``unix:PATH``) or the bound URLs
    hypercorn reports. None when all are loopback or unix sockets, or when authentication
    is on (``auth_enabled``).
    """
    exposed = [address for address in addresses if not is_local_bind(address)]
    if not exposed or auth_enabled(settings):
        return None
    message = (
        f"listening beyond loopback ({', '.join(exposed)}) without authentication: anyone "
        "who can reach it may list and call every tool ([auth] allow_anonymous_remote = true)"
    )
    return Finding("warning", message, "server.listen")


def key_origins(loaded: LoadedConfig) -> dict[str, str]:
    """Dotted key or ``plugin.<name>`` table -> the files and flags that set it."""
    origins: dict[str, list[str]] = {}
    for key, entry in loaded.entries.items():
        names = [".".join(key)] + ([".".join(key[:2])] if key[0] == "plugin" else [])
        for name in names:
            if entry.origin not in origins.setdefault(name, []):
                origins[name].append(entry.origin)
    return {name: ", ".join(where) for name, where in origins.items()}


def _located(key: str, origins: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``key`` and its origin when the config sets it, else neither."""
    return (key, origins[key]) if key in origins else (None, None)


def _with_origin(finding: Finding, origins: Mapping[str, str]) -> Finding:
    origin = origins.get(finding.key or "")
    return Finding(finding.severity, finding.message, finding.key, origin)
