"""A bounded queue of messages for one reader, filled from synchronous code.

Change notices and server-to-client messages are produced where nothing may block (a notice
fans out to every listener at once); a slow reader must not hold anyone up, so when the box is
full the oldest message is dropped.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class Mailbox(Generic[T]):
    """``put`` never blocks; ``get`` waits for the next message."""

    __slots__ = ("_items", "_ready")

    def __init__(self, limit: int) -> None:
        self._items: deque[T] = deque(maxlen=limit)
        self._ready: trio.Event | None = None

    def put(self, item: T) -> None:
        self._items.append(item)
        if self._ready is not None:
            self._ready.set()

    async def get(self) -> T:
        while not self._items:
            self._ready = trio.Event()
            await self._ready.wait()
        return self._items.popleft()

    def pending(self) -> list[T]:
        """What is waiting, oldest first (left in the box)."""
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)
