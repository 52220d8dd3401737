"""Finding plugins through entry points and collecting their tools, one plugin at a time.

pluggy's own ``load_setuptools_entrypoints`` stops at the first plugin that fails to import,
so we walk the ``mcpd`` entry points ourselves, in name order, and isolate every step of every
plugin: import, registration (including misspelt hook names), the ``register_*`` calls and
what they return. A plugin that fails anywhere contributes nothing, is recorded as
``failed`` with its distribution and the reason, and the others load as usual.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import traceback
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Final, Literal

import pluggy
import pydantic
import structlog

from mcpd.plugin import hookspecs
from mcpd.plugin.errors import ToolDefinitionError
from mcpd.plugin.isolation import check_importable
from mcpd.plugin.prompt import Prompt
from mcpd.plugin.resource import Resource
from mcpd.plugin.tool import Tool, check_tool_name

log = structlog.get_logger("mcpd.plugins")

PluginState = Literal["loaded", "failed", "disabled"]
LOGGED_NAMES: Final = 10  # tool names a plugin.loaded event carries; the count is always there
_REPORTED_ERRORS: Final = 5

# Frames from these are not the plugin's; the trailing separator keeps ".../mcpd/" from also
# matching a plugin installed as ".../mcpd_example/".
_NOT_PLUGIN_CODE = (
    str(Path(hookspecs.__file__).parents[1]) + os.sep,  # mcpd itself
    str(Path(pluggy.__file__).parent) + os.sep,
    str(Path(pydantic.__file__).parent) + os.sep,  # a settings model rejecting its table
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
    resources: tuple[str, ...] = ()  # URIs and URI templates
    prompts: tuple[str, ...] = ()


def count_states(plugins: Iterable[PluginRecord]) -> dict[str, int]:
    """How many plugins ended up in each state."""
    states = {"loaded": 0, "failed": 0, "disabled": 0}
    for plugin in plugins:
        states[plugin.state] += 1
    return states


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
        self,
        state: PluginState,
        error: str | None = None,
        tools: tuple[str, ...] = (),
        resources: tuple[str, ...] = (),
        prompts: tuple[str, ...] = (),
    ) -> PluginRecord:
        return PluginRecord(
            self.name, self.distribution, self.version, state, error, tools, resources, prompts
        )

    def log_fields(self) -> dict[str, Any]:
        return {"plugin": self.name, "distribution": self.distribution, "version": self.version}


@dataclass(slots=True)
class Features:
    """Everything the loaded plugins serve."""

    tools: list[Tool] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)

    def names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.tools)


# hook name -> (the type it must return, how one of them is identified, its kind for messages)
_HOOKS: Final = (
    ("register_tools", Tool, "tool"),
    ("register_resources", Resource, "resource"),
    ("register_prompts", Prompt, "prompt"),
)


def load_plugins(
    *,
    enable: Collection[str] | None,
    disable: Collection[str],
    plugin_settings: Mapping[str, Mapping[str, Any]],
    group: str = hookspecs.PROJECT,
) -> tuple[Features, list[PluginRecord]]:
    """Load every selected plugin of ``group``; never raises because of a plugin."""
    # Newly pip-installed distributions are only visible after this.
    importlib.invalidate_caches()
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    owners: dict[str, str] = {}  # "kind key" -> plugin that serves it
    features = Features()
    records: list[PluginRecord] = []
    for plugin in _discover(group):
        if not _selected(plugin, enable, disable):
            log.info("plugin.disabled", **plugin.log_fields())
            records.append(plugin.record("disabled"))
            continue
        settings = MappingProxyType(dict(plugin_settings.get(plugin.name, {})))
        record, found = _load_one(manager, plugin, settings, owners)
        owners.update((_key(item), plugin.name) for item in _items(found))
        features.tools += found.tools
        features.resources += found.resources
        features.prompts += found.prompts
        records.append(record)
    return features, records


def _items(features: Features) -> list[Tool | Resource | Prompt]:
    return [*features.tools, *features.resources, *features.prompts]


def _key(item: Tool | Resource | Prompt) -> str:
    if isinstance(item, Resource):
        return f"resource {item.uri!r}"
    kind = "tool" if isinstance(item, Tool) else "prompt"
    return f"{kind} {item.name!r}"


def _load_one(
    manager: pluggy.PluginManager,
    plugin: _Found,
    settings: Mapping[str, Any],
    owners: Mapping[str, str],
) -> tuple[PluginRecord, Features]:
    try:
        module = _import(plugin.entry_point)
        _register(manager, module, plugin.name)
        try:
            found = _collect(manager, module, settings, owners)
        except _Failed:
            manager.unregister(module)
            raise
    except _Failed as failure:
        fields = plugin.log_fields()
        log.error("plugin.load_failed", **fields, stage=failure.stage, error=failure.error)
        return plugin.record("failed", failure.error), Features()
    names = found.names()
    # Counts, and a few names: one event must not grow with the registry.
    log.info(
        "plugin.loaded",
        **plugin.log_fields(),
        tools=len(names),
        tool_names=list(names[:LOGGED_NAMES]),
        resources=len(found.resources),
        prompts=len(found.prompts),
    )
    record = plugin.record(
        "loaded",
        None,
        found.names(),
        tuple(item.uri for item in found.resources),
        tuple(item.name for item in found.prompts),
    )
    return record, found


def _call_hook(impl: Any, hook_name: str, settings: Mapping[str, Any]) -> list[Any]:
    """What one ``register_*`` hook of a plugin returns, as a list."""
    arguments = {"settings": settings}
    try:
        result: Any = impl.function(*(arguments[name] for name in impl.argnames))
        return [] if result is None else list(result)
    except KeyboardInterrupt:  # Ctrl-C while loading: stop, as the user asked
        raise
    except BaseException as exc:  # any of them ends this plugin's load, never the daemon's
        raise _Failed("hook", f"{hook_name} failed: {_describe(exc)}") from None


def _import(entry_point: importlib.metadata.EntryPoint) -> ModuleType:
    try:
        loaded = entry_point.load()
    except KeyboardInterrupt:  # Ctrl-C while loading: stop, as the user asked
        raise
    except BaseException as exc:  # sys.exit() at import, a plugin's own BaseException...
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
) -> Features:
    """Call this plugin's hooks alone, so every feature is attributed to it."""
    found = Features()
    seen: set[str] = set()  # keys of what this plugin returned so far: one lookup per item
    implemented = False
    for hook_name, expected, kind in _HOOKS:
        hook = getattr(manager.hook, hook_name)
        impls = [i for i in hook.get_hookimpls() if i.plugin is module]
        if not impls:
            continue
        implemented = True
        impl = impls[0]  # a module can define a function name only once
        if impl.hookwrapper or impl.wrapper:
            raise _Failed("hook", f"{hook_name} must not be a hook wrapper")
        items = _call_hook(impl, hook_name, settings)
        for item in items:
            _check_item(item, expected, hook_name=hook_name, kind=kind, owners=owners, seen=seen)
            seen.add(_key(item))
            if isinstance(item, Tool):
                found.tools.append(item)
            elif isinstance(item, Resource):
                found.resources.append(item)
            elif isinstance(item, Prompt):
                found.prompts.append(item)
    if not implemented:
        names = ", ".join(name for name, _, _ in _HOOKS)
        raise _Failed("hook", f"implements no mcpd hook ({names}; marked @mcpd.hookimpl?)")
    return found


