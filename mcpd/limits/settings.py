"""The ``[limits]`` table: a pydantic model and its defaults (validated by ``mcpd.config``).

Defaults (kept equal to ``mcpd/defaults.toml``): generous where a limit only bites a runaway
or hostile caller (requests, handshakes, sessions and concurrency per principal), off where
any default would be a guess about someone else's tools (``[[limits.tools]]`` rules). Every
rate and cap takes 0 for "off".
"""

from __future__ import annotations

import fnmatch
import math
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The JSON-RPC code of a 429 answer, unless [limits] error_code says otherwise: see
# mcpd.protocol.errors.LimitExceeded for why -32005.
DEFAULT_ERROR_CODE: Final = -32005
# Codes MCP or mcpd already give another meaning: ServerUnavailable and the SDKs' connection
# closed (-32000), SessionNotFound and the SDKs' request timeout (-32001), the legacy
# resource-not-found (-32002, retired), pre-release drafts' -32003/-32004, the 2026 revision's
# -32020..-32022 and 2025-11-25's URL elicitation (-32042).
TAKEN_CODES: Final = frozenset(
    {-32000, -32001, -32002, -32003, -32004, -32020, -32021, -32022, -32042}
)

Rate = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # per second; 0 = off
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]  # 0 = no cap
Burst = Annotated[int, Field(ge=1)]


class _Table(BaseModel):
    # strict: TOML's true is not 1 and "5" is not 5; ints are still accepted for floats.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ToolRule(_Table):
    """One ``[[limits.tools]]`` rule: limits for the tools whose names match ``tools``.

    The first rule whose globs match a tool's name applies to it. Each matching tool has its
    own budget: ``rate``/``burst`` per principal, ``max_concurrent`` across all principals.
    """

    tools: Annotated[tuple[str, ...], Field(min_length=1, strict=False)]
    rate: Rate = 0.0
    burst: Burst | None = None  # default: one second's worth of rate (at least 1)
    max_concurrent: Count = 0
    queue_timeout_seconds: Seconds | None = None  # default: [limits] queue_timeout_seconds

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_list(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError("expected a list of tool-name globs")
        return value

    @property
    def capacity(self) -> int:
        """The bucket size: ``burst``, or one second's worth of ``rate``."""
        return self.burst if self.burst is not None else max(1, math.ceil(self.rate))

    def matches(self, tool: str) -> bool:
        return any(fnmatch.fnmatchcase(tool, glob) for glob in self.tools)


class LimitsSettings(_Table):
    """The effective ``[limits]`` table (frozen). Rates are per second; 0 turns a limit off."""

    # The JSON-RPC error code of a refusal over a limit (the HTTP status is 429).
    error_code: int = DEFAULT_ERROR_CODE
    # Every request of one principal except the handshakes: a token bucket. Off by default:
    # one local client may rightly send thousands a second; what one principal may hold at
    # once (sessions, running calls) is bounded below whatever the rate.
    requests_per_second: Rate = 0.0
    burst: Burst = 200
    # initialize and server/discover of one principal: cheap to send, and they create state.
    handshakes_per_second: Rate = 100.0
    handshake_burst: Burst = 1000
    # Open legacy sessions of one principal (the daemon-wide cap is [server] max_sessions).
    max_sessions_per_principal: Count = 2000
    # Requests of one principal running plugin code at once (tools, resource reads, prompts).
    max_concurrent_per_principal: Count = 64
    # How long a call may wait for a free slot under a concurrency cap before it is refused.
    queue_timeout_seconds: Seconds = 10.0
    # Rate buckets remembered (principals, and principal+tool pairs); beyond it the least
    # recently used is forgotten (it starts again full). Full buckets are forgotten anyway.
    max_tracked: Annotated[int, Field(ge=1)] = 10_000
    tools: Annotated[tuple[ToolRule, ...], Field(strict=False)] = ()

    @field_validator("error_code")
    @classmethod
    def _code(cls, value: int) -> int:
        if not -32099 <= value <= -32000:
            raise ValueError("must be in the JSON-RPC server-error range -32099..-32000")
        if value in TAKEN_CODES:
            raise ValueError("is a code MCP or mcpd already uses for something else")
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _rules_list(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError("expected [[limits.tools]] tables")
        return value

    def rule_for(self, tool: str) -> ToolRule | None:
        """The first ``[[limits.tools]]`` rule matching ``tool``, if any."""
        return next((rule for rule in self.tools if rule.matches(tool)), None)
