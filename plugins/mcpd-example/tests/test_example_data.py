"""json_format and json_query."""

from __future__ import annotations

from typing import Any

import pytest

from mcpd.plugin.testing import call_tool
from mcpd_example.data import json_format, json_query

DOC = '{"items": [{"name": "a/b", "tags": ["x"]}, {"name": "c~d"}], "n": null}'


async def test_json_format_indents_and_sorts() -> None:
    result = await call_tool(json_format, {"document": '{"b":1,"a":[1]}', "sort_keys": True})
    assert result["content"][0]["text"] == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}'


async def test_json_format_indent_zero_minifies() -> None:
    result = await call_tool(json_format, {"document": '{ "a" : [ 1 , "é" ] }', "indent": 0})
    assert result["content"][0]["text"] == '{"a":[1,"é"]}'


async def test_json_format_reports_where_the_json_breaks() -> None:
    result = await call_tool(json_format, {"document": '{\n  "a": }'})
    assert result["isError"] is True
    assert "line 2 column 8" in result["content"][0]["text"]


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("", {"items": [{"name": "a/b", "tags": ["x"]}, {"name": "c~d"}], "n": None}),
        ("/items/0/name", "a/b"),
        ("/items/0/tags", ["x"]),
        ("/items/1/name", "c~d"),
        ("/n", None),
    ],
)
async def test_json_query_finds_values(pointer: str, value: Any) -> None:
    result = await call_tool(json_query, {"document": DOC, "pointer": pointer})
    assert result["structuredContent"] == {"result": value}


async def test_json_query_unescapes_pointer_tokens() -> None:
    document = '{"a/b": {"m~n": 1}}'
    result = await call_tool(json_query, {"document": document, "pointer": "/a~1b/m~0n"})
    assert result["structuredContent"] == {"result": 1}


@pytest.mark.parametrize(
    ("pointer", "message"),
    [
        ("items", "starts with '/'"),
        ("/missing", "no key 'missing'"),
        ("/items/2", "the array has 2 items"),
        ("/items/01", "not an array index"),
        ("/items/-", "not an array index"),
        ("/n/x", "NoneType values have no members"),
    ],
)
async def test_json_query_explains_misses(pointer: str, message: str) -> None:
    result = await call_tool(json_query, {"document": DOC, "pointer": pointer})
    assert result["isError"] is True
    assert message in result["content"][0]["text"]
