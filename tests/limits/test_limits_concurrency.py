"""Concurrency caps with a queue timeout, and sessions per principal, on trio's MockClock.

Real trio tasks in a real nursery; ``autojump_clock`` makes every wait exact.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mcpd.limits.limiter import CONCURRENCY_RETRY, SESSIONS_RETRY, Limits
from mcpd.limits.names import LimitName
from mcpd.limits.settings import LimitsSettings
from mcpd.protocol.errors import LimitExceeded


def limits(rejected: list[LimitName] | None = None, **settings: object) -> Limits:
    record = rejected.append if rejected is not None else (lambda limit: None)
    return Limits(LimitsSettings.model_validate(settings), on_reject=record)


async def hold(lim: Limits, principal: str, tool: str | None, seconds: float, log: list) -> None:
    """A call that runs ``seconds`` under the caps, logging when it started and ended."""
    async with lim.running(principal, tool):
        log.append(("start", principal, tool, trio.current_time()))
        await trio.sleep(seconds)
    log.append(("end", principal, tool, trio.current_time()))


async def test_queued_call_starts_when_a_slot_frees(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(max_concurrent_per_principal=2, queue_timeout_seconds=10)
    log: list = []
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        for seconds in (3, 5, 1):
            nursery.start_soon(hold, lim, "alice", None, seconds, log)
            await trio.testing.wait_all_tasks_blocked()
    starts = [entry[3] - t0 for entry in log if entry[0] == "start"]
    assert starts == [0, 0, 3]  # the third waited for the first to end
    assert lim.statistics().principals_running == 0


async def test_call_that_cannot_start_within_the_queue_timeout_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rejected: list[LimitName] = []
    lim = limits(rejected, max_concurrent_per_principal=1, queue_timeout_seconds=2)
    log: list = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, lim, "alice", None, 5, log)
        await trio.testing.wait_all_tasks_blocked()
        t0 = trio.current_time()
        with pytest.raises(LimitExceeded) as caught:
            async with lim.running("alice"):
                pytest.fail("ran over the cap")
        assert trio.current_time() - t0 == 2  # it waited the queue timeout, no longer
        async with lim.running("bob"):  # another principal is not held up
            pass
    error = caught.value
    assert (error.limit, error.retry_after, error.http_status) == (
        "principal_concurrency",
        CONCURRENCY_RETRY,
        429,
    )
    assert rejected == ["principal_concurrency"]


async def test_zero_queue_timeout_refuses_at_once_but_takes_a_free_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(max_concurrent_per_principal=1, queue_timeout_seconds=0)
    async with lim.running("alice"):  # free: taken without waiting
        t0 = trio.current_time()
        with pytest.raises(LimitExceeded):
            async with lim.running("alice"):
                pass
        assert trio.current_time() == t0


async def test_cancellation_while_queued_leaves_nothing_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(
        max_concurrent_per_principal=1,
        queue_timeout_seconds=60,
        tools=[{"tools": ["slow"], "max_concurrent": 1}],
    )
    log: list = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, lim, "alice", "slow", 10, log)
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as waiters:
            waiters.start_soon(hold, lim, "alice", "slow", 1, log)  # waits on alice's cap
            waiters.start_soon(hold, lim, "alice", None, 1, log)  # the same, without a tool
            waiters.start_soon(hold, lim, "bob", "slow", 1, log)  # has his slot, waits on slow's
            await trio.sleep(0.5)
            assert (lim.statistics().principals_running, lim.statistics().tools_running) == (2, 1)
            waiters.cancel_scope.cancel(reason="client disconnected")
        # Only the running call holds anything now: bob's slot went back, no waiter is left.
        assert (lim.statistics().principals_running, lim.statistics().tools_running) == (1, 1)
        t0 = trio.current_time()
        async with lim.running("alice", "slow"):  # next in line once the holder ends
            assert trio.current_time() - t0 == 9.5
    assert [entry[1:3] for entry in log if entry[0] == "start"] == [("alice", "slow")]
    assert (lim.statistics().principals_running, lim.statistics().tools_running) == (0, 0)


async def test_a_cancelled_waiter_gives_its_place_to_the_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(max_concurrent_per_principal=1, queue_timeout_seconds=60)
    log: list = []
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, lim, "alice", None, 4, log)
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as cancelled:
            async with trio.open_nursery() as inner:
                inner.start_soon(hold, lim, "alice", "first-in-line", 1, log)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(hold, lim, "alice", "second-in-line", 1, log)
                await trio.testing.wait_all_tasks_blocked()
                cancelled.cancel()
    starts = {entry[2]: entry[3] - t0 for entry in log if entry[0] == "start"}
    assert starts == {None: 0, "second-in-line": 4}
    assert lim.statistics().principals_running == 0


async def test_tool_cap_is_shared_by_principals_with_its_own_queue_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rejected: list[LimitName] = []
    lim = limits(
        rejected,
        queue_timeout_seconds=100,
        tools=[{"tools": ["render_*"], "max_concurrent": 1, "queue_timeout_seconds": 3}],
    )
    log: list = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, lim, "alice", "render_pdf", 10, log)
        await trio.testing.wait_all_tasks_blocked()
        t0 = trio.current_time()
        with pytest.raises(LimitExceeded) as caught:
            async with lim.running("bob", "render_pdf"):
                pass
        assert trio.current_time() - t0 == 3
        async with lim.running("bob", "render_png"):  # a budget per tool, even in one rule
            pass
        async with lim.running("bob", "echo"):  # no rule: only bob's own cap applies
            pass
    assert caught.value.limit == "tool_concurrency"
    assert "render_pdf" in caught.value.message
    assert rejected == ["tool_concurrency"]
    # Bob's principal slot was given back when the tool cap refused him.
    assert lim.statistics().principals_running == 0


async def test_raising_the_cap_on_reload_lets_waiters_in(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(max_concurrent_per_principal=1, queue_timeout_seconds=60)
    log: list = []
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, lim, "alice", None, 10, log)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(hold, lim, "alice", "a", 1, log)
        await trio.sleep(2)
        lim.reconfigure(LimitsSettings(max_concurrent_per_principal=3, queue_timeout_seconds=60))
        nursery.start_soon(hold, lim, "alice", "b", 1, log)  # its acquisition raises the cap
    starts = {entry[2]: entry[3] - t0 for entry in log if entry[0] == "start"}
    assert starts == {None: 0, "a": 2, "b": 2}


async def test_no_cap_configured_holds_nothing(autojump_clock: trio.testing.MockClock) -> None:
    lim = limits(max_concurrent_per_principal=0)
    async with lim.running("alice"), lim.running("alice"), lim.running("alice", "echo"):
        assert lim.statistics().principals_running == 0


async def test_slot_is_released_when_the_call_fails(autojump_clock: trio.testing.MockClock) -> None:
    lim = limits(max_concurrent_per_principal=1, queue_timeout_seconds=0)
    with pytest.raises(RuntimeError):
        async with lim.running("alice"):
            raise RuntimeError("tool crashed")
    async with lim.running("alice"):
        pass
    assert lim.statistics().principals_running == 0


def test_sessions_per_principal() -> None:
    rejected: list[LimitName] = []
    lim = limits(rejected, max_sessions_per_principal=2)
    lim.open_session("mallory")
    lim.open_session("mallory")
    with pytest.raises(LimitExceeded) as caught:
        lim.open_session("mallory")
    assert (caught.value.limit, caught.value.retry_after) == ("principal_sessions", SESSIONS_RETRY)
    lim.open_session("alice")  # others still get sessions
    assert (lim.statistics().sessions, lim.statistics().principals_with_sessions) == (3, 2)
    lim.close_session("mallory")
    lim.open_session("mallory")  # one ended, so one more may start
    for _ in range(2):
        lim.close_session("mallory")
    lim.close_session("alice")
    assert (lim.statistics().sessions, lim.statistics().principals_with_sessions) == (0, 0)
    lim.close_session("alice")  # an extra release does not go below zero
    assert lim.statistics().sessions == 0
    assert rejected == ["principal_sessions"]


def test_session_counts_survive_a_reload_that_lowers_the_cap() -> None:
    lim = limits(max_sessions_per_principal=0)  # off, but still counted
    for _ in range(5):
        lim.open_session("alice")
    lim.reconfigure(LimitsSettings(max_sessions_per_principal=4))
    with pytest.raises(LimitExceeded):
        lim.open_session("alice")
    lim.close_session("alice")
    lim.close_session("alice")
    lim.open_session("alice")
    assert lim.statistics().sessions == 4


async def test_waiters_are_served_in_arrival_order_and_newcomers_queue_behind_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(max_concurrent_per_principal=1, queue_timeout_seconds=60)
    log: list = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, lim, "alice", "holder", 2, log)
        await trio.testing.wait_all_tasks_blocked()
        for name in ("w1", "w2", "w3"):
            nursery.start_soon(hold, lim, "alice", name, 1, log)
            await trio.testing.wait_all_tasks_blocked()
    order = [entry[2] for entry in log if entry[0] == "start"]
    assert order == ["holder", "w1", "w2", "w3"]
    assert lim.statistics().principals_running == 0


async def test_a_slot_handed_to_a_waiter_cancelled_at_that_moment_goes_to_the_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lim = limits(max_concurrent_per_principal=1, queue_timeout_seconds=60)
    log: list = []
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        doomed = trio.CancelScope()

        async def doomed_call() -> None:
            with doomed:
                await hold(lim, "alice", "doomed", 1, log)

        async with lim.running("alice"):
            nursery.start_soon(doomed_call)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(hold, lim, "alice", "next", 1, log)
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(3)
            # In one scheduler pass, "doomed" is cancelled while queued and then handed the
            # slot this block releases, before it runs: the slot must reach "next".
            doomed.cancel()
    starts = {entry[2]: entry[3] - t0 for entry in log if entry[0] == "start"}
    assert starts == {"next": 3}
    assert lim.statistics().principals_running == 0
