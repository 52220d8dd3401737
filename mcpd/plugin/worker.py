"""What runs inside an isolation worker process: one call of an ``isolation="process"`` tool.

The daemon side (``mcpd.plugin.isolation``) sends a ``Job`` through trio-parallel; ``run_job``
runs it in the worker and always answers with an ``Outcome``, never by raising: the tool's
value and exceptions are pickled here, so whatever cannot be pickled is described instead,
and ``SystemExit`` or ``KeyboardInterrupt`` from plugin code fail the call, not the worker.

A tool that takes a ``Context`` runs in a thread of a trio loop of the worker's own, and its
``Context`` talks to the daemon over the job's relay socket (``RelayChannel``): one JSON line
per notification.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import pickle
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import trio
from tblib import pickling_support

from mcpd.auth.principal import Principal
from mcpd.plugin.context import Context, InputUnavailable

DETAIL_LIMIT: Final = 300  # characters of a pickling error quoted in a result
PROTOCOL: Final = pickle.HIGHEST_PROTOCOL
# Progress is relayed whether or not the client asked for it; the daemon's Context decides.
_RELAYED_TOKEN: Final = "relayed"

Kind = Literal["returned", "raised", "unpicklable", "failed"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the worker's ``Context`` can know about the call without asking the daemon."""

    parameter: str
    request_id: str | int
    session_id: str | None
    revision: str
    supports: frozenset[str]
    principal: Principal


@dataclass(frozen=True, slots=True)
class Job:
    """One call for a worker: the function by reference and the pickled arguments."""

    function: tuple[str, str]  # module, qualified name
    arguments: bytes  # the pickled keyword arguments
    context: Snapshot | None = None
    relay: str | None = None  # the Unix socket the worker's Context talks to


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended in the worker (``kind``) and what came of it (``data``)."""

    kind: Kind
    data: Any  # pickled value or exception, or a description
    connected: bool = False  # the worker opened the relay (so it will also close it)


def lookup(module: str, qualname: str) -> Any:
    """The object named ``qualname`` in ``module`` (importing it)."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def detail(exc: BaseException) -> str:
    """``Type: message``, cut to ``DETAIL_LIMIT``: for pickling errors, which name types."""
    return f"{type(exc).__name__}: {exc}"[:DETAIL_LIMIT]


class _Connection:
    made = False


def run_job(job: Job) -> Outcome:
    """Run ``job`` in this worker process: every exit is an ``Outcome``, never an exception."""
    connection = _Connection()
    try:
        fn = _function(*job.function)
        kwargs = pickle.loads(job.arguments)  # the daemon's own bytes
        if job.context is None or job.relay is None:
            value = fn(**kwargs)
        else:
            value = trio.run(_call_with_relay, fn, kwargs, job.context, job.relay, connection)
    except BaseException as exc:  # SystemExit and friends too: they must not end the worker
        return _raised(exc, connection.made)
    return _returned(value, connection.made)


def _function(module: str, qualname: str) -> Callable[..., Any]:
    from mcpd.plugin.tool import Tool

    found = lookup(module, qualname)
    return found.fn if isinstance(found, Tool) else found


async def _call_with_relay(
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    snapshot: Snapshot,
    address: str,
    connection: _Connection,
) -> Any:
    stream = await trio.open_unix_socket(address)
    connection.made = True
    async with stream:
        kwargs[snapshot.parameter] = Context(RelayChannel(stream, snapshot))
        # A thread of this loop, as in the daemon: trio.from_thread.run(ctx...) works.
        return await trio.to_thread.run_sync(functools.partial(fn, **kwargs))


def _returned(value: Any, connected: bool) -> Outcome:
    try:
        return Outcome("returned", pickle.dumps(value, protocol=PROTOCOL), connected)
    except Exception as exc:
        return Outcome("unpicklable", detail(exc), connected)


def _raised(exc: BaseException, connected: bool) -> Outcome:
    if isinstance(exc, Exception):
        pickling_support.install(exc)  # the traceback comes along (frames, no locals)
        with contextlib.suppress(Exception):
            return Outcome("raised", pickle.dumps(exc, protocol=PROTOCOL), connected)
    # Type and place only: the message may quote arguments or secrets.
    return Outcome("failed", f"it raised {type(exc).__name__}{_where(exc)}", connected)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


class RelayChannel:
    """The worker's ``RequestChannel``: notifications go back to the daemon as JSON lines."""

    def __init__(self, stream: trio.SocketStream, snapshot: Snapshot) -> None:
        self._stream = stream
        self._snapshot = snapshot
        self._lock = trio.Lock()  # the tool may report from several threads

    @property
    def request_id(self) -> str | int:
        return self._snapshot.request_id

    @property
    def revision(self) -> str:
        return self._snapshot.revision

    @property
    def progress_token(self) -> str | int | None:
        return _RELAYED_TOKEN

    @property
    def session_id(self) -> str | None:
        return self._snapshot.session_id

    @property
    def cancel_reason(self) -> str | None:
        return None  # a cancelled call's worker is killed: it never sees the reason

    @property
    def principal(self) -> Principal:
        return self._snapshot.principal

    def wants_log(self, level: str) -> bool:
        return True  # the daemon's Context applies the client's level

    def client_supports(self, capability: str) -> bool:
        return capability in self._snapshot.supports

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        await self._send({"notify": method, "params": params})

    async def ask(self, questions: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        raise InputUnavailable(
            'a tool running in a worker process (isolation="process") cannot ask the client '
            "for input"
        )

    async def close_stream(self, retry_ms: int | None) -> None:
        await self._send({"close_stream": retry_ms})

    async def _send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        async with self._lock:
            await self._stream.send_all(line)
