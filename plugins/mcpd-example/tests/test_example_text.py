"""hash_text, text_stats and unified_diff, called the way mcpd calls them."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from mcpd.plugin.errors import InvalidArguments
from mcpd.plugin.testing import call_tool
from mcpd_example import settings
from mcpd_example.text import hash_text, text_stats, unified_diff

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


async def test_hash_text_defaults_to_sha256() -> None:
    result = await call_tool(hash_text, {"text": "abc"})
    assert result["structuredContent"] == {
        "algorithm": "sha256",
        "hexdigest": ABC_SHA256,
        "bytes": 3,
    }


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha512", "sha3_256", "blake2b"])
async def test_hash_text_algorithms(algorithm: str) -> None:
    text = "héllo " * 50_000  # several chunks
    result = await call_tool(hash_text, {"text": text, "algorithm": algorithm})
    expected = hashlib.new(algorithm, text.encode()).hexdigest()
    assert result["structuredContent"]["hexdigest"] == expected


async def test_hash_text_refuses_unknown_algorithms() -> None:
    with pytest.raises(InvalidArguments, match="algorithm"):
        await call_tool(hash_text, {"text": "x", "algorithm": "crc32"})


async def test_inputs_over_the_configured_limit_are_tool_errors() -> None:
    settings.configure({"max_input_bytes": 4})
    result = await call_tool(hash_text, {"text": "héllo"})
    assert result["isError"] is True
    assert "6 bytes" in result["content"][0]["text"]


async def test_text_stats() -> None:
    text = "The cat sat. The cat's hat!\nIs it well-made? the end"
    result = await call_tool(text_stats, {"text": text, "top": 2})
    assert result["structuredContent"] == {
        "characters": len(text),
        "bytes_utf8": len(text.encode()),
        "words": 11,
        "lines": 2,
        "sentences": 3,
        "top_words": [{"word": "the", "count": 3}, {"word": "cat", "count": 1}],
    }


async def test_text_stats_of_nothing() -> None:
    result = await call_tool(text_stats, {"text": ""})
    stats: dict[str, Any] = result["structuredContent"]
    assert (stats["words"], stats["lines"], stats["top_words"]) == (0, 0, [])


async def test_unified_diff() -> None:
    result = await call_tool(
        unified_diff, {"before": "a\nb\nc", "after": "a\nB\nc", "context_lines": 0}
    )
    assert result["content"][0]["text"] == ("--- before\n+++ after\n@@ -2 +2 @@\n-b\n+B\n")


async def test_unified_diff_of_identical_texts_is_empty() -> None:
    result = await call_tool(unified_diff, {"before": "same", "after": "same"})
    assert result["content"] == [{"type": "text", "text": ""}]
