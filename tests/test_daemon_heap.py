"""mcpd.daemon.settle_heap: start-up's objects leave the cyclic GC's full collections, and a
cycle made before it is still collected (a reload's leftovers are not kept forever)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from mcpd.daemon import settle_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic GC frees it


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_settling_freezes_what_lives_and_collects_what_does_not(unfrozen: None) -> None:
    kept, dropped = Node(), Node()
    dropped_ref = weakref.ref(dropped)
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert all(tracked is not kept for tracked in gc.get_objects())  # out of the GC's sight
    assert kept.me is kept  # and alive
    del dropped
    settle_heap()  # a reload: unfreeze, collect, freeze again
    assert dropped_ref() is None
    assert gc.get_freeze_count() > 0
