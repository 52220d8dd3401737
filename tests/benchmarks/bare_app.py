"""The baseline: a bare ASGI app on hypercorn-trio answering every request with a fixed
JSON-RPC result, i.e. the stack with no MCP work at all. Usage: bare_app.py PORT [--unpatched]

With --unpatched it is stock hypercorn-trio, the baseline the targets are set against (note:
stock 0.18.0 logs BusyResourceError when it recycles a busy connection after
keep_alive_max_requests, 1000; the load generator reconnects). Without it, hypercorn carries
the same patches mcpd applies (mcpd/transport/hypercorn_fixes.py), as a reference."""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import hypercorn.trio
import trio
from hypercorn.config import Config

from mcpd.transport.app import serve_lifespan

BODY = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{sys.argv[1]}"]
    config.accesslog = None
    if "--unpatched" not in sys.argv:
        from mcpd.transport import hypercorn_fixes

        hypercorn_fixes.apply(write_timeout=30.0)
    trio.run(partial(hypercorn.trio.serve, app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
