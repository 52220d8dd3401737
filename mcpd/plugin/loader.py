"""Finding plugins through entry points and collecting their tools, one plugin at a time.

pluggy's own ``load_setuptools_entrypoints`` stops at the first plugin that fails to import,
so we walk the ``mcpd`` entry points ourselves, in name order, and isolate every step of every
plugin: import, registration (including misspelt hook names), the ``register_tools`` call and
the tools it returns. A plugin that fails anywhere contributes nothing, is recorded as
``failed`` with its distribution and the reason, and the others load as usual.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import traceback
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Literal

import pluggy
import structlog

from mcpd.plugin import hookspecs
from mcpd.plugin.errors import ToolDefinitionError
from mcpd.plugin.tool import Tool, check_tool_name

log = structlog.get_logger("mcpd.plugins")

PluginState = Literal["loaded", "failed", "disabled"]

# Frames from these are not the plugin's; the trailing separator keeps ".../mcpd/" from also
# matching a plugin installed as ".../mcpd_example/".
_NOT_PLUGIN_CODE = (
    str(Path(hookspecs.__file__).parents[1]) + os.sep,  # mcpd itself
    str(Path(pluggy.__file__).parent) + os.sep,
    str(Path(importlib.__file__).parent) + os.sep,
    "<",  # "<frozen importlib._bootstrap>" and friends
)


@dataclass(frozen=True, slots=True)
class PluginRecord:
    """What happened to one ``mcpd`` entry point at the last (re)load."""

    name: str  # the entry-point name, also the key of its [plugin.<name>] settings table
    distribution: str | None
    version: str | None
    state: PluginState
    error: str | None = None
    tools: tuple[str, ...] = ()


class _Failed(Exception):
    """One plugin failed at ``stage``; carries a message fit for logs and listings."""

    def __init__(self, stage: str, error: str) -> None:
        super().__init__(error)
        self.stage = stage
        self.error = error


@dataclass(frozen=True, slots=True)
class _Found:
    """An entry point and the distribution that declares it."""

    entry_point: importlib.metadata.EntryPoint
    distribution: str | None
    version: str | None

    @property
    def name(self) -> str:
        return self.entry_point.name

    def record(
        self, state: PluginState, error: str | None = None, tools: tuple[str, ...] = ()
    ) -> PluginRecord:
        return PluginRecord(self.name, self.distribution, self.version, state, error, tools)

    def log_fields(self) -> dict[str, Any]:
        return {"plugin": self.name, "distribution": self.distribution, "version": self.version}


def load_plugins(
    *,
    enable: Collection[str] | None,
    disable: Collection[str],
    plugin_settings: Mapping[str, Mapping[str, Any]],
    group: str = hookspecs.PROJECT,
) -> tuple[list[Tool], list[PluginRecord]]:
    """Load every selected plugin of ``group``; never raises because of a plugin."""
    # Newly pip-installed distributions are only visible after this.
    importlib.invalidate_caches()
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    owners: dict[str, str] = {}  # tool name -> plugin that serves it
    tools: list[Tool] = []
    records: list[PluginRecord] = []
    for plugin in _discover(group):
        if not _selected(plugin, enable, disable):
            log.info("plugin.disabled", **plugin.log_fields())
            records.append(plugin.record("disabled"))
            continue
        settings = MappingProxyType(dict(plugin_settings.get(plugin.name, {})))
        record, found = _load_one(manager, plugin, settings, owners)
        owners.update((item.name, plugin.name) for item in found)
        tools += found
        records.append(record)
    return tools, records


def _load_one(
    manager: pluggy.PluginManager,
    plugin: _Found,
    settings: Mapping[str, Any],
    owners: Mapping[str, str],
) -> tuple[PluginRecord, list[Tool]]:
    try:
        module = _import(plugin.entry_point)
        _register(manager, module, plugin.name)
        try:
            tools = _collect(manager, module, settings, owners)
        except _Failed:
            manager.unregister(module)
            raise
    except _Failed as failure:
        fields = plugin.log_fields()
        log.error("plugin.load_failed", **fields, stage=failure.stage, error=failure.error)
        return plugin.record("failed", failure.error), []
    names = tuple(item.name for item in tools)
    log.info("plugin.loaded", **plugin.log_fields(), tools=names)
    return plugin.record("loaded", None, names), tools


def _import(entry_point: importlib.metadata.EntryPoint) -> ModuleType:
    try:
        loaded = entry_point.load()
    except Exception as exc:
        raise _Failed("import", _describe(exc)) from None
    if not isinstance(loaded, ModuleType):
        raise _Failed("import", f"entry point must name a module, got {entry_point.value!r}")
    return loaded


def _register(manager: pluggy.PluginManager, module: ModuleType, name: str) -> None:
    try:
        manager.register(module, name=name)
    except Exception as exc:  # PluginValidationError, a name registered twice, odd modules
        raise _Failed("register", _describe(exc)) from None
    # Checked per plugin, right after registering it, so a misspelt hook name is blamed on
    # the plugin that has it.
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        manager.unregister(module)
        raise _Failed("register", _describe(exc)) from None


def _collect(
    manager: pluggy.PluginManager,
    module: ModuleType,
    settings: Mapping[str, Any],
    owners: Mapping[str, str],
) -> list[Tool]:
    """Call this plugin's ``register_tools`` alone, so every tool is attributed to it."""
    impls = [i for i in manager.hook.register_tools.get_hookimpls() if i.plugin is module]
    if not impls:
        raise _Failed("hook", "implements no mcpd hook (is register_tools marked @mcpd.hookimpl?)")
    impl = impls[0]  # a module can define a function name only once
    if impl.hookwrapper or impl.wrapper:
        raise _Failed("hook", "register_tools must not be a hook wrapper")
    arguments = {"settings": settings}
    try:
        result: Any = impl.function(*(arguments[name] for name in impl.argnames))
        items = [] if result is None else list(result)
    except Exception as exc:
        raise _Failed("hook", f"register_tools failed: {_describe(exc)}") from None
    return _checked_tools(items, owners)


