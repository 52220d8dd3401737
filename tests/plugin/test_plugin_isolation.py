"""``isolation="process"``: sync tools in real, killable worker processes (trio-parallel).

Every test that runs a call opens its own pool (``worker_processes``), as the daemon does, so
its workers start after the fixture plugins were put on ``sys.path`` and end with the test.
Nothing here waits on time: waits are bounded polls that only turn a hang into a failure.
"""

from __future__ import annotations

import os
import threading
import traceback
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import trio_parallel

import mcpd
from mcpd.plugin.context import Context
from mcpd.plugin.errors import ToolDefinitionError, ToolError
from mcpd.plugin.isolation import WorkerError, check_importable, worker_processes
from mcpd.plugin.testing import MemoryChannel, call_tool

BOUND = 60.0  # seconds: only turns a hang into a failure


@mcpd.tool(isolation="process")
def boom() -> str:
    """Raise an ordinary exception in the worker."""
    raise LookupError("nothing under that key")


@mcpd.tool(isolation="process")
def ask_in_worker(ctx: mcpd.Context) -> str:
    """Try to ask the client for input from a worker process."""
    answer = trio.from_thread.run(ctx.elicit, "Name?", {"type": "object", "properties": {}})
    return str(answer)


def replaced() -> int:
    return 1


REPLACED = mcpd.tool(isolation="process")(replaced)


def replaced() -> int:  # the module's name now finds another function
    return 2


@pytest.fixture
def fixture(installed: Path) -> ModuleType:
    import mcpd_fixture_tools

    return mcpd_fixture_tools


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- definition ---------------------------------------------------------------------------------


def test_the_default_is_a_worker_thread() -> None:
    @mcpd.tool
    def plain() -> str:
        return "thread"

    assert plain.isolation == "thread"
    assert boom.isolation == "process"


def test_an_async_tool_cannot_use_a_process() -> None:
    with pytest.raises(ToolDefinitionError, match="async tool runs on the event loop"):

        @mcpd.tool(isolation="process")
        async def coroutine() -> str:
            return "never"


def test_an_unknown_isolation_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="isolation must be one of thread, process"):
        mcpd.tool(isolation="container")(os.getpid)  # type: ignore[call-overload]


def test_a_nested_function_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="module-level function"):

        @mcpd.tool(isolation="process")
        def nested() -> str:
            return "the worker could not import me"


def test_a_function_the_worker_would_not_find_is_refused_at_load() -> None:
    with pytest.raises(ToolDefinitionError, match="which is not this tool"):
        check_importable(REPLACED.fn, REPLACED, REPLACED.name)
    check_importable(boom.fn, boom, boom.name)  # found as the module's attribute


# -- results, errors, the context ---------------------------------------------------------------


async def test_the_call_runs_in_another_process(fixture: ModuleType) -> None:
    async with worker_processes(1):
        result = await call_tool(fixture.isolated_pid)
    pid = result["structuredContent"]["result"]
    assert isinstance(pid, int)
    assert pid != os.getpid()


async def test_progress_and_logs_reach_the_real_context(fixture: ModuleType) -> None:
    channel = MemoryChannel(progress_token="tok", log_level="info")
    async with worker_processes(1):
        result = await call_tool(fixture.isolated_progress, {"steps": 3}, channel=channel)
    assert result["content"][0]["text"].startswith("3 steps in process ")
    assert channel.progress == [
        {"progressToken": "tok", "progress": step, "total": 3, "message": f"step {step}"}
        for step in (1, 2, 3)
    ]
    assert channel.logs == [{"level": "info", "data": {"steps": 3}, "logger": "isolated"}]


async def test_the_clients_choices_still_apply(fixture: ModuleType) -> None:
    channel = MemoryChannel(progress_token=None, log_level="error")
    async with worker_processes(1):
        await call_tool(fixture.isolated_progress, {"steps": 2}, channel=channel)
    assert channel.notifications == []  # no progress token, and info is below "error"


async def test_an_unpicklable_result_is_a_clean_error(fixture: ModuleType) -> None:
    async with worker_processes(1):
        result = await call_tool(fixture.isolated_lock)
        again = await call_tool(fixture.isolated_pid)  # the worker is fine
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "isolated_lock returned a value that cannot be sent back" in text
    assert "lock" in text
    assert again["structuredContent"]["result"] != os.getpid()


async def test_unpicklable_arguments_are_a_clean_error(fixture: ModuleType) -> None:
    tool = fixture.isolated_fail
    with pytest.raises(ToolError, match="arguments of tool isolated_fail cannot be sent"):
        await tool.invoke({"message": threading.Lock()}, Context(MemoryChannel()))


async def test_a_tool_error_crosses_with_its_message(fixture: ModuleType) -> None:
    async with worker_processes(1):
        result = await call_tool(fixture.isolated_fail, {"message": "no such thing"})
    assert result == {"content": [{"type": "text", "text": "no such thing"}], "isError": True}


async def test_an_exception_crosses_with_its_traceback() -> None:
    async with worker_processes(1):
        with pytest.raises(LookupError, match="nothing under that key") as raised:
            await call_tool(boom)
    frames = traceback.extract_tb(raised.value.__traceback__)
    assert any(frame.name == "boom" and frame.filename == __file__ for frame in frames)


async def test_sys_exit_fails_the_call_only(fixture: ModuleType) -> None:
    async with worker_processes(1):
        with pytest.raises(WorkerError, match=r"raised SystemExit at .*mcpd_fixture_tools\.py"):
            await call_tool(fixture.isolated_exit)
        after = await call_tool(fixture.isolated_pid)
    assert after["structuredContent"]["result"] != os.getpid()


async def test_asking_the_client_is_unavailable_in_a_worker() -> None:
    async with worker_processes(1):
        result = await call_tool(ask_in_worker)
    assert result["isError"] is True
    assert "cannot ask the client for input" in result["content"][0]["text"]


# -- cancellation and the pool ------------------------------------------------------------------


async def test_cancelling_kills_a_worker_that_never_checks(
    fixture: ModuleType, tmp_path: Path
) -> None:
    channel = MemoryChannel()
    arguments = {"marker_dir": str(tmp_path), "tag": "spin"}
    async with worker_processes(1), trio.open_nursery() as nursery:
        nursery.start_soon(partial(call_tool, fixture.isolated_spin, arguments, channel=channel))
        with trio.fail_after(BOUND):
            await channel.wait_for("notifications/progress")  # relayed while it spins
        pid = int(await trio.Path(tmp_path / "spin.pid").read_text())  # written before that
        assert alive(pid)
        nursery.cancel_scope.cancel()
    assert not alive(pid)  # the call ended once its worker was dead, not before


async def test_at_most_max_workers_run_at_once(fixture: ModuleType) -> None:
    pids: list[int] = []

    async def one() -> None:
        pids.append((await call_tool(fixture.isolated_pid))["structuredContent"]["result"])

    async with worker_processes(1):
        assert trio_parallel.current_default_worker_limiter().total_tokens == 1
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
    assert len(pids) == 3
    assert len(set(pids)) == 1  # one worker at a time, so the same one served every call


async def test_the_default_bound_is_one_worker_per_cpu() -> None:
    async with worker_processes():
        assert trio_parallel.current_default_worker_limiter().total_tokens == os.cpu_count()


async def test_leaving_the_pool_ends_its_idle_workers(fixture: ModuleType) -> None:
    async with worker_processes(2, idle_timeout=600):
        result: dict[str, Any] = await call_tool(fixture.isolated_pid)
        pid = result["structuredContent"]["result"]
        assert alive(pid)  # idle, kept for the next call
    assert not alive(pid)
