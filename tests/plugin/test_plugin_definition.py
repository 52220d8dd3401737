"""``tools/list`` entries per protocol revision."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import mcpd
from mcpd.plugin.schema import JSON_SCHEMA_DIALECT

ICON = {"src": "https://example.com/icon.png", "mimeType": "image/png", "sizes": ["48x48"]}


@mcpd.tool(
    title="Add numbers",
    annotations={"readOnlyHint": True, "idempotentHint": True},
    icons=[ICON],
)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcpd.tool
def plain(text: str) -> str:
    return text


REVISIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28")


@pytest.mark.parametrize(
    ("revision", "keys"),
    [
        ("2024-11-05", ["name", "description", "inputSchema"]),
        ("2025-03-26", ["name", "description", "inputSchema", "annotations"]),
        (
            "2025-06-18",
            ["name", "title", "description", "inputSchema", "outputSchema", "annotations"],
        ),
        (
            "2025-11-25",
            ["name", "title", "description", "inputSchema", "outputSchema", "annotations", "icons"],
        ),
        (
            "2026-07-28",
            ["name", "title", "description", "inputSchema", "outputSchema", "annotations", "icons"],
        ),
    ],
)
def test_fields_appear_with_the_revision_that_introduced_them(
    revision: str, keys: list[str]
) -> None:
    assert list(add.definition(revision)) == keys


@pytest.mark.parametrize("revision", REVISIONS)
def test_schema_dialect_key_only_from_2025_11_25(revision: str) -> None:
    definition = add.definition(revision)
    expected = revision >= "2025-11-25"
    assert ("$schema" in definition["inputSchema"]) is expected
    if "outputSchema" in definition:
        assert ("$schema" in definition["outputSchema"]) is expected
        assert definition["outputSchema"]["properties"]["result"] == {"type": "integer"}


def test_2025_11_25_entry_in_full() -> None:
    assert add.definition("2025-11-25") == {
        "name": "add",
        "title": "Add numbers",
        "description": "Add two integers.",
        "inputSchema": {
            "$schema": JSON_SCHEMA_DIALECT,
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
        "outputSchema": {
            "$schema": JSON_SCHEMA_DIALECT,
            "type": "object",
            "properties": {"result": {"type": "integer"}},
            "required": ["result"],
        },
        "annotations": {"readOnlyHint": True, "idempotentHint": True},
        "icons": [ICON],
    }


def test_title_rides_in_annotations_where_there_is_no_title_field() -> None:
    assert add.definition("2025-03-26")["annotations"]["title"] == "Add numbers"
    assert "title" not in add.definition("2025-06-18")["annotations"]


def test_minimal_tool_has_only_name_and_input_schema() -> None:
    for revision in REVISIONS:
        definition: dict[str, Any] = plain.definition(revision)
        assert set(definition) == {"name", "inputSchema"}


def test_definitions_are_cached_per_revision() -> None:
    assert add.definition("2025-06-18") is add.definition("2025-06-18")
    assert add.definition("2025-06-18") is not add.definition("2025-11-25")


def test_a_renamed_copy_does_not_share_the_cache() -> None:
    add.definition("2025-06-18")
    renamed = dataclasses.replace(add, name="plus")
    assert renamed.definition("2025-06-18")["name"] == "plus"
    assert add.definition("2025-06-18")["name"] == "add"


def test_stripping_the_dialect_leaves_the_tool_schema_intact() -> None:
    add.definition("2024-11-05")
    assert add.input_schema["$schema"] == JSON_SCHEMA_DIALECT