def _checked_tools(items: Iterable[object], owners: Mapping[str, str]) -> list[Tool]:
    tools: list[Tool] = []
    for item in items:
        if not isinstance(item, Tool):
            kind = type(item).__name__
            raise _Failed("tools", f"register_tools returned a {kind}, not an @mcpd.tool")
        try:
            check_tool_name(item.name)
        except ToolDefinitionError as exc:
            raise _Failed("tools", str(exc)) from None
        if item.name in owners:
            owner = owners[item.name]
            raise _Failed("tools", f"tool {item.name!r} is already served by plugin {owner!r}")
        if any(known.name == item.name for known in tools):
            raise _Failed("tools", f"register_tools returned two tools named {item.name!r}")
        tools.append(item)
    return tools


def _discover(group: str) -> list[_Found]:
    found = [
        _Found(entry_point, *_distribution_of(entry_point))
        for entry_point in importlib.metadata.entry_points(group=group)
    ]
    return sorted(found, key=lambda plugin: (plugin.name, plugin.distribution or ""))


def _distribution_of(entry_point: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = entry_point.dist
    if dist is None:
        return None, None
    return dist.name, dist.version


def _selected(plugin: _Found, enable: Collection[str] | None, disable: Collection[str]) -> bool:
    """Entry-point names match exactly; distribution names match normalised (PEP 503)."""
    keys = {plugin.name}
    if plugin.distribution:
        keys.add(_normalise(plugin.distribution))
    if keys & _names(disable):
        return False
    return enable is None or bool(keys & _names(enable))


def _names(configured: Collection[str]) -> set[str]:
    return set(configured) | {_normalise(item) for item in configured}


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _describe(exc: BaseException) -> str:
    """``Type: message (file:line)``: where it broke, without a traceback and its locals."""
    where = _plugin_frame(exc)
    return f"{type(exc).__name__}: {exc}" + (f" ({where})" if where else "")


def _plugin_frame(exc: BaseException) -> str | None:
    """The innermost frame outside mcpd, pluggy and the import system: the plugin's line."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if not frame.filename.startswith(_NOT_PLUGIN_CODE):
            return f"{frame.filename}:{frame.lineno}"
    return None
