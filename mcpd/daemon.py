"""The daemon: one trio process owning hypercorn, the plugin registry, sessions and requests.

Shutdown drains in order: refuse new requests, give in-flight calls up to the grace period,
cancel what is left with a terminal error event, end the sessions, and only then let
hypercorn stop, so that nothing of ours is cut mid-stream by hypercorn's own deadline.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING, cast

import hypercorn.trio
import structlog
import trio
from hypercorn.config import Config

from mcpd.config import Settings
from mcpd.plugin.registry import Registry, load_registry
from mcpd.runtime.dispatch import Dispatcher
from mcpd.runtime.flights import SHUTDOWN, FlightTracker, StatelessRequests
from mcpd.runtime.sessions import SessionManager
from mcpd.transport import hypercorn_fixes
from mcpd.transport.app import McpApp
from mcpd.transport.endpoint import Endpoint

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

log = structlog.get_logger("mcpd.daemon")

# After our own drain, hypercorn only has idle connections left to close.
HYPERCORN_GRACE = 5.0


class Daemon:
    """Everything one running mcpd owns."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else _load(settings)
        self.tracker = FlightTracker()
        server = settings.server
        self.sessions = SessionManager(
            idle_timeout=server.session_idle_timeout, max_sessions=server.max_sessions
        )
        self.dispatcher = Dispatcher(
            self.registry, settings.tools, log_arguments=settings.logging.log_arguments
        )
        self.stateless = StatelessRequests()
        endpoint = Endpoint(server, self.dispatcher, self.sessions, self.stateless, self.tracker)
        self.app = McpApp(endpoint, server.path)
        self._stop_http = trio.Event()
        self._grace = trio.CancelScope()

    async def serve(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until ``shutdown`` has finished; reports the bound URLs once listening."""
        hypercorn_fixes.apply(write_timeout=self.settings.server.write_timeout)
        config = self._hypercorn_config()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.sessions.run)
            await nursery.start(self.stateless.run)
            async with trio.open_nursery() as http:
                serve = partial(
                    hypercorn.trio.serve,
                    cast("ASGIFramework", self.app),
                    config,
                    shutdown_trigger=self._stop_http.wait,
                )
                binds: list[str] = await http.start(serve)
                log.info(
                    "daemon.listening",
                    binds=binds,
                    path=self.settings.server.path,
                    tools=len(self.registry.tools),
                    plugins=sum(p.state == "loaded" for p in self.registry.plugins),
                )
                task_status.started(binds)
            nursery.cancel_scope.cancel(reason="daemon stopped")

    async def shutdown(self) -> None:
        """Drain, cancel, end sessions, then stop hypercorn."""
        grace = self.settings.server.shutdown_grace
        self.tracker.accepting = False
        log.info("daemon.draining", in_flight=len(self.tracker), grace_seconds=grace)
        self._grace.deadline = trio.current_time() + grace
        with self._grace:
            await self.tracker.wait_idle()
        if len(self.tracker):
            log.warning("daemon.cancelling", in_flight=len(self.tracker))
        self.tracker.cancel_all(SHUTDOWN)
        # Requests write their own terminal answers; let them before their sessions end.
        await self.tracker.wait_idle()
        await self.sessions.close_all(SHUTDOWN)
        self._stop_http.set()

    def hurry(self) -> None:
        """End the drain's grace period now (a second SIGTERM/SIGINT)."""
        self._grace.cancel(reason="second signal")

    def _hypercorn_config(self) -> Config:
        config = Config()
        config.bind = list(self.settings.server.listen)
        config.keep_alive_timeout = self.settings.server.keep_alive_timeout
        config.graceful_timeout = HYPERCORN_GRACE
        config.read_timeout = None  # it would also cut long SSE responses
        config.include_server_header = False
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        return config


def _load(settings: Settings) -> Registry:
    return load_registry(
        enable=settings.plugins.enable,
        disable=settings.plugins.disable,
        plugin_settings=settings.plugin,
    )


async def main(settings: Settings) -> int:
    """Run the daemon until SIGTERM or SIGINT, then shut down in order."""
    daemon = Daemon(settings)
    deadline = settings.server.shutdown_grace + HYPERCORN_GRACE + 10
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.serve)
            await _next_signal(signals)
            # Last resort: whatever still hangs after the drain deadline is cancelled.
            nursery.cancel_scope.deadline = trio.current_time() + deadline
            async with trio.open_nursery() as impatience:
                impatience.start_soon(_hurry_on_signal, signals, daemon)
                await daemon.shutdown()
                impatience.cancel_scope.cancel(reason="shutdown complete")
    log.info("daemon.stopped")
    return 0


async def _next_signal(signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        log.info("daemon.signal", signal=signal.Signals(signum).name)
        return


async def _hurry_on_signal(signals: AsyncIterator[int], daemon: Daemon) -> None:
    await _next_signal(signals)
    log.warning("daemon.hurrying", detail="second signal: cancelling in-flight calls now")
    daemon.hurry()


def run(settings: Settings) -> int:
    """Blocking entry point used by ``mcpd serve``."""
    return trio.run(main, settings)
