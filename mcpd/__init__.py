"""mcpd: a standalone MCP server daemon that serves tools from pip-installed plugins.

This module is the whole API a plugin needs::

    import mcpd

    @mcpd.tool
    async def greet(name: str, ctx: mcpd.Context) -> str:
        \"\"\"Say hello.\"\"\"
        await ctx.log("info", f"greeting {name}")
        return f"Hello, {name}!"

    @mcpd.hookimpl
    def register_tools(settings):
        return [greet]

``mcpd.plugin.testing`` holds helpers for testing plugins; everything else is internal.
"""

# Private aliases: the module namespace holds only the public names.
import importlib as _importlib
import typing as _typing

from mcpd._version import __version__

if _typing.TYPE_CHECKING:
    from mcpd.plugin.content import Audio, EmbeddedResource, Image, ResourceLink
    from mcpd.plugin.context import Context
    from mcpd.plugin.errors import ToolError
    from mcpd.plugin.hookspecs import hookimpl
    from mcpd.plugin.tool import tool

__all__ = [
    "Audio",
    "Context",
    "EmbeddedResource",
    "Image",
    "ResourceLink",
    "ToolError",
    "__version__",
    "hookimpl",
    "tool",
]

# Public name -> the module defining it. Imported on first use: every ``import mcpd.<x>``
# runs this file first, and the sans-IO protocol core must not drag in trio, pydantic and
# pluggy through it.
_EXPORTS = {
    "Audio": "mcpd.plugin.content",
    "EmbeddedResource": "mcpd.plugin.content",
    "Image": "mcpd.plugin.content",
    "ResourceLink": "mcpd.plugin.content",
    "Context": "mcpd.plugin.context",
    "ToolError": "mcpd.plugin.errors",
    "hookimpl": "mcpd.plugin.hookspecs",
    "tool": "mcpd.plugin.tool",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mcpd' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
