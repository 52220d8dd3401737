"""An in-process hypercorn serving a small raw ASGI test app, started the way the daemon starts it.

For the tests of ``mcpd.transport.hypercorn_*``: the app under test sits in the same trio run
as the clients, so a test can see what hypercorn accepted from the app (and wait until every
task is blocked) instead of guessing from outside. A crash of ``serve()`` fails the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config

from mcpd.transport import hypercorn_accept

BOUND = 10.0  # turns a hang into a failure; never an assertion about speed

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Message, Receive, Send], Awaitable[None]]


def make_config(**values: Any) -> Config:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.keep_alive_timeout = 60.0
    config.graceful_timeout = 1.0
    for name, value in values.items():
        setattr(config, name, value)
    return config


@dataclass
class Server:
    address: tuple[str, int]
    stopped: trio.Event  # serve() returned by itself (after the block, unless it hung)


@asynccontextmanager
async def serving(app: App, config: Config) -> AsyncIterator[Server]:
    """Serve ``app`` until the block ends, then stop it (for at most BOUND seconds)."""
    stop, stopped = trio.Event(), trio.Event()

    async def serve(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await hypercorn_accept.serve(
            app, config, shutdown_trigger=stop.wait, task_status=task_status
        )
        stopped.set()

    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(serve)
        url = urlsplit(urls[0])
        assert url.hostname is not None
        assert url.port is not None
        try:
            yield Server((url.hostname, url.port), stopped)
        finally:
            stop.set()
            with trio.move_on_after(BOUND):
                await stopped.wait()
            nursery.cancel_scope.cancel()
