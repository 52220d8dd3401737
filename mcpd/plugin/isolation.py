"""Sync tools in killable worker processes: ``@mcpd.tool(isolation="process")``.

A sync tool normally runs in a worker thread, and nothing can stop a thread from outside: a
call that never checks ``ctx.check_cancelled()`` runs to its end, long after its client left.
With ``isolation="process"`` the call runs in a worker process of trio-parallel's pool
instead, and cancelling the call (disconnect, ``notifications/cancelled``, timeout, session
end, shutdown) kills that process: the call ends at once.

What crosses the process boundary, and how:

- the function, by reference: the worker imports the tool's module and looks it up by its
  qualified name (so it must be a module-level function);
- the validated arguments, the return value and a raised exception (with its traceback, no
  frame locals), pickled here, so a value that cannot be pickled becomes a clean
  ``ToolError`` naming the problem instead of a broken worker;
- the ``Context``: in the worker the tool gets a ``Context`` whose progress, log and
  close-stream messages travel back over a Unix socket to the real one while the call runs.
  Asking the client for input does not cross (``InputUnavailable``).

In the worker the tool runs in a thread of the worker's own trio loop, so one body of code
serves both isolations: ``trio.from_thread.run(ctx.report_progress, n)`` works, and
``ctx.check_cancelled()`` never fires (a cancelled call's worker is killed instead).

The daemon owns the pool (``worker_processes``): how many workers run at once, how long an
idle one lives, and the end of all of them at shutdown. Each worker also watches its parent
and exits when the daemon is gone, so not even a killed daemon leaves workers behind. What
runs inside a worker is ``mcpd.plugin.worker``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pickle
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Any, Final, Literal

import structlog
import trio
import trio_parallel

from mcpd.plugin.context import Context
from mcpd.plugin.errors import ToolDefinitionError, ToolError
from mcpd.plugin.worker import PROTOCOL, Job, Outcome, Snapshot, detail, lookup, run_job

log = structlog.get_logger("mcpd.tools")

Isolation = Literal["thread", "process"]
ISOLATIONS: Final = ("thread", "process")
DEFAULT_IDLE_TIMEOUT: Final = 120.0
EXIT_GRACE: Final = 2.0  # seconds idle workers get to exit at shutdown before being killed
PARENT_POLL: Final = 0.5  # seconds between a worker's checks that the daemon is still there
RELAY_LINE_LIMIT: Final = 4 * 1024 * 1024  # bytes of one relayed message
CAPABILITIES: Final = ("elicitation", "sampling", "roots")


class WorkerError(Exception):
    """An isolated call failed outside the tool's own code: its worker process died, or the
    tool raised something (``SystemExit``, an unpicklable exception) that cannot come back.

    The runtime treats it like any unexpected exception: the client gets an ``isError``
    result with a generic text, the daemon's log gets the details.
    """


# -- definition time ------------------------------------------------------------------------


def check_isolation(
    isolation: object, fn: Callable[..., Any], tool_name: str, *, is_async: bool
) -> Isolation:
    """The validated ``isolation`` of a tool; raises ``ToolDefinitionError``."""
    if isolation == "thread":
        return "thread"
    if isolation != "process":
        raise ToolDefinitionError(
            f"tool {tool_name!r}: isolation must be one of {', '.join(ISOLATIONS)}, "
            f"got {isolation!r}"
        )
    if is_async:
        raise ToolDefinitionError(
            f'tool {tool_name!r}: isolation="process" runs a plain (sync) function in a worker '
            "process; an async tool runs on the event loop and cannot use it"
        )
    module, qualname = _reference(fn)
    if module == "__main__" or "<" in qualname:
        raise ToolDefinitionError(
            f'tool {tool_name!r}: isolation="process" needs a module-level function the worker '
            f"process can import, not {module}.{qualname}"
        )
    return "process"


def check_importable(fn: Callable[..., Any], tool: object, tool_name: str) -> None:
    """Raise ``ToolDefinitionError`` unless the worker will find ``fn`` by its name.

    Run once the plugin module has finished importing (at load time), when the module's
    attribute holds the ``Tool`` (or the function itself).
    """
    module, qualname = _reference(fn)
    try:
        found = lookup(module, qualname)
    except (ImportError, AttributeError):
        found = None
    if found is not fn and found is not tool:
        raise ToolDefinitionError(
            f'tool {tool_name!r}: isolation="process" looks the function up as '
            f"{module}.{qualname}, which is not this tool"
        )


def _reference(fn: Callable[..., Any]) -> tuple[str, str]:
    return str(getattr(fn, "__module__", "")), str(getattr(fn, "__qualname__", ""))


# -- the pool -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def worker_processes(
    max_workers: int = 0, idle_timeout: float = DEFAULT_IDLE_TIMEOUT
) -> AsyncIterator[None]:
    """Own the worker pool for this task and every task started below it.

    At most ``max_workers`` isolated calls run at once (0: one per CPU); an idle worker exits
    after ``idle_timeout`` seconds. Leaving the block ends every idle worker (they get
    ``EXIT_GRACE`` seconds, then are killed); calls still running there must have been
    cancelled first, which kills their workers.

    Example::

        async with worker_processes(4, idle_timeout=60):
            await serve()
    """
    limiter = trio_parallel.current_default_worker_limiter()
    limiter.total_tokens = max_workers or os.cpu_count() or 1
    watch = functools.partial(exit_with_parent, os.getpid())
    try:
        async with trio_parallel.cache_scope(
            idle_timeout=idle_timeout, init=watch, grace_period=EXIT_GRACE
        ):
            yield
    except trio_parallel.BrokenWorkerError as exc:
        # Raised at exit when a worker had to be killed: nothing is lost by then.
        log.warning("isolation.unclean_exit", error=str(exc.args[0]) if exc.args else "")


def exit_with_parent(parent: int) -> None:
    """In a worker: exit as soon as ``parent`` (the daemon) is gone, whatever the tool does."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os._exit(1)

    threading.Thread(target=watch, name="mcpd-parent-watch", daemon=True).start()


