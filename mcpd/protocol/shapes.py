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
# for everyone else.
DEFAULT_TTL_MS: Final = 60_000


def complete_result(
    method: str,
    result: dict[str, Any],
    server_info: dict[str, Any],
    *,
    ttl_ms: int = DEFAULT_TTL_MS,
    cache_scope: Literal["public", "private"] = "public",
) -> dict[str, Any]:
    """Decorate a handler's result for the modern era (a new dict; the input is unchanged)."""
    shaped = dict(result)
    shaped["resultType"] = "complete"
    meta = dict(shaped.get("_meta") or {})
    meta[SERVER_INFO] = server_info
    shaped["_meta"] = meta
    if method in CACHEABLE:
        shaped["ttlMs"] = ttl_ms
        shaped["cacheScope"] = cache_scope
    return shaped
