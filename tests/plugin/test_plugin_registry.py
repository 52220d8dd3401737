"""The registry snapshot: lookup, deterministic order and ``tools/list`` pagination."""

from __future__ import annotations

import pytest

import mcpd
from mcpd.plugin.errors import InvalidCursor
from mcpd.plugin.registry import PluginRecord, Registry
from mcpd.plugin.tool import Tool


def named(name: str) -> Tool:
    def fn() -> str:
        return name

    return mcpd.tool(name=name)(fn)


NAMES = ["delta", "alpha", "echo", "charlie", "bravo"]
TOOLS = [named(name) for name in NAMES]


def walk(registry: Registry, size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        tools, cursor = registry.page(cursor, size)
        pages.append([tool.name for tool in tools])
        if cursor is None:
            return pages


def test_tools_are_sorted_by_name_whatever_the_input_order() -> None:
    assert list(Registry(TOOLS).tools) == sorted(NAMES)
    assert list(Registry(reversed(TOOLS)).tools) == sorted(NAMES)


def test_get() -> None:
    registry = Registry(TOOLS)
    assert registry.get("echo") is TOOLS[2]
    assert registry.get("nope") is None


def test_the_snapshot_is_read_only() -> None:
    registry = Registry(TOOLS)
    with pytest.raises(TypeError):
        registry.tools["new"] = TOOLS[0]  # type: ignore[index]
    with pytest.raises(AttributeError):
        registry.plugins = ()  # type: ignore[misc]


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        Registry([TOOLS[0], named("delta")])


@pytest.mark.parametrize(
    ("size", "pages"),
    [
        (2, [["alpha", "bravo"], ["charlie", "delta"], ["echo"]]),
        (5, [["alpha", "bravo", "charlie", "delta", "echo"]]),
        (100, [["alpha", "bravo", "charlie", "delta", "echo"]]),
        (1, [["alpha"], ["bravo"], ["charlie"], ["delta"], ["echo"]]),
    ],
)
def test_pages_cover_every_tool_once_in_order(size: int, pages: list[list[str]]) -> None:
    assert walk(Registry(TOOLS), size) == pages


def test_exact_multiple_has_no_empty_last_page() -> None:
    assert walk(Registry(TOOLS[:4]), 2) == [["alpha", "charlie"], ["delta", "echo"]]


def test_empty_registry_is_one_empty_page() -> None:
    assert Registry().page(None, 10) == ((), None)


def test_cursors_are_opaque_and_stable() -> None:
    _, cursor = Registry(TOOLS).page(None, 2)
    assert cursor is not None
    assert "bravo" not in cursor
    assert Registry(TOOLS).page(None, 2)[1] == cursor


def test_a_cursor_survives_a_reload_that_changed_the_tools() -> None:
    _, cursor = Registry(TOOLS).page(None, 2)  # after "bravo"
    reloaded = Registry([*TOOLS[:1], *TOOLS[2:], named("bravissimo")])  # bravo is gone
    tools, _ = reloaded.page(cursor, 10)
    assert [tool.name for tool in tools] == ["charlie", "delta", "echo"]


@pytest.mark.parametrize(
    "cursor",
    ["not-a-cursor", "", "%%%", "YWZ0ZXI6", "aGVsbG8", "\u00e9t\u00e9"],
)
def test_bad_cursors_are_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        Registry(TOOLS).page(cursor, 2)


def test_invalid_cursor_is_a_value_error() -> None:
    assert issubclass(InvalidCursor, ValueError)


def test_page_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Registry(TOOLS).page(None, 0)


def test_plugin_records_are_kept_in_order() -> None:
    plugins = (
        PluginRecord("a", "dist-a", "1.0", "loaded", None, ("alpha",)),
        PluginRecord("b", None, None, "failed", "boom"),
    )
    assert Registry(TOOLS, plugins).plugins == plugins