# -- one call, in the daemon ----------------------------------------------------------------


async def run_in_process(
    tool_name: str,
    fn: Callable[..., Any],
    arguments: Mapping[str, Any],
    context_parameter: str | None,
    context: Context,
) -> Any:
    """Call ``fn(**arguments)`` in a worker process; its return value, or raise what it raised.

    Cancellation kills the worker and raises ``trio.Cancelled`` here at once.
    """
    job = Job(_reference(fn), _pickled_arguments(arguments, tool_name))
    if context_parameter is None:
        outcome = await _run(job)
    else:
        outcome = await _run_with_relay(
            replace(job, context=_snapshot(context, context_parameter)), context
        )
    return _unwrap(outcome, tool_name)


def _pickled_arguments(arguments: Mapping[str, Any], tool_name: str) -> bytes:
    try:
        return pickle.dumps(dict(arguments), protocol=PROTOCOL)
    except Exception as exc:
        raise ToolError(
            f"the arguments of tool {tool_name} cannot be sent to its worker process "
            f"({detail(exc)})"
        ) from None


def _snapshot(context: Context, parameter: str) -> Snapshot:
    supported = frozenset(c for c in CAPABILITIES if context.client_supports(c))
    return Snapshot(
        parameter,
        context.request_id,
        context.session_id,
        context.revision,
        supported,
        context.principal,
    )


async def _run(job: Job) -> Outcome:
    """Run ``job`` in a worker; errors come back as data (this may run inside a nursery)."""
    try:
        outcome: Outcome = await trio_parallel.run_sync(run_job, job, kill_on_cancel=True)
    except trio_parallel.BrokenWorkerError as exc:
        process = exc.args[-1] if exc.args else None
        code = getattr(process, "exitcode", None)
        return Outcome("failed", f"its worker process died (exit code {code})")
    return outcome


async def _run_with_relay(job: Job, context: Context) -> Outcome:
    directory = _private_directory()
    address = os.path.join(directory, "relay")
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        await listener.bind(address)
        listener.listen(1)
        relay = _Relay(listener, context)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay.serve)
            outcome = await _run(replace(job, relay=address))
            if outcome.connected:  # its last messages may still be on their way
                await relay.done.wait()
            nursery.cancel_scope.cancel(reason="isolated call ended")
        return outcome
    finally:
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)


def _private_directory() -> str:
    """A fresh directory only this user can enter (0700), short enough for a socket path."""
    directory = tempfile.mkdtemp(prefix="mcpd-")
    if len(directory) > 90:  # AF_UNIX paths are limited to 107 bytes
        os.rmdir(directory)
        directory = tempfile.mkdtemp(prefix="mcpd-", dir="/tmp")
    return directory


class _Relay:
    """Reads the worker's messages and hands them to the call's real ``Context``."""

    def __init__(self, listener: trio.socket.SocketType, context: Context) -> None:
        self._listener = listener
        self._context = context
        self.done = trio.Event()

    async def serve(self) -> None:
        try:
            sock, _ = await self._listener.accept()
            async with trio.SocketStream(sock) as stream:
                await self._read(stream)
        except (OSError, trio.BrokenResourceError) as exc:
            log.warning("isolation.relay_failed", error=str(exc))
        finally:
            self.done.set()

    async def _read(self, stream: trio.SocketStream) -> None:
        buffer = bytearray()
        while chunk := await stream.receive_some(65536):
            buffer += chunk
            *lines, rest = bytes(buffer).split(b"\n")
            buffer = bytearray(rest)
            for line in lines:
                await self._deliver(line)
            if len(buffer) > RELAY_LINE_LIMIT:
                log.warning("isolation.relay_message_too_large", limit=RELAY_LINE_LIMIT)
                return

    async def _deliver(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            if "close_stream" in message:
                await self._context.close_stream(message["close_stream"])
                return
            params = message["params"]
            if message["notify"] == "notifications/progress":
                await self._context.report_progress(
                    params["progress"], params.get("total"), params.get("message")
                )
            elif message["notify"] == "notifications/message":
                await self._context.log(params["level"], params["data"], params.get("logger"))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("isolation.bad_relay_message", error=str(exc))


def _unwrap(outcome: Outcome, tool_name: str) -> Any:
    if outcome.kind == "returned":
        return _loads(outcome.data, f"tool {tool_name} returned a value")
    if outcome.kind == "raised":
        raise _loads(outcome.data, f"tool {tool_name} raised an exception")
    if outcome.kind == "unpicklable":
        log.warning("tool.unpicklable_result", tool=tool_name, error=outcome.data)
        raise ToolError(
            f"tool {tool_name} returned a value that cannot be sent back from its worker "
            f"process ({outcome.data})"
        )
    raise WorkerError(f"tool {tool_name} failed in its worker process: {outcome.data}")


def _loads(data: bytes, what: str) -> Any:
    try:
        return pickle.loads(data)  # our own worker's bytes, over a private pipe
    except Exception as exc:
        raise WorkerError(f"{what} that cannot be rebuilt in the daemon ({detail(exc)})") from None
