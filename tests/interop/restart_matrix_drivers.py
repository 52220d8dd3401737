"""One Python MCP client library across a daemon restart: the client half of restart_matrix.py.

It runs inside that library's own virtualenv (so it imports nothing from mcpd or the tests),
in step with restart_matrix.py, one JSON line per phase on stdout, the caller's on stdin:

    python restart_matrix_drivers.py DRIVER URL

1. connect, list the tools, call ``echo`` ("before"); print ``{"phase": "connected", ...}``;
2. read one line: the caller restarts the daemon meanwhile and writes ``restarted``;
3. call ``echo`` ("after") on the SAME client object (no reconnect here: whatever the library
   does by itself is what is measured); print ``{"phase": "done", ...}``; close the client.

A failed step is recorded as ``{"error": ...}`` under its name, never retried. Every HTTP
request the library sends (httpx or httpx2: method, path, session id, status) is recorded
per phase, and so are the library's log records at WARNING and above: when a call fails
after the restart, they say which request got which answer and what the client made of it.
Every step is bounded (STEP_SECONDS) only to turn a hang into a recorded failure.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

STEP_SECONDS = 20.0  # one connect or call; only turns a hang into a recorded failure
MAX_RECORDS = 40  # HTTP requests and log lines kept per phase
STARTED = time.monotonic()

warnings.simplefilter("ignore")  # deprecation chatter of the libraries is not the subject
os.environ.setdefault("MCP_USE_ANONYMIZED_TELEMETRY", "false")  # no network beyond loopback


@dataclass
class Calls:
    """What the phases need of a connected client."""

    tools: Callable[[], Awaitable[list[str]]]
    echo: Callable[[str], Awaitable[str]]
    session_id: Callable[[], str | None] = lambda: None


class Recorder:
    """The HTTP exchanges and the warnings of the current phase."""

    def __init__(self) -> None:
        self.http: list[dict[str, Any]] = []
        self.logs: list[str] = []

    def take(self) -> dict[str, Any]:
        taken = {"http": self.http[:MAX_RECORDS], "logs": self.logs[:MAX_RECORDS]}
        self.http, self.logs = [], []
        return taken

    def request(self, request: Any, outcome: str | int, sent: float) -> None:
        headers = request.headers
        self.http.append(
            {
                "sent_ms": round((sent - STARTED) * 1000),
                "answered_ms": round((time.monotonic() - STARTED) * 1000),
                "method": request.method,
                "path": request.url.path,
                "query": _query(request.url.query),
                "session": headers.get("mcp-session-id"),
                "protocol": headers.get("mcp-protocol-version"),
                "rpc": _rpc(request),
                "status": outcome,
            }
        )


RECORD = Recorder()


def _rpc(request: Any) -> str | None:
    """The JSON-RPC method a request carries ("response" for an answer to the server)."""
    try:
        message = json.loads(request.content or b"null")
    except Exception:  # a streamed or non-JSON body: not ours to parse
        return None
    if isinstance(message, dict):
        return str(message.get("method") or "response")
    return None


def _query(query: bytes | str) -> str | None:
    text = query.decode("ascii", "replace") if isinstance(query, bytes) else query
    return text or None


def _patch_http() -> None:
    """Record every request of ``httpx.AsyncClient`` / ``httpx2.AsyncClient`` (whichever exist)."""
    for name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        original = module.AsyncClient.send

        async def send(
            self: Any, request: Any, *args: Any, _send: Any = original, **kw: Any
        ) -> Any:
            sent = time.monotonic()
            try:
                response = await _send(self, request, *args, **kw)
            except BaseException as exc:
                RECORD.request(request, f"raised {type(exc).__name__}: {exc}", sent)
                raise
            RECORD.request(request, response.status_code, sent)
            return response

        module.AsyncClient.send = send


class _Warnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" [{describe(record.exc_info[1])}]"
        RECORD.logs.append(text[:600])


def describe(exc: BaseException) -> str:
    """The exception (the leaves of a group), its type and message, with its causes."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    text = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        text += f" (from {type(cause).__qualname__}: {cause})"
    return text[:1000]


