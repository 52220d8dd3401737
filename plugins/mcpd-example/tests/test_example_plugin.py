"""The plugin as mcpd sees it: the hook, the settings table and the tool definitions."""

from __future__ import annotations

import pydantic
import pytest

import mcpd_example
from mcpd_example import settings

REVISIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28")


def test_register_tools_serves_every_tool() -> None:
    tools = mcpd_example.register_tools({})
    assert sorted(t.name for t in tools) == [
        "countdown",
        "hash_text",
        "json_format",
        "json_query",
        "text_stats",
        "time_now",
        "unified_diff",
    ]


def test_settings_are_applied() -> None:
    mcpd_example.register_tools({"max_input_bytes": 10, "default_timezone": "Asia/Tokyo"})
    assert settings.current().max_input_bytes == 10
    assert settings.current().default_timezone == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("table", "mentions"),
    [
        ({"max_input_byte": 10}, "max_input_byte"),
        ({"max_input_bytes": 0}, "greater than 0"),
        ({"default_timezone": "Mars/Olympus_Mons"}, "Mars/Olympus_Mons"),
    ],
)
def test_bad_settings_fail_the_hook(table: dict[str, object], mentions: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=mentions):
        mcpd_example.register_tools(table)


@pytest.mark.parametrize("revision", REVISIONS)
def test_every_tool_is_described_for_every_revision(revision: str) -> None:
    for tool in mcpd_example.TOOLS:
        definition = tool.definition(revision)
        assert definition["description"]
        assert definition["inputSchema"]["type"] == "object"
        for name, schema in definition["inputSchema"]["properties"].items():
            assert "description" in schema, f"{tool.name}.{name} has no description"
