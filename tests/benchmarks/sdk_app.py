"""The official Python MCP SDK's server (the ``mcp`` package) serving the same ``echo`` tool as
mcpd's fixture plugin, on uvicorn as the SDK runs it. Usage: sdk_app.py PORT [--stateful] [--sse]

JSON responses (``json_response=True``), the SDK's fastest mode: 2026-07-28 requests (chosen by
their ``MCP-Protocol-Version`` header) take its stateless modern path whatever the mode;
handshake-era requests get stateless handling, or sessions with ``--stateful``. Run as the
SDK's own ``run_streamable_http_async`` runs it, except that uvicorn's access log is off (one
line per request would only slow the SDK down; mcpd logs one line per tool call). ``--sse``
answers with SSE streams instead (its default; the SSE-response benchmark).
"""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("bench-sdk", log_level="WARNING")


@server.tool()
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
async def blob(size: int) -> str:
    """A text result of ``size`` bytes (the large-result benchmark)."""
    return "x" * size


@server.tool()
async def progress_echo(text: str, ctx: Context) -> str:
    """Report progress once, then return the text (streamed with --sse)."""
    await ctx.report_progress(1, total=1)
    return text


def main() -> None:
    port = int(sys.argv[1])
    app = server.streamable_http_app(
        json_response="--sse" not in sys.argv, stateless_http="--stateful" not in sys.argv
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", access_log=False)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