async def attempt(run: Callable[[], Awaitable[Any]]) -> Any:
    try:
        with anyio.fail_after(STEP_SECONDS):
            return await run()
    except TimeoutError:
        return {"error": f"no answer within {STEP_SECONDS:g} s (the client hung)"}
    except Exception as exc:
        return {"error": describe(exc), "traceback": traceback.format_exc(limit=12)[-3000:]}


def _text(result: Any) -> str:
    """The text of an echo result, whatever shape the library returns it in."""
    if isinstance(result, str):
        return result
    if isinstance(result, list) and result and isinstance(result[0], str):
        return result[0]
    if getattr(result, "isError", False) or getattr(result, "is_error", False):
        raise RuntimeError(f"the tool call returned an error: {result}")
    content = getattr(result, "content", None)
    if content:
        return str(content[0].text)
    raise RuntimeError(f"unexpected echo result: {result!r}")


async def _names(listed: Any) -> list[str]:
    tools = getattr(listed, "tools", listed)
    return sorted(getattr(tool, "name", str(tool)) for tool in tools)


# ------------------------------------------------------------------------------ drivers ---
# Each opens one client the way the library's documentation shows, given only the URL.


@asynccontextmanager
async def mcp_session(url: str, transport: str) -> AsyncIterator[Calls]:
    """The official SDK 1.x: a ClientSession over its Streamable HTTP or SSE client."""
    from mcp import ClientSession

    if transport == "sse":
        from mcp.client.sse import sse_client

        opened: Any = sse_client(url)
    else:
        from mcp.client.streamable_http import streamable_http_client

        opened = streamable_http_client(url)
    async with opened as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            await session.initialize()

            async def tools() -> list[str]:
                return await _names(await session.list_tools())

            async def echo(text: str) -> str:
                return _text(await session.call_tool("echo", {"text": text}))

            session_id = streams[2] if len(streams) > 2 else (lambda: None)
            yield Calls(tools, echo, session_id)


@asynccontextmanager
async def fastmcp_client(url: str, transport: str) -> AsyncIterator[Calls]:
    """FastMCP's Client over its StreamableHttpTransport ("legacy" era on 3+) or SSETransport."""
    import fastmcp
    from fastmcp.client.transports import SSETransport, StreamableHttpTransport

    major = int(fastmcp.__version__.split(".")[0])
    if transport == "sse":
        client: Any = fastmcp.Client(SSETransport(url))
    elif major >= 4:
        client = fastmcp.Client(StreamableHttpTransport(url), mode="legacy")
    else:
        client = fastmcp.Client(StreamableHttpTransport(url))
    async with client:

        async def tools() -> list[str]:
            return await _names(await client.list_tools())

        async def echo(text: str) -> str:
            return _text(await client.call_tool("echo", {"text": text}))

        def session_id() -> str | None:
            getter = getattr(client.transport, "get_session_id", None)
            return getter() if getter else None

        yield Calls(tools, echo, session_id)


@asynccontextmanager
async def pydantic_ai_server(url: str, transport: str) -> AsyncIterator[Calls]:
    """pydantic-ai's MCP toolset: MCPServerSSE / MCPServerStreamableHTTP on 1.x, MCPToolset
    (which picks the transport from the URL: ``/sse`` is SSE) on 2.x."""
    import pydantic_ai.mcp as pmcp

    if hasattr(pmcp, "MCPToolset"):
        server: Any = pmcp.MCPToolset(url, tool_error_behavior="error")
    elif transport == "sse":
        server = pmcp.MCPServerSSE(url)
    else:
        server = pmcp.MCPServerStreamableHTTP(url)
    async with server:

        async def tools() -> list[str]:
            return await _names(await server.list_tools())

        async def echo(text: str) -> str:
            return _text(await server.direct_call_tool("echo", {"text": text}))

        yield Calls(tools, echo)


