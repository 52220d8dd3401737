"""The closed set of limit names: what a refusal says it hit, and the metric's label values."""

from __future__ import annotations

from typing import Final, Literal

LimitName = Literal[
    "principal_rate",
    "handshake_rate",
    "tool_rate",
    "principal_concurrency",
    "tool_concurrency",
    "principal_sessions",
    "tool_quota",
]

PRINCIPAL_RATE: Final = "principal_rate"  # [limits] requests_per_second / burst
HANDSHAKE_RATE: Final = "handshake_rate"  # initialize and server/discover
TOOL_RATE: Final = "tool_rate"  # [[limits.tools]] rate / burst
PRINCIPAL_CONCURRENCY: Final = "principal_concurrency"  # max_concurrent_per_principal
TOOL_CONCURRENCY: Final = "tool_concurrency"  # [[limits.tools]] max_concurrent
PRINCIPAL_SESSIONS: Final = "principal_sessions"  # max_sessions_per_principal
TOOL_QUOTA: Final = "tool_quota"  # a tool raised mcpd.RateLimited (an upstream quota)

LIMIT_NAMES: Final[tuple[LimitName, ...]] = (
    PRINCIPAL_RATE,
    HANDSHAKE_RATE,
    TOOL_RATE,
    PRINCIPAL_CONCURRENCY,
    TOOL_CONCURRENCY,
    PRINCIPAL_SESSIONS,
    TOOL_QUOTA,
)
