"""Concurrency caps by key: one ``trio.CapacityLimiter`` per key that is in use, none otherwise.

A key's limiter exists only while someone holds or waits for one of its slots: the last one
out (a release, a timeout or a cancellation while queued) removes it, so the table is bounded
by the calls in flight and an idle principal costs nothing. Waiters are served first come,
first served (trio's limiter is fair).
"""

from __future__ import annotations

from collections.abc import Hashable

import trio


class KeyedCaps:
    """Slots by key: at most ``total`` held at once per key, ``total`` given by each caller.

    The cap is read at every acquisition, so a reload that changes it applies to the next
    call (and wakes waiters when it grew); holders above a lowered cap finish as they are.
    """

    __slots__ = ("_limiters",)

    def __init__(self) -> None:
        self._limiters: dict[Hashable, trio.CapacityLimiter] = {}

    async def acquire(self, key: Hashable, borrower: object, total: int, deadline: float) -> bool:
        """Take one of ``key``'s slots for ``borrower``, waiting until ``deadline`` at most.

        True when taken (give it back with ``release``); False when ``deadline`` passed first.
        A cancellation while waiting leaves nothing behind.
        """
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = trio.CapacityLimiter(total)
        elif limiter.total_tokens != total:
            limiter.total_tokens = total
        try:
            limiter.acquire_on_behalf_of_nowait(borrower)
            return True
        except trio.WouldBlock:
            pass
        try:
            with trio.move_on_at(deadline):
                await limiter.acquire_on_behalf_of(borrower)
                return True
            return False
        finally:
            self._forget_if_idle(key, limiter)

    def release(self, key: Hashable, borrower: object) -> None:
        limiter = self._limiters[key]
        limiter.release_on_behalf_of(borrower)
        self._forget_if_idle(key, limiter)

    def _forget_if_idle(self, key: Hashable, limiter: trio.CapacityLimiter) -> None:
        stats = limiter.statistics()
        idle = stats.borrowed_tokens == 0 and stats.tasks_waiting == 0
        if idle and self._limiters.get(key) is limiter:
            del self._limiters[key]

    def __len__(self) -> int:
        """Keys with a slot held or awaited."""
        return len(self._limiters)

    def held(self, key: Hashable) -> int:
        limiter = self._limiters.get(key)
        return 0 if limiter is None else limiter.borrowed_tokens