def _check_item(
    item: object,
    expected: type,
    *,
    hook_name: str,
    kind: str,
    owners: Mapping[str, str],
    seen: Collection[str],
) -> None:
    if not isinstance(item, expected):
        got = type(item).__name__
        raise _Failed("tools", f"{hook_name} returned a {got}, not an @mcpd.{kind}")
    assert isinstance(item, Tool | Resource | Prompt)
    if isinstance(item, Tool):
        _check_tool(item)
    key = _key(item)
    if key in owners:
        raise _Failed("tools", f"{key} is already served by plugin {owners[key]!r}")
    if key in seen:
        ident = item.uri if isinstance(item, Resource) else item.name
        how = "at" if isinstance(item, Resource) else "named"
        raise _Failed("tools", f"{hook_name} returned two {kind}s {how} {ident!r}")


def _check_tool(tool: Tool) -> None:
    try:
        check_tool_name(tool.name)
        if tool.isolation == "process":  # the module has finished importing by now
            check_importable(tool.fn, tool, tool.name)
    except ToolDefinitionError as exc:
        raise _Failed("tools", str(exc)) from None


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


def unknown_names(configured: Collection[str], plugins: Iterable[PluginRecord]) -> list[str]:
    """The entries of an ``enable``/``disable`` list that select none of ``plugins``.

    Example::

        unknown_names(["example", "exmaple"], registry.plugins)  # ["exmaple"]
    """
    known: set[str] = set()
    for plugin in plugins:
        known.add(plugin.name)
        if plugin.distribution:
            known.add(_normalise(plugin.distribution))
    return [name for name in configured if not _names([name]) & known]


def _names(configured: Collection[str]) -> set[str]:
    return set(configured) | {_normalise(item) for item in configured}


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _describe(exc: BaseException) -> str:
    """``Type: message (file:line)``: where it broke, on one line, without a traceback."""
    where = _plugin_frame(exc)
    if isinstance(exc, pydantic.ValidationError):
        text = _validation_errors(exc)  # a plugin rejecting its settings, usually
    else:
        text = f"{type(exc).__name__}: {_one_line(_text(exc))}"
    return text + (f" ({where})" if where else "")


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a plugin's exception whose __str__ fails too
        return "<unprintable>"


def _validation_errors(exc: pydantic.ValidationError) -> str:
    """``Model: key: what is wrong; ...``, without the input values (they may be secrets)."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    parts = [
        f"{'.'.join(map(str, error['loc'])) or 'value'}: {error['msg']}"
        for error in errors[:_REPORTED_ERRORS]
    ]
    if len(errors) > _REPORTED_ERRORS:
        parts.append(f"and {len(errors) - _REPORTED_ERRORS} more")
    return f"{exc.title}: {'; '.join(parts)}"


def _one_line(text: str) -> str:
    """Listings and ``plugin.load_failed`` show one line per plugin."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _plugin_frame(exc: BaseException) -> str | None:
    """The innermost frame outside mcpd, pluggy and the import system: the plugin's line."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if not frame.filename.startswith(_NOT_PLUGIN_CODE):
            return f"{frame.filename}:{frame.lineno}"
    return None
