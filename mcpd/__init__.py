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
    from mcpd.auth.principal import Principal
    from mcpd.limits.quota import RateLimited
    from mcpd.plugin.completion import Completion
    from mcpd.plugin.content import Audio, EmbeddedResource, Image, ResourceLink
    from mcpd.plugin.context import (
        ClientCapabilityMissing,
        Context,
        Elicit,
        Elicitation,
        InputUnavailable,
        ListRoots,
        Sample,
    )
    from mcpd.plugin.errors import ToolError
    from mcpd.plugin.hookspecs import hookimpl
    from mcpd.plugin.prompt import PromptMessage, prompt
    from mcpd.plugin.resource import ResourceContents, ResourceNotFound, resource
    from mcpd.plugin.tool import tool
    from mcpd.runtime.notices import list_changed, resource_updated

__all__ = [
    "Audio",
    "ClientCapabilityMissing",
    "Completion",
    "Context",
    "Elicit",
    "Elicitation",
    "EmbeddedResource",
    "Image",
    "InputUnavailable",
    "ListRoots",
    "Principal",
    "PromptMessage",
    "RateLimited",
    "ResourceContents",
    "ResourceLink",
    "ResourceNotFound",
    "Sample",
    "ToolError",
    "__version__",
    "hookimpl",
    "list_changed",
    "prompt",
    "resource",
    "resource_updated",
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
    "ClientCapabilityMissing": "mcpd.plugin.context",
    "Completion": "mcpd.plugin.completion",
    "Context": "mcpd.plugin.context",
    "Elicit": "mcpd.plugin.context",
    "Elicitation": "mcpd.plugin.context",
    "ListRoots": "mcpd.plugin.context",
    "Sample": "mcpd.plugin.context",
    "list_changed": "mcpd.runtime.notices",
    "InputUnavailable": "mcpd.plugin.context",
    "Principal": "mcpd.auth.principal",
    "PromptMessage": "mcpd.plugin.prompt",
    "RateLimited": "mcpd.limits.quota",
    "ResourceContents": "mcpd.plugin.resource",
    "ResourceNotFound": "mcpd.plugin.resource",
    "prompt": "mcpd.plugin.prompt",
    "resource": "mcpd.plugin.resource",
    "resource_updated": "mcpd.runtime.notices",
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
