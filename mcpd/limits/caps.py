"""Concurrency caps by key: a count of slots held per key that is in use, nothing otherwise.

A key's entry exists only while someone holds or waits for one of its slots: the last one out
(a release, a timeout or a cancellation while queued) removes it, so the table is bounded by
the calls in flight and an idle principal costs nothing. Waiters are served first come, first
served: a newcomer never takes a slot ahead of one already waiting.

Not ``trio.CapacityLimiter``: one was made and dropped per call (the common case is a
principal with one call at a time), and its borrower bookkeeping and statistics cost ~3% of a
request. A slot taken without waiting is a counter increment here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

import trio


class _Slots:
    __slots__ = ("held", "total", "waiters")

    def __init__(self, total: int) -> None:
        self.held = 0
        self.total = total
        # Oldest first; an event is set when a slot has been handed to its waiter.
        self.waiters: deque[trio.Event] = deque()


class KeyedCaps:
    """Slots by key: at most ``total`` held at once per key, ``total`` given by each caller.

    The cap is read at every acquisition, so a reload that changes it applies to the next
    call (and wakes waiters when it grew); holders above a lowered cap finish as they are.
    """

    __slots__ = ("_slots",)

    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slots] = {}

    async def acquire(self, key: Hashable, total: int, deadline: float) -> bool:
        """Take one of ``key``'s slots, waiting until ``deadline`` at most.

        True when taken (give it back with ``release``); False when ``deadline`` passed first.
        A cancellation while waiting leaves nothing behind.
        """
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = _Slots(total)
        elif slots.total != total:
            slots.total = total
            self._hand_over(slots)  # a grown cap lets waiters in
        if slots.held < total and not slots.waiters:
            slots.held += 1
            return True
        granted = trio.Event()
        slots.waiters.append(granted)
        try:
            with trio.move_on_at(deadline):
                await granted.wait()
            return granted.is_set()  # handed over, even if the deadline came at the same time
        except BaseException:
            if granted.is_set():  # handed over, then cancelled before it could be used
                self.release(key)
            raise
        finally:
            if not granted.is_set():
                slots.waiters.remove(granted)
                self._forget_if_idle(key, slots)

    def release(self, key: Hashable) -> None:
        slots = self._slots[key]
        slots.held -= 1
        self._hand_over(slots)
        self._forget_if_idle(key, slots)

    @staticmethod
    def _hand_over(slots: _Slots) -> None:
        """Give free slots to the oldest waiters."""
        while slots.waiters and slots.held < slots.total:
            slots.held += 1
            slots.waiters.popleft().set()

    def _forget_if_idle(self, key: Hashable, slots: _Slots) -> None:
        if not slots.held and not slots.waiters and self._slots.get(key) is slots:
            del self._slots[key]

    def __len__(self) -> int:
        """Keys with a slot held or awaited."""
        return len(self._slots)

    def held(self, key: Hashable) -> int:
        slots = self._slots.get(key)
        return 0 if slots is None else slots.held
