"""Text tools: hashing, statistics and diffs. All sync, so mcpd runs them in worker threads."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import Counter
from typing import Annotated, Final, Literal

from pydantic import Field
from typing_extensions import TypedDict

import mcpd
from mcpd_example.settings import checked_utf8

READ_ONLY: Final = {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False}
CHUNK: Final = 1 << 16  # bytes hashed between two cancellation checks
WORD: Final = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
SENTENCE_END: Final = re.compile(r"[.!?]+(?:\s|$)")

Algorithm = Literal["md5", "sha1", "sha256", "sha512", "sha3_256", "blake2b"]


class Digest(TypedDict):
    algorithm: str
    hexdigest: str
    bytes: int


class WordCount(TypedDict):
    word: str
    count: int


class TextStats(TypedDict):
    characters: int
    bytes_utf8: int
    words: int
    lines: int
    sentences: int
    top_words: list[WordCount]


@mcpd.tool(title="Hash text", annotations=READ_ONLY)
def hash_text(
    text: Annotated[str, "The text to hash; it is encoded as UTF-8 first"],
    ctx: mcpd.Context,
    algorithm: Annotated[Algorithm, "The hash function"] = "sha256",
) -> Digest:
    """Compute a checksum of a text, e.g. to compare it with a published digest."""
    data = checked_utf8(text)
    digest = hashlib.new(algorithm)
    for start in range(0, len(data), CHUNK):
        # Hashing megabytes takes a while: keep the call cancellable between chunks.
        ctx.check_cancelled()
        digest.update(data[start : start + CHUNK])
    return {"algorithm": algorithm, "hexdigest": digest.hexdigest(), "bytes": len(data)}


@mcpd.tool(title="Text statistics", annotations=READ_ONLY)
def text_stats(
    text: Annotated[str, "The text to analyse"],
    top: Annotated[int, Field(ge=0, le=100, description="How many frequent words to list")] = 5,
) -> TextStats:
    """Count characters, UTF-8 bytes, words, lines and sentences, and list the commonest words.

    Words are compared case-insensitively; hyphenated words and contractions count as one.
    """
    size = len(checked_utf8(text))
    words = WORD.findall(text.casefold())
    common = Counter(words).most_common(top)
    return {
        "characters": len(text),
        "bytes_utf8": size,
        "words": len(words),
        "lines": len(text.splitlines()),
        "sentences": len(SENTENCE_END.findall(text)),
        "top_words": [{"word": word, "count": count} for word, count in common],
    }


@mcpd.tool(title="Unified diff", annotations=READ_ONLY)
def unified_diff(
    before: Annotated[str, "The original text"],
    after: Annotated[str, "The changed text"],
    from_name: Annotated[str, "Label of the original in the diff header"] = "before",
    to_name: Annotated[str, "Label of the changed text in the diff header"] = "after",
    context_lines: Annotated[int, Field(ge=0, le=100, description="Unchanged lines shown")] = 3,
) -> str:
    """Show the differences between two texts as a unified diff (as ``diff -u`` does).

    Returns an empty string when the texts are identical.
    """
    checked_utf8(before, "before")
    checked_utf8(after, "after")
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=from_name,
        tofile=to_name,
        n=context_lines,
    )
    # difflib leaves a last line without its newline; keep the output line-oriented.
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
