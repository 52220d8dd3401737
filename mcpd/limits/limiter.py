"""``Limits``: the one object the request path asks before work runs, per principal and tool.

A principal is named by its stable key string (the authenticated principal's, or the client
address for anonymous callers). Four questions, each answered by returning or by raising
``LimitExceeded`` (HTTP 429, ``Retry-After``, the configured JSON-RPC code):

- ``check_request(principal, method)``: a token from the principal's request bucket, or from
  its handshake bucket for ``initialize`` and ``server/discover``;
- ``check_tool(principal, tool)``: a token from the tool rule's bucket for that principal;
- ``async with running(principal, tool)``: a slot under the principal's and the tool's
  concurrency caps, waiting up to the queue timeout;
- ``open_session(principal)`` / ``close_session(principal)``: sessions per principal.

Every refusal is reported to ``on_reject`` with its limit name (the metric). Time is
``trio.current_time()``. ``reconfigure`` applies a reloaded ``[limits]`` table and keeps the
state: buckets, held slots and session counts.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final

import trio

from mcpd.limits.buckets import BucketTable
from mcpd.limits.caps import KeyedCaps
from mcpd.limits.names import (
    HANDSHAKE_RATE,
    PRINCIPAL_CONCURRENCY,
    PRINCIPAL_RATE,
    PRINCIPAL_SESSIONS,
    TOOL_CONCURRENCY,
    TOOL_QUOTA,
    TOOL_RATE,
    LimitName,
)
from mcpd.limits.quota import RateLimited, rate_limited_result
from mcpd.limits.settings import LimitsSettings, ToolRule
from mcpd.protocol.errors import LimitExceeded, retry_after_seconds

HANDSHAKES: Final = frozenset({"initialize", "server/discover"})
# Retry-After for a full concurrency cap: a slot frees whenever a running call ends, which
# nothing here can predict; one second keeps a polite client from spinning.
CONCURRENCY_RETRY: Final = 1.0
# Retry-After when a principal has all its sessions: one ends by DELETE or the idle timeout,
# rarely within seconds.
SESSIONS_RETRY: Final = 60.0
# Tool names whose rule lookup is remembered; registered names are few, this only bounds
# a registry that keeps changing.
RULE_CACHE: Final = 4096


@dataclass(frozen=True, slots=True)
class LimitsStatistics:
    """What ``Limits`` holds now (for tests and debugging; no principal is named)."""

    buckets: int  # rate buckets remembered
    principals_running: int  # principals with a concurrency slot held or awaited
    tools_running: int  # tools with a concurrency slot held or awaited
    principals_with_sessions: int
    sessions: int


def _ignore(limit: LimitName) -> None:
    pass


class Limits:
    """Rate limits, concurrency caps and session counts per principal (see the module)."""

    def __init__(
        self,
        settings: LimitsSettings | None = None,
        *,
        on_reject: Callable[[LimitName], None] = _ignore,
    ) -> None:
        self._settings = settings if settings is not None else LimitsSettings()
        self._on_reject = on_reject
        self._error = LimitExceeded.with_code(self._settings.error_code)
        self._buckets = BucketTable(self._settings.max_tracked)
        self._principal_caps = KeyedCaps()
        self._tool_caps = KeyedCaps()
        self._sessions: dict[str, int] = {}
        self._rules: dict[str, ToolRule | None] = {}

    @property
    def settings(self) -> LimitsSettings:
        return self._settings

    def reconfigure(self, settings: LimitsSettings) -> None:
        """Apply a reloaded table; buckets, held slots and session counts carry over."""
        self._settings = settings
        self._error = LimitExceeded.with_code(settings.error_code)
        self._buckets.max_size = settings.max_tracked
        self._rules.clear()

    # -- rates ------------------------------------------------------------------------------

    def check_request(self, principal: str, method: str) -> None:
        """Take a token for one request of ``principal``; raises ``LimitExceeded``."""
        s = self._settings
        if method in HANDSHAKES:
            self._take(
                HANDSHAKE_RATE,
                (HANDSHAKE_RATE, principal),
                s.handshakes_per_second,
                s.handshake_burst,
                f"too many {method} requests",
            )
        else:
            self._take(
                PRINCIPAL_RATE,
                (PRINCIPAL_RATE, principal),
                s.requests_per_second,
                s.burst,
                "too many requests",
            )

    def check_tool(self, principal: str, tool: str) -> None:
        """Take a token from ``tool``'s rule bucket for ``principal``, if a rule has a rate."""
        rule = self._rule(tool)
        if rule is not None:
            self._take(
                TOOL_RATE,
                (TOOL_RATE, principal, tool),
                rule.rate,
                rule.capacity,
                f"too many calls of tool {tool!r}",
            )

    def _take(self, limit: LimitName, key: Hashable, rate: float, burst: int, what: str) -> None:
        if rate <= 0:
            return
        wait = self._buckets.take(key, trio.current_time(), rate, burst)
        if wait > 0:
            raise self._refuse(limit, wait, what)

    def _rule(self, tool: str) -> ToolRule | None:
        try:
            return self._rules[tool]
        except KeyError:
            if len(self._rules) >= RULE_CACHE:
                self._rules.clear()
            rule = self._rules[tool] = self._settings.rule_for(tool)
            return rule

    # -- concurrency --------------------------------------------------------------------------

    def running(self, principal: str, tool: str | None = None) -> Running:
        """``async with``: hold a slot under the principal's cap and, for a tool with a rule,
        the tool's.

        Waits up to the queue timeout (the tool rule's, else ``[limits]``'s) for both, then
        raises ``LimitExceeded``. Slots are given back when the block ends, however it ends.
        """
        rule = None if tool is None else self._rule(tool)
        return Running(self, principal, tool, rule)

    async def _hold(self, limit: LimitName, key: str, total: int, deadline: float) -> None:
        """Take a slot of ``key`` under ``limit`` (give it back with ``_release``)."""
        caps = self._tool_caps if limit == TOOL_CONCURRENCY else self._principal_caps
        if await caps.acquire(key, total, deadline):
            return
        if limit == TOOL_CONCURRENCY:
            raise self._refuse(limit, CONCURRENCY_RETRY, f"tool {key!r} is busy")
        raise self._refuse(limit, CONCURRENCY_RETRY, "too many requests running")

    def _release(self, limit: LimitName, key: str) -> None:
        caps = self._tool_caps if limit == TOOL_CONCURRENCY else self._principal_caps
        caps.release(key)

    # -- sessions -----------------------------------------------------------------------------

    def open_session(self, principal: str) -> None:
        """Count a new session of ``principal``, or raise ``LimitExceeded`` if it has its cap."""
        cap = self._settings.max_sessions_per_principal
        count = self._sessions.get(principal, 0)
        if cap and count >= cap:
            raise self._refuse(PRINCIPAL_SESSIONS, SESSIONS_RETRY, "too many open sessions")
        self._sessions[principal] = count + 1

    def close_session(self, principal: str) -> None:
        """A session of ``principal`` ended (once per successful ``open_session``)."""
        count = self._sessions.pop(principal, 0)
        if count > 1:
            self._sessions[principal] = count - 1

    # -- quotas inside tools ------------------------------------------------------------------

    def tool_quota_result(self, exc: RateLimited) -> dict[str, Any]:
        """The ``isError`` result for a tool that raised ``RateLimited`` (counted)."""
        self._on_reject(TOOL_QUOTA)
        return rate_limited_result(exc)

    def quota_error(self, exc: RateLimited) -> LimitExceeded:
        """For a resource or prompt that raised ``RateLimited``: an error to raise (counted)."""
        retry_after = 1.0 if exc.retry_after is None else exc.retry_after
        return self._refuse(TOOL_QUOTA, retry_after, exc.reason)

    # -- common -------------------------------------------------------------------------------

    def _refuse(self, limit: LimitName, retry_after: float, what: str) -> LimitExceeded:
        self._on_reject(limit)
        return self._error(f"{what}; {_retry(retry_after)}", limit=limit, retry_after=retry_after)

    def statistics(self) -> LimitsStatistics:
        return LimitsStatistics(
            buckets=len(self._buckets),
            principals_running=len(self._principal_caps),
            tools_running=len(self._tool_caps),
            principals_with_sessions=len(self._sessions),
            sessions=sum(self._sessions.values()),
        )


