"""The hooks a plugin can implement, and the markers that tie implementations to them.

A plugin is a module named by an ``mcpd`` entry point. It implements any of the hooks below
(``register_tools``, ``register_resources``, ``register_prompts``) by defining
functions with the hook's name, decorated with ``@mcpd.hookimpl``, and may accept only the
arguments it needs (pluggy passes arguments by name)::

    import mcpd

    @mcpd.hookimpl
    def register_tools(settings):
        return [echo]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from mcpd.plugin.prompt import Prompt
    from mcpd.plugin.resource import Resource
    from mcpd.plugin.tool import Tool

PROJECT = "mcpd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a plugin function as the implementation of the mcpd hook of the same name.

Example::

    @mcpd.hookimpl
    def register_tools(settings):
        return [my_tool]
"""


# -- tools -----------------------------------------------------------------------------------


@hookspec
def register_tools(settings: Mapping[str, Any]) -> Iterable[Tool]:  # type: ignore[empty-body]
    """Runs once per plugin at each (re)load; returns its tools. ``settings``: its config table."""


# -- resources and prompts ---------------------------------------------------------------------


@hookspec
def register_resources(settings: Mapping[str, Any]) -> Iterable[Resource]:  # type: ignore[empty-body]
    """Runs once per plugin at each (re)load; returns its ``@mcpd.resource`` objects."""


@hookspec
def register_prompts(settings: Mapping[str, Any]) -> Iterable[Prompt]:  # type: ignore[empty-body]
    """Runs once per plugin at each (re)load; returns its ``@mcpd.prompt`` objects."""
