"""The protocol revisions mcpd speaks and what each one changes for a server.

Revision names are ISO dates, so plain string comparison orders them; the helpers below name
each behavioural switch so call sites never compare dates themselves.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Era(enum.Enum):
    """Handshake revisions (``initialize`` + sessions) vs the stateless 2026 revision."""

    LEGACY = "legacy"
    MODERN = "modern"


@dataclass(frozen=True, slots=True)
class Revision:
    version: str
    era: Era


REVISIONS: tuple[Revision, ...] = (
    Revision("2024-11-05", Era.LEGACY),
    Revision("2025-03-26", Era.LEGACY),
    Revision("2025-06-18", Era.LEGACY),
    Revision("2025-11-25", Era.LEGACY),
    Revision("2026-07-28", Era.MODERN),
)

LEGACY_VERSIONS: tuple[str, ...] = tuple(r.version for r in REVISIONS if r.era is Era.LEGACY)
MODERN_VERSIONS: tuple[str, ...] = tuple(r.version for r in REVISIONS if r.era is Era.MODERN)
LATEST_LEGACY = LEGACY_VERSIONS[-1]
LATEST_MODERN = MODERN_VERSIONS[-1]
# Spec: a post-initialize request without MCP-Protocol-Version is assumed to be 2025-03-26.
ASSUMED_WITHOUT_HEADER = "2025-03-26"


def era_of(version: str) -> Era | None:
    """The era of a known revision, or None for anything we do not implement."""
    for revision in REVISIONS:
        if revision.version == version:
            return revision.era
    return None


def negotiate(requested: object) -> str:
    """The version to answer an ``initialize`` with.

    A supported handshake revision is echoed; anything else (including 2026-07-28, which has no
    handshake) gets our latest handshake revision and the client decides whether to go on.
    """
    if isinstance(requested, str) and requested in LEGACY_VERSIONS:
        return requested
    return LATEST_LEGACY


def allows_batch(version: str) -> bool:
    """JSON-RPC batches exist only in 2025-03-26."""
    return version == "2025-03-26"


def argument_errors_are_tool_errors(version: str) -> bool:
    """From 2025-11-25 invalid tool arguments are an ``isError`` result, not -32602."""
    return version >= "2025-11-25"


def resource_not_found_code(version: str) -> int:
    """-32002 on handshake revisions, -32602 on the modern one."""
    return -32602 if version >= LATEST_MODERN else -32002
