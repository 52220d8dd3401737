"""A context parameter spelt optional (``Context | None = None``) is injected like ``Context``.

The default keeps the function callable without a daemon; under mcpd the call's context is
passed in, and the parameter never appears in a schema or in a prompt's arguments.
"""

from __future__ import annotations

from typing import Annotated, Optional

import pytest

import mcpd
from mcpd.plugin.context import Context
from mcpd.plugin.errors import ToolDefinitionError
from mcpd.plugin.testing import MemoryChannel, call_tool
from mcpd.plugin.tool import Tool


@mcpd.tool
def union_syntax(text: str, ctx: mcpd.Context | None = None) -> str:
    """Report whether a context came in."""
    return f"{text}: {ctx.revision if ctx else 'no context'}"


@mcpd.tool
def optional_syntax(text: str, ctx: Optional[mcpd.Context] = None) -> str:  # noqa: UP045
    """The pre-3.10 spelling."""
    return f"{text}: {ctx.revision if ctx else 'no context'}"


@mcpd.tool
def annotated(text: str, ctx: Annotated[mcpd.Context | None, "the call"] = None) -> str:
    """Annotated around the optional context."""
    return f"{text}: {ctx.revision if ctx else 'no context'}"


@pytest.mark.parametrize("tool", [union_syntax, optional_syntax, annotated])
async def test_optional_context_is_injected_and_not_in_the_schema(tool: Tool) -> None:
    schema = tool.definition("2025-11-25")["inputSchema"]
    assert list(schema["properties"]) == ["text"]
    result = await call_tool(tool, {"text": "hi"}, channel=MemoryChannel(revision="2025-11-25"))
    assert result["content"][0]["text"] == "hi: 2025-11-25"
    assert tool("plain call") == "plain call: no context"  # still a plain function


def test_a_union_with_another_type_is_not_a_context() -> None:
    with pytest.raises(ToolDefinitionError):

        @mcpd.tool
        def ambiguous(ctx: mcpd.Context | int = 0) -> str:
            return "never"


@mcpd.prompt
def summarise(text: str, ctx: mcpd.Context | None = None) -> str:
    """A prompt that may read its context."""
    return f"{text} ({ctx.revision if ctx else 'no context'})"


@mcpd.resource("notes://{name}")
def note(name: str, ctx: Optional[mcpd.Context] = None) -> str:  # noqa: UP045
    return f"{name} ({ctx.revision if ctx else 'no context'})"


async def test_prompts_and_resources_get_an_optional_context_too() -> None:
    assert [argument["name"] for argument in summarise.definition("2025-11-25")["arguments"]] == [
        "text"
    ]
    context = Context(MemoryChannel(revision="2025-06-18"))
    assert await summarise.get({"text": "t"}, context) == "t (2025-06-18)"
    assert await note.read("notes://a", {"name": "a"}, context) == "a (2025-06-18)"