@asynccontextmanager
async def mcp_use_session(url: str, transport: str) -> AsyncIterator[Calls]:
    """mcp-use's MCPClient and the session it creates for a URL (no agent, no model)."""
    from mcp_use import MCPClient

    client = MCPClient(config={"mcpServers": {"mcpd": {"url": url}}})
    try:
        session = await client.create_session("mcpd")
        assert session is not None

        async def tools() -> list[str]:
            return await _names(await session.list_tools())

        async def echo(text: str) -> str:
            return _text(await session.call_tool("echo", {"text": text}))

        yield Calls(tools, echo)
    finally:
        await client.close_all_sessions()


@asynccontextmanager
async def smolagents_collection(url: str, transport: str) -> AsyncIterator[Calls]:
    """smolagents' ToolCollection.from_mcp (sync; its adapter runs its own loop in a thread);
    the tools are called directly, as an agent would, without an agent or a model."""
    from smolagents import ToolCollection

    params = {"url": url, "transport": transport}
    manager = ToolCollection.from_mcp(params, trust_remote_code=True, structured_output=False)
    collection = await anyio.to_thread.run_sync(manager.__enter__, abandon_on_cancel=True)
    try:

        async def tools() -> list[str]:
            return sorted(tool.name for tool in collection.tools)

        async def echo(text: str) -> str:
            tool = next(t for t in collection.tools if t.name == "echo")
            return _text(
                await anyio.to_thread.run_sync(lambda: tool(text=text), abandon_on_cancel=True)
            )

        yield Calls(tools, echo)
    finally:
        await anyio.to_thread.run_sync(manager.__exit__, None, None, None, abandon_on_cancel=True)


DRIVERS: dict[str, tuple[Callable[[str, str], Any], str]] = {
    "mcp-http": (mcp_session, "streamable-http"),
    "mcp-sse": (mcp_session, "sse"),
    "fastmcp-http": (fastmcp_client, "streamable-http"),
    "fastmcp-sse": (fastmcp_client, "sse"),
    "pydantic-ai-http": (pydantic_ai_server, "streamable-http"),
    "pydantic-ai-sse": (pydantic_ai_server, "sse"),
    "mcp-use-http": (mcp_use_session, "streamable-http"),
    "smolagents-http": (smolagents_collection, "streamable-http"),
}

# ------------------------------------------------------------------------------- phases ---


def emit(phase: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"phase": phase, **fields}, default=str) + "\n")
    sys.stdout.flush()


async def phases(calls: Calls) -> None:
    tools = await attempt(calls.tools)
    before = await attempt(lambda: calls.echo("before"))
    emit("connected", tools=tools, before=before, session=calls.session_id(), **RECORD.take())
    line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    if line.strip() != "restarted":
        emit("aborted", line=line.strip())
        return
    after = await attempt(lambda: calls.echo("after"))
    emit("done", after=after, session=calls.session_id(), **RECORD.take())


async def main(driver: str, url: str) -> None:
    """Connect, run the phases, close. restart_matrix.py bounds the connect and the close
    (it ends the process when they hang); a failure is printed for it to report."""
    opener, transport = DRIVERS[driver]
    entered = False
    try:
        async with opener(url, transport) as calls:
            entered = True
            await phases(calls)
            RECORD.take()
    except Exception as exc:
        emit("closed" if entered else "failed", error=describe(exc), **RECORD.take())
        return
    emit("closed", error=None)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger().addHandler(_Warnings(logging.WARNING))
    _patch_http()
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(main, sys.argv[1], sys.argv[2], backend="asyncio")
    sys.stdout.flush()
    os._exit(0)  # a library's leftover threads or tasks must not keep the process alive
