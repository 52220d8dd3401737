"""The immutable snapshot of served tools and plugin outcomes, with ``tools/list`` paging.

A reload builds a new ``Registry`` and swaps it in whole; calls in flight keep the ``Tool``
they looked up. Tools are kept sorted by name, and a cursor names the last tool of its page,
so pages are deterministic and a cursor still means "after this name" across a reload.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Collection, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

from mcpd.plugin.errors import InvalidCursor
from mcpd.plugin.loader import PluginRecord, load_plugins
from mcpd.plugin.tool import TOOL_NAME, Tool

__all__ = ["InvalidCursor", "PluginRecord", "Registry", "load_registry"]

CURSOR_PREFIX: Final = "after:"


class Registry:
    """Tools by name (sorted) and what happened to every plugin.

    Example::

        registry = Registry([echo, add])
        first, cursor = registry.page(None, 1)    # ([add], "<opaque>")
        second, cursor = registry.page(cursor, 1)  # ([echo], None)
    """

    __slots__ = ("_names", "_order", "_plugins", "_tools")

    def __init__(self, tools: Iterable[Tool] = (), plugins: Iterable[PluginRecord] = ()) -> None:
        ordered = sorted(tools, key=lambda item: item.name)
        by_name = {item.name: item for item in ordered}
        if len(by_name) != len(ordered):
            raise ValueError("tool names in a registry must be unique")
        self._order: tuple[Tool, ...] = tuple(ordered)
        self._names = tuple(by_name)
        self._tools: Mapping[str, Tool] = MappingProxyType(by_name)
        self._plugins = tuple(plugins)

    @property
    def tools(self) -> Mapping[str, Tool]:
        """Every served tool by name, in name order (read-only)."""
        return self._tools

    @property
    def plugins(self) -> tuple[PluginRecord, ...]:
        """One record per ``mcpd`` entry point, in entry-point name order."""
        return self._plugins

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or None."""
        return self._tools.get(name)

    def page(self, cursor: str | None, size: int) -> tuple[Sequence[Tool], str | None]:
        """Up to ``size`` tools after ``cursor`` and the cursor of the next page (None: done).

        Raises ``InvalidCursor`` for a cursor this class did not produce.
        """
        if size < 1:
            raise ValueError("page size must be at least 1")
        # Names are sorted, so "after this name" still works if that tool is gone since.
        start = 0 if cursor is None else bisect.bisect_right(self._names, _decode(cursor))
        tools = self._order[start : start + size]
        more = start + size < len(self._order)
        return tools, (_encode(tools[-1].name) if more else None)


def load_registry(
    *,
    enable: Collection[str] | None,
    disable: Collection[str],
    plugin_settings: Mapping[str, Mapping[str, Any]],
    group: str = "mcpd",
) -> Registry:
    """Load the plugins of entry-point ``group`` into a new registry; failures are recorded.

    ``enable`` (None = all) and ``disable`` name entry points or distributions;
    ``plugin_settings`` maps an entry-point name to its ``[plugin.<name>]`` table.
    """
    tools, records = load_plugins(
        enable=enable, disable=disable, plugin_settings=plugin_settings, group=group
    )
    return Registry(tools, records)


def _encode(name: str) -> str:
    raw = (CURSOR_PREFIX + name).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        text = ""
    name = text.removeprefix(CURSOR_PREFIX)
    if name == text or not TOOL_NAME.fullmatch(name):
        raise InvalidCursor(f"invalid cursor {cursor!r}")
    return name
