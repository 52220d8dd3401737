"""A served request leaves no reference cycle behind: its objects are freed as soon as it is
answered, never by the cyclic GC (whose full collections stall the loop for every client).

Read from the daemon's own ``python_gc_objects_collected_total`` on ``/metrics`` while a real
client makes calls: each leaked cycle would be collected, and counted, by the generation-0
collections those calls set off.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from support.client import Legacy, modern_post
from support.daemon import Daemon

CALLS = 1000
# Start-up, reloads and the odd exception leave a few cycles; a request that left even one
# small cycle behind (a callback referring back to its owner: a handful of objects) would
# leave several thousand objects over CALLS requests.
ALLOWED = CALLS // 4


def gc_figures(http: httpx.Client, daemon: Daemon) -> tuple[float, float]:
    """(objects the cyclic GC freed, collections run) so far, over every generation."""
    text = http.get(daemon.url.removesuffix("/mcp") + "/metrics").text

    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M))

    return total("python_gc_objects_collected_total"), total("python_gc_collections_total")


def garbage_of(http: httpx.Client, daemon: Daemon, call: Callable[[], object]) -> float:
    for _ in range(50):  # whatever the first calls set up once (caches, lazy imports)
        call()
    collected, collections = gc_figures(http, daemon)
    for _ in range(CALLS):
        call()
    collected_after, collections_after = gc_figures(http, daemon)
    assert collections_after > collections  # the calls did set collections off
    return collected_after - collected


def test_a_session_call_leaves_no_cycle(daemon: Daemon, http: httpx.Client) -> None:
    session = Legacy(http, daemon.url).initialize()
    assert garbage_of(http, daemon, lambda: session.call("echo", {"text": "x"})) < ALLOWED


def test_a_stateless_call_leaves_no_cycle(daemon: Daemon, http: httpx.Client) -> None:
    def call() -> None:
        answer = modern_post(
            http, daemon.url, "tools/call", {"name": "echo", "arguments": {"text": "x"}}
        )
        assert answer.status_code == 200

    assert garbage_of(http, daemon, call) < ALLOWED