class Running:
    """The slots one call holds (see ``Limits.running``); a class, not a generator-based
    context manager, because it is entered once per call on the hot path."""

    __slots__ = ("_held", "_limits", "_principal", "_rule", "_tool")

    def __init__(
        self, limits: Limits, principal: str, tool: str | None, rule: ToolRule | None
    ) -> None:
        self._limits = limits
        self._principal = principal
        self._tool = tool
        self._rule = rule
        self._held: list[tuple[LimitName, str]] = []

    async def __aenter__(self) -> None:
        limits, rule = self._limits, self._rule
        settings = limits.settings
        timeout = settings.queue_timeout_seconds
        if rule is not None and rule.queue_timeout_seconds is not None:
            timeout = rule.queue_timeout_seconds
        deadline = trio.current_time() + timeout
        wanted: list[tuple[LimitName, str, int]] = [
            (PRINCIPAL_CONCURRENCY, self._principal, settings.max_concurrent_per_principal)
        ]
        if rule is not None and self._tool is not None:
            wanted.append((TOOL_CONCURRENCY, self._tool, rule.max_concurrent))
        try:
            for limit, key, total in wanted:
                if total:
                    await limits._hold(limit, key, total, deadline)
                    self._held.append((limit, key))
        except BaseException:
            self._release()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._held:
            self._limits._release(*self._held.pop())


def _retry(seconds: float) -> str:
    whole = retry_after_seconds(seconds)
    return f"retry after {whole} second{'' if whole == 1 else 's'}"
