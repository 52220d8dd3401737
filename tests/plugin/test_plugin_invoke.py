"""Calling tools: async ones on the event loop, sync ones in worker threads, both cancellable."""

from __future__ import annotations

import threading
import time

import pytest
import trio
import trio.testing

import mcpd
from mcpd.plugin.context import Context
from mcpd.plugin.testing import MemoryChannel, call_tool

WAIT = 10.0  # an upper bound that only turns a hang into a failure


def context() -> Context:
    return Context(MemoryChannel())


@mcpd.tool
async def greet(name: str, ctx: mcpd.Context) -> str:
    await trio.lowlevel.checkpoint()
    return f"hello {name} from request {ctx.request_id}"


@mcpd.tool
def shout(text: str) -> str:
    return text.upper() + "!"


async def test_async_tool_is_awaited_with_its_context() -> None:
    value = await greet.invoke(greet.validate_arguments({"name": "ada"}), context())
    assert value == "hello ada from request 1"


async def test_sync_tool_runs_in_a_worker_thread() -> None:
    seen: list[int] = []

    @mcpd.tool
    def where() -> str:
        seen.append(threading.get_ident())
        return "ok"

    assert await where.invoke({}, context()) == "ok"
    assert seen != [threading.get_ident()]


async def test_event_loop_keeps_running_while_a_sync_tool_blocks() -> None:
    entered, released = threading.Event(), threading.Event()

    @mcpd.tool
    def wait_for_release() -> str:
        entered.set()
        # If this ran on the event loop, the loop could never set `released`.
        return "released" if released.wait(WAIT) else "starved"

    results: list[dict[str, object]] = []

    async def call() -> None:
        results.append(await call_tool(wait_for_release))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await trio.to_thread.run_sync(entered.wait, WAIT)
        ticks = 0
        for _ in range(5):
            await trio.sleep(0.001)
            ticks += 1
        released.set()
    assert ticks == 5
    assert results[0]["content"] == [{"type": "text", "text": "released"}]


async def test_cancelling_an_async_tool_runs_its_finally_with_the_reason() -> None:
    started = trio.Event()
    ended: list[str] = []

    @mcpd.tool
    async def long_wait() -> str:
        try:
            started.set()
            await trio.sleep_forever()
        except trio.Cancelled as exc:
            ended.append(str(exc))
            raise
        finally:
            ended.append("finally")
        return "unreachable"

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(long_wait.invoke, {}, context())
            await started.wait()
            scope.cancel(reason="client disconnected")
    assert scope.cancelled_caught
    assert "client disconnected" in ended[0]
    assert ended[1] == "finally"


async def test_a_sync_tool_that_polls_check_cancelled_stops_promptly() -> None:
    started = threading.Event()
    ended: list[str] = []

    @mcpd.tool
    def busy(ctx: mcpd.Context) -> str:
        try:
            started.set()
            while True:
                ctx.check_cancelled()
                time.sleep(0.001)
        except trio.Cancelled as exc:
            ended.append(str(exc))
            raise
        finally:
            ended.append("finally")

    with trio.move_on_after(WAIT) as deadline, trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy.invoke, {}, context())
            await trio.to_thread.run_sync(started.wait, WAIT)
            scope.cancel(reason="session deleted")
    assert not deadline.cancelled_caught
    assert scope.cancelled_caught
    assert "session deleted" in ended[0]
    assert ended[1] == "finally"


async def test_a_cancelled_sync_tool_never_outlives_its_call() -> None:
    started = threading.Event()
    finished: list[float] = []

    @mcpd.tool
    def stubborn() -> str:
        started.set()
        time.sleep(0.05)  # never checks for cancellation
        finished.append(time.monotonic())
        return "done anyway"

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stubborn.invoke, {}, context())
            await trio.to_thread.run_sync(started.wait, WAIT)
            scope.cancel()
    # The scope only exits once the thread is done: nothing keeps running behind our back.
    assert finished
    assert finished[0] <= time.monotonic()


async def test_check_cancelled_is_a_no_op_in_async_tools() -> None:
    reached = False
    with trio.CancelScope() as scope:
        scope.cancel()
        context().check_cancelled()  # no exception even though the scope is cancelled
        reached = True
        await trio.lowlevel.checkpoint()
    assert reached
    assert scope.cancelled_caught


def test_check_cancelled_is_a_no_op_outside_trio() -> None:
    context().check_cancelled()


async def test_tool_errors_and_crashes_propagate_from_invoke() -> None:
    @mcpd.tool
    def refuse() -> str:
        raise mcpd.ToolError("not today")

    @mcpd.tool
    async def explode() -> str:
        raise KeyError("internal")

    with pytest.raises(mcpd.ToolError, match="not today"):
        await refuse.invoke({}, context())
    with pytest.raises(KeyError):
        await explode.invoke({}, context())


async def test_call_tool_turns_tool_errors_into_error_results() -> None:
    @mcpd.tool
    def refuse() -> str:
        raise mcpd.ToolError("not today")

    assert await call_tool(refuse) == {
        "content": [{"type": "text", "text": "not today"}],
        "isError": True,
    }


async def test_sync_tools_see_the_callers_context_variables() -> None:
    import contextvars

    request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")

    @mcpd.tool
    def which() -> str:
        return request.get()

    request.set("call-7")
    assert await which.invoke({}, context()) == "call-7"


async def test_a_sync_tool_can_report_progress_through_from_thread() -> None:
    @mcpd.tool
    def steps(ctx: mcpd.Context) -> str:
        for step in (1, 2, 3):
            trio.from_thread.run(ctx.report_progress, step, 3)
        return "stepped"

    channel = MemoryChannel()
    await call_tool(steps, channel=channel)
    assert [p["progress"] for p in channel.progress] == [1, 2, 3]


async def test_mock_clock_drives_async_tools(autojump_clock: trio.testing.MockClock) -> None:
    @mcpd.tool
    async def nap(seconds: float) -> str:
        await trio.sleep(seconds)
        return "rested"

    start = trio.current_time()
    assert await nap.invoke({"seconds": 3600}, context()) == "rested"
    assert trio.current_time() - start == pytest.approx(3600)
