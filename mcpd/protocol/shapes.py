"""Era-specific result shapes: what a modern result carries that a legacy one must not."""

from __future__ import annotations

from typing import Any, Final, Literal

from mcpd.protocol.meta import SERVER_INFO

# Complete results of these methods MUST carry ttlMs and cacheScope (2026 caching utility).
CACHEABLE: Final = frozenset(
    {
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
    }
)
# Our lists change only on reload, which subscribers hear about; a short TTL bounds staleness
# for everyone else. Resource contents are the plugin's to change at any moment: not cached.
DEFAULT_TTL_MS: Final = 60_000
TTL_MS: Final = {"resources/read": 0}


def complete_result(
    method: str,
    result: dict[str, Any],
    server_info: dict[str, Any],
    *,
    ttl_ms: int = DEFAULT_TTL_MS,
    cache_scope: Literal["public", "private"] = "public",
) -> dict[str, Any]:
    """Decorate a handler's result for the modern era (a new dict; the input is unchanged).

    An ``input_required`` result keeps its type and gets no cache fields (they belong to
    complete results only).
    """
    shaped = dict(result)
    complete = shaped.setdefault("resultType", "complete") == "complete"
    meta = dict(shaped.get("_meta") or {})
    meta[SERVER_INFO] = server_info
    shaped["_meta"] = meta
    if complete and method in CACHEABLE:
        shaped["ttlMs"] = TTL_MS.get(method, ttl_ms)
        shaped["cacheScope"] = cache_scope
    return shaped
