"""Token buckets on trio's clock, in a table whose size is bounded.

A bucket holds up to ``burst`` tokens and gains ``rate`` per second; a request takes one, or
is refused with the seconds until one will be there (a refused request takes nothing). Time
is whatever the caller passes, ``trio.current_time()`` in the daemon, so MockClock tests are
exact.

A bucket that has refilled completely is indistinguishable from a new one, so the table
forgets it: each take first drops such buckets from the least recently used end. Beyond
``max_size`` buckets it also forgets the least recently used one even if it was not full
(that caller starts again with a full bucket: more lenient, never stricter).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class Bucket:
    """Tokens at time ``stamp``; ``full_at`` is when it will be full again if left alone."""

    tokens: float
    stamp: float
    full_at: float

    def take(self, now: float, rate: float, burst: int) -> float:
        """Take one token at ``now``: 0.0 if taken, else the seconds until one is there."""
        tokens = min(float(burst), self.tokens + (now - self.stamp) * rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / rate
        self.tokens, self.stamp = tokens, now
        self.full_at = now + (burst - tokens) / rate
        return wait


class BucketTable:
    """Buckets by key, least recently used first, at most ``max_size`` of them."""

    __slots__ = ("_buckets", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buckets: OrderedDict[Hashable, Bucket] = OrderedDict()

    def take(self, key: Hashable, now: float, rate: float, burst: int) -> float:
        """Take a token from ``key``'s bucket (a new one starts full); see ``Bucket.take``."""
        self._forget_full(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(float(burst), now, now)
            while len(self._buckets) > self.max_size:  # more than one after a lowered bound
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now, rate, burst)

    def _forget_full(self, now: float) -> None:
        # Amortised O(1): each bucket is dropped at most once per time it was added.
        buckets = self._buckets
        while buckets:
            key = next(iter(buckets))
            if buckets[key].full_at > now:
                return
            del buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._buckets
