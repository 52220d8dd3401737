"""The daemon: one trio process owning hypercorn, the plugin registry, sessions and requests.

Shutdown drains in order: refuse new requests, give in-flight calls up to the grace period,
cancel what is left with a terminal error event, save the sessions for the next process
(``mcpd.runtime.restart``), end them, and only then let hypercorn stop, so that nothing of
ours is cut mid-stream by hypercorn's own deadline. From the drain's start every response
says ``Connection: close`` and idle keep-alive connections are closed, so no client sends a
request onto a connection that is about to go away.

A reload (SIGHUP) re-reads the config and swaps in a freshly loaded plugin registry; calls in
flight finish on the registry they started with. Under systemd the daemon serves the sockets
it was handed, reports READY/RELOADING/STOPPING, and feeds the watchdog (``mcpd.systemd``).

Health and metrics (``mcpd.transport.health``) are served by the operator app
(``mcpd.transport.operator``, quart-trio) beside the MCP endpoint, or on a listener of their
own that starts before the main one and stops after it, so that /readyz can be seen saying
"not yet" and "draining". The OAuth protected-resource metadata stays on the main listener.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import logging
import os
import resource
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, NoReturn, cast

import structlog
import trio
from hypercorn.config import Config

from mcpd import tracing
from mcpd.auth.authenticator import Authenticator
from mcpd.auth.failures import REASONS
from mcpd.auth.fetch import new_client
from mcpd.auth.wellknown import MetadataDocument, metadata_routes
from mcpd.checks import exposure, ignored_plugin_names
from mcpd.config import ConfigError, Settings, load_settings
from mcpd.metrics import Metrics
from mcpd.plugin.isolation import worker_processes
from mcpd.plugin.loader import count_states
from mcpd.plugin.registry import Registry, load_registry
from mcpd.runtime.access import Access, prompt_item, resource_item, tool_item
from mcpd.runtime.dispatch import Dispatcher
from mcpd.runtime.flights import SHUTDOWN, FlightTracker, StatelessRequests, describe
from mcpd.runtime.loopwatch import watch_loop
from mcpd.runtime.notices import Notices
from mcpd.runtime.restart import RestartState, list_digests
from mcpd.runtime.sessions import SessionLimits, SessionManager
from mcpd.startup import endpoint_urls
from mcpd.systemd import Notifier, ServiceEnvironment, keep_watchdog_fed, take_environment
from mcpd.transport import hypercorn_accept, hypercorn_fixes, lean_h11
from mcpd.transport.app import App, McpApp
from mcpd.transport.binding import ListenConfig
from mcpd.transport.endpoint import Endpoint
from mcpd.transport.health import Readiness, health_blueprint, readiness
from mcpd.transport.hosts import host_policy
from mcpd.transport.http_sse import HttpSse
from mcpd.transport.operator import metadata_blueprint, operator_app
from mcpd.transport.sse_keep import FdStore

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

log = structlog.get_logger("mcpd.daemon")

# After our own drain, hypercorn only has idle connections left to close.
HYPERCORN_GRACE = 5.0
# Beyond the grace period and the stop timeout, what the rest of a stop may take: sessions
# ending, hypercorn closing connections. Bounded separately (see ``Daemon.deadline``).
SESSIONS_GRACE = 2.0
# Writing the sessions for the next process (a thread: encoding, fsync).
SAVE_GRACE = 2.0
# Connections idle at the drain's start get this long to bring a last request (lean_h11).
EXIT_GRACE = SESSIONS_GRACE + SAVE_GRACE + HYPERCORN_GRACE + lean_h11.DRAIN_LINGER
# Exit statuses of a stop that had to give up on something.
EXIT_ABANDONED = 3  # calls that would not stop were abandoned
EXIT_FORCED = 4  # the event loop itself did not get through the stop in time

# File descriptors the daemon wants: a legacy session may hold two connections at once (its
# GET stream and a POST), plus a reserve for listeners, logs, plugins and sessionless requests.
FDS_PER_SESSION = 2
FD_RESERVE = 256


class Daemon:
    """Everything one running mcpd owns."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry | None = None,
        *,
        service: ServiceEnvironment | None = None,
        reread: Callable[[], Settings] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else _load(settings)
        self.metrics = Metrics()
        self.metrics.add_process_collectors()
        self.metrics.plugins_loaded(self.registry.plugins, len(self.registry.tools))
        self.tracker = FlightTracker()
        server = settings.server
        self.notices = Notices()
        # Its HTTP client (JWKS, issuer metadata, introspection) is closed when serve() ends.
        self._auth_client = new_client()
        self.metrics.expect_auth_failures((*REASONS, "insufficient_scope"))
        self.access = Access(
            settings,
            Authenticator(settings.auth, self._auth_client),
            on_auth_failure=self.metrics.auth_failed,
            on_limit=self.metrics.limit_rejected,
        )
        self.sessions = SessionManager(
            notices=self.notices,
            idle_timeout=server.session_idle_timeout,
            max_sessions=server.max_sessions,
            limits=SessionLimits(
                max_requests=server.max_requests_per_session,
                replay_log_bytes=server.replay_log_bytes,
                replay_session_bytes=server.replay_session_bytes,
            ),
            metrics=self.metrics,
            counter=self.access.limits,
        )
        self.metrics.watch(in_flight=self.tracker.__len__, sessions=self.sessions.__len__)
        # The state directory: sessions and requestState keys that outlive this process.
        self.restart = RestartState.open(settings)
        self.dispatcher = Dispatcher(
            self.registry,
            settings.tools,
            log_arguments=settings.logging.log_arguments,
            notices=self.notices,
            metrics=self.metrics,
            access=self.access,
            request_states=self.restart.request_states(),
        )
        self.stateless = StatelessRequests()
        self.service = service if service is not None else ServiceEnvironment()
        self.endpoint = Endpoint(
            server,
            self.dispatcher,
            self.sessions,
            self.stateless,
            self.tracker,
            access=self.access,
            metrics=self.metrics,
            binds=[s.bind for s in self.service.sockets] or None,
        )
        routes: dict[str, App] = {}
        self.notifier = Notifier(self.service.notify_socket)
        # SSE connections the last process left in systemd's fd store, and this one's.
        self.fd_store = FdStore(self.notifier, self.service.kept)
        self.http_sse: HttpSse | None = None
        if server.http_sse:
            keeps = server.keep_sse_connections and self.restart.persists_sessions
            self.http_sse = HttpSse(server, self.endpoint, self.fd_store if keeps else None)
            routes = {
                server.sse_path: self.http_sse.serve_sse,
                server.messages_path: self.http_sse.serve_messages,
            }
        self.operator = self._operator_apps()
        self.app: App = McpApp(self.endpoint, server.path, routes, other=self.operator)
        self.tracing = tracing.start(
            settings.tracing,
            registered=self._registered,
            with_messages=settings.logging.log_arguments,
        )
        if self.tracing.enabled:
            self.endpoint.tracing = self.dispatcher.tracing = self.tracing
            self.app = tracing.remember_scope(self.app)  # a request's span reads its headers
        self._listening = False
        self._draining = False
        self._drained = trio.Event()
        self._stop_http = trio.Event()
        self._stop_health = trio.Event()
        self.health_binds: list[str] = []
        self._grace = trio.CancelScope()
        self._http_config: Config | None = None  # what hypercorn serves the MCP endpoint with
        # Default: the config layers again (system file and drop-ins). ``mcpd serve`` passes
        # its own, which repeats its --config and flags too.
        self._reread = reread if reread is not None else load_settings
        self._reload_lock = trio.Lock()
        self.binds: list[str] = []
        self.stop_started: float | None = None
        self.abandoned: list[dict[str, object]] = []

    async def serve(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until ``shutdown`` has finished; reports the bound URLs once listening."""
        server = self.settings.server
        hypercorn_fixes.apply(
            write_timeout=server.write_timeout,
            h2_max_buffer_bytes=server.h2_max_buffer_bytes,
            on_accept_paused=self.metrics.accept_paused,
        )
        config = self._http_config = self._hypercorn_config()
        self.notices.install()
        tools = self.settings.tools
        try:
            async with worker_processes(tools.max_worker_processes, tools.worker_idle_timeout):
                await self._serve(config, task_status)
        finally:
            self.notices.uninstall()
            with trio.CancelScope(shield=True):  # closing idle connections never blocks
                await self._auth_client.aclose()
            await self._stop_tracing()

    async def _stop_tracing(self) -> None:
        """Export the spans still buffered, for at most ``[tracing] flush_timeout_seconds``."""
        if not self.tracing.enabled:
            return
        with trio.move_on_after(self.settings.tracing.flush_timeout) as waited:
            await trio.to_thread.run_sync(self.tracing.shutdown, abandon_on_cancel=True)
        if waited.cancelled_caught:
            log.warning(
                "tracing.flush_abandoned",
                flush_timeout_seconds=self.settings.tracing.flush_timeout,
                detail="spans not exported by then are lost",
            )

    def _scopes_named(self) -> frozenset[str]:
        """Every scope some served item needs, by plugin or by rule: the protected-resource
        metadata's ``scopes_supported`` when ``[auth] scopes_supported`` is empty."""
        registry = self.registry
        items = [
            *(tool_item(tool) for tool in registry.tools.values()),
            *(prompt_item(prompt) for prompt in registry.prompts),
            *(
                resource_item(r)
                for listing in (registry.resources, registry.templates)
                for r in listing
            ),
        ]
        return self.access.policy.scopes_named(items)

    def _registered(self, kind: str, name: str) -> bool:
        """Whether a tool or prompt of that name is served now (span names carry only those)."""
        registry = self.dispatcher.registry
        found = registry.get(name) if kind == "tool" else registry.prompts.by_key.get(name)
        return found is not None

    async def _serve(self, config: Config, task_status: trio.TaskStatus[list[str]]) -> None:
        async with trio.open_nursery() as nursery:
            if self.service.watchdog_interval:
                nursery.start_soon(keep_watchdog_fed, self.notifier, self.service.watchdog_interval)
            if stall := self.settings.server.loop_stall:
                nursery.start_soon(partial(watch_loop, self.tracker, self.metrics, threshold=stall))
            await nursery.start(self.sessions.run)
            await nursery.start(self.stateless.run)
            if self.http_sse is not None:
                await nursery.start(self.http_sse.run)
            # The last process's sessions, back before the first request can ask for them.
            await self.restart.restore(
                self.sessions, self.dispatcher.states, list_digests(self.registry), self.http_sse
            )
            self.fd_store.release_rest()
            async with trio.open_nursery() as health:
                if self.settings.metrics.listen:
                    self.health_binds = await health.start(self._serve_health)
                async with trio.open_nursery() as http:
                    serve = partial(
                        hypercorn_accept.serve,
                        cast("ASGIFramework", self.app),
                        config,
                        shutdown_trigger=self._stop_http.wait,
                    )
                    binds: list[str] = await http.start(serve)
                    self.binds = binds
                    self._listening = True
                    log.info(
                        "daemon.listening",
                        endpoints=endpoint_urls(binds, self.settings.server.path),
                        binds=binds,
                        path=self.settings.server.path,
                        health_binds=self.health_binds,
                        tools=len(self.registry.tools),
                        plugins=_loaded_plugins(self.registry),
                    )
                    _warn_if_exposed(self.settings, binds)
                    settle_heap()
                    self.notifier.ready(self.status())
                    task_status.started(binds)
                # Socket-activated, hypercorn stops before the drain ends: wait for it.
                await self._drained.wait()
                # The health listener outlives the main one: /readyz says "draining" to the end.
                self._stop_health.set()
            if self.abandoned:
                # Their tasks would hold the nurseries open forever; everything else is done.
                self.exit_now(EXIT_ABANDONED)
            nursery.cancel_scope.cancel(reason="daemon stopped")

    def _operator_apps(self) -> App:
        """The operator app of the main listener (metadata routes, health unless it has a
        listener of its own); ``self.health``: the app of that listener, if any."""
        settings = self.settings
        main = []
        self.metadata: MetadataDocument | None = None
        if paths := metadata_routes(settings.auth, settings.server.path):
            self.metadata = MetadataDocument(settings.auth, self._scopes_named())
            main.append(metadata_blueprint(self.metadata, paths))
        health = health_blueprint(
            settings.metrics, self.metrics, self.readiness, hosts=self._health_hosts()
        )
        self.health: App | None = None
        if settings.metrics.listen:
            self.health = operator_app([health], settings.server, not_found="nothing")
        else:
            main.append(health)
        return operator_app(main, settings.server, not_found="no MCP endpoint")

    async def _serve_health(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        config = self._hypercorn_config(list(self.settings.metrics.listen))
        await hypercorn_accept.serve(
            cast("ASGIFramework", self.health),
            config,
            shutdown_trigger=self._stop_health.wait,
            task_status=task_status,
        )

    def _health_hosts(self) -> frozenset[str] | None:
        """The Host check of the health endpoints: the main listener's, or their own
        listener's when they have one."""
        if not self.settings.metrics.listen:
            return host_policy(self.settings.server, [s.bind for s in self.service.sockets] or None)
        own = dataclasses.replace(self.settings.server, listen=self.settings.metrics.listen)
        return host_policy(own)

    def readiness(self) -> Readiness:
        """What /readyz reports: counts only, never config values."""
        plugins = count_states(self.registry.plugins)
        counts = {
            "tools": len(self.registry.tools),
            "sessions": len(self.sessions),
            "in_flight": len(self.tracker),
        }
        return readiness(
            listening=self._listening,
            accepting=not self._draining,
            plugins=plugins,
            counts=counts,
        )

    async def shutdown(self) -> None:
        """Drain, cancel, give up on what will not stop, end sessions, then stop hypercorn.

        Socket-activated, the listening socket outlives this process (systemd holds it), so
        the daemon stops accepting connections at once: new ones wait in the backlog for the
        next instance, and a request still arriving on an open connection is served (each
        connection closes after its current request). Having bound the socket itself, the
        daemon keeps accepting until the drain ends and answers new requests with 503, so
        clients fail fast instead of hanging.

        The whole stop is bounded by ``deadline`` whatever plugin code does: calls still
        running ``stop_timeout`` after their cancellation are abandoned (answered with the
        terminal error; see ``FlightTracker.abandon_all``) and the daemon exits without them.
        """
        server = self.settings.server
        grace, stop = server.shutdown_grace, server.stop_timeout
        self.stop_started = trio.current_time()
        self.notifier.stopping()
        self._draining = True
        if self._http_config is not None:  # Connection: close from now on; idle ones close
            lean_h11.begin_drain(self._http_config)
        if self.service.sockets:
            self._stop_http.set()
        else:
            self.tracker.accepting = False
        self.endpoint.closing.set()  # listen streams end with their result
        log.info(
            "daemon.draining",
            in_flight=len(self.tracker),
            grace_seconds=grace,
            stop_timeout_seconds=stop,
            deadline_seconds=self.deadline,
        )
        self._grace.deadline = trio.current_time() + grace
        with self._grace:
            await self.tracker.wait_idle()
        interrupted = self.tracker.describe()
        if interrupted:
            log.warning("daemon.cancelling", in_flight=len(interrupted))
        self.tracker.cancel_all(SHUTDOWN)
        # Requests write their own terminal answers; let them before their sessions end.
        with trio.move_on_after(stop):
            await self.tracker.wait_idle()
        if len(self.tracker):
            self.abandoned = describe(await self.tracker.abandon_all())
            log.error(
                "daemon.abandoned",
                calls=self.abandoned,
                detail=f"still running {stop:g}s after being cancelled; their clients got"
                " the terminal error and the daemon exits without them",
            )
        # Every request has its answer or its terminal error now: what is left of the
        # sessions is what the next process takes over. Connections idle since before the
        # drain may still bring a request (lean_h11.DRAIN_LINGER): let them, then refuse
        # the rest (503), so that no request meets a session saved for the next process.
        if self._http_config is not None:
            await lean_h11.wait_lingering(self._http_config)
        self.tracker.accepting = False
        if self.http_sse is not None:  # SSE connections to systemd's fd store, if it keeps them
            await self.http_sse.park_all()
        with trio.move_on_after(SAVE_GRACE):
            lists = list_digests(self.registry)
            await self.restart.save(self.sessions, self.dispatcher.states, lists, interrupted)
        with trio.move_on_after(SESSIONS_GRACE):  # a session holding an abandoned call
            await self.sessions.close_all(SHUTDOWN)
        self._drained.set()
        self._stop_http.set()

    @property
    def deadline(self) -> float:
        """Seconds a stop may take at most, from the signal to the exit."""
        server = self.settings.server
        flush = self.settings.tracing.flush_timeout if self.tracing.enabled else 0.0
        return server.shutdown_grace + server.stop_timeout + EXIT_GRACE + flush

    def exit_now(self, status: int) -> NoReturn:
        """End the process at once (what is left cannot be waited for); logs first."""
        log.warning(
            "daemon.stopped",
            exit_status=status,
            elapsed_seconds=self.elapsed(),
            deadline_seconds=self.deadline,
            abandoned=len(self.abandoned),
        )
        self.notifier.close()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)

    def elapsed(self) -> float | None:
        """Seconds since the stop began (None before it did)."""
        if self.stop_started is None:
            return None
        return round(trio.current_time() - self.stop_started, 3)

    def hurry(self) -> None:
        """End the drain's grace period now (a second SIGTERM/SIGINT)."""
        self._grace.cancel(reason="second signal")

    async def reload(self) -> bool:
        """Re-read the config and serve a freshly loaded plugin registry; False if rejected.

        A config that does not load leaves the running settings and registry untouched.
        """
        async with self._reload_lock:
            self.notifier.reloading()
            log.info("daemon.reloading")
            await self.restart.rekey(self.dispatcher.states)  # after `mcpd state rotate-key`
            try:
                # In a thread: plugin imports must not stall the loop (or its watchdog pings),
                # and a shutdown can abandon a reload that is still importing.
                settings, registry = await trio.to_thread.run_sync(
                    self._load_again, abandon_on_cancel=True
                )
            except Exception as exc:  # a reload must never take the daemon down
                log.error(
                    "daemon.reload_failed",
                    error=str(exc),
                    exc_info=not isinstance(exc, ConfigError),
                )
                self.notifier.ready(
                    f"{self.status()}; reload failed, kept the running config: {exc}"
                )
                self.metrics.reloaded(ok=False)
                return False
            self._swap(settings, registry)
            self.metrics.reloaded(ok=True)
            self.notifier.ready(self.status())
            return True

    def _load_again(self) -> tuple[Settings, Registry]:
        settings = self._reread()
        importlib.invalidate_caches()  # see distributions installed since the last look
        return settings, _load(settings)

    def _swap(self, settings: Settings, registry: Registry) -> None:
        restart_needed = _restart_needed(self.settings, settings)
        self.settings = dataclasses.replace(
            self.settings,
            plugins=settings.plugins,
            plugin=settings.plugin,
            auth=settings.auth,
            limits=settings.limits,
            source=settings.source,
        )
        # Keys added or revoked, new rules and limits: from the next request on.
        self.access.reconfigure(self.settings)
        self.registry = registry
        if self.metadata is not None:  # turning OAuth on or off needs a restart
            self.metadata.update(self.settings.auth, self._scopes_named())
        self.dispatcher.swap_registry(registry)
        self.metrics.plugins_loaded(registry.plugins, len(registry.tools))
        log.info(
            "daemon.reloaded",
            source=settings.source,
            plugins=_loaded_plugins(registry),
            tools=len(registry.tools),
            restart_needed=restart_needed,
            note="plugin code changes (upgraded distributions) take effect only after a restart",
        )
        settle_heap()

    def status(self) -> str:
        """One line for ``systemctl status``: where we listen and what we serve."""
        how = " (socket-activated)" if self.service.sockets else ""
        plugins = _loaded_plugins(self.registry)
        return (
            f"Listening on {', '.join(self.binds)}{how}; "
            f"{plugins} plugin{'s' * (plugins != 1)}, {len(self.registry.tools)} tools"
        )

    def _binds(self) -> list[str]:
        """The sockets systemd passed in replace the configured addresses."""
        if not self.service.sockets:
            return list(self.settings.server.listen)
        log.info(
            "daemon.socket_activated",
            sockets=[{"fd": s.fd, "name": s.name} for s in self.service.sockets],
            ignored_listen=list(self.settings.server.listen),
        )
        return [s.bind for s in self.service.sockets]

    def _hypercorn_config(self, binds: list[str] | None = None) -> Config:
        # Bound one address at a time: a failure names the address (mcpd.transport.binding).
        # TLS ([server] tls_certificate/tls_private_key) on the main listener only.
        server = self.settings.server
        if binds is None:
            config = ListenConfig("server.listen", (server.tls_certificate, server.tls_private_key))
        else:
            config = ListenConfig("metrics.listen")
        config.bind = binds if binds is not None else self._binds()
        config.keep_alive_timeout = server.keep_alive_timeout
        config.backlog = server.backlog  # not for sockets systemd hands in
        # Socket-activated, hypercorn stops before the drain starts and must not cut the
        # connections our drain is still finishing; otherwise only idle ones are left.
        if self.service.sockets:  # hypercorn stops as the drain starts (see shutdown)
            config.graceful_timeout = server.shutdown_grace + server.stop_timeout + HYPERCORN_GRACE
        else:  # hypercorn stops once the drain has ended every request of ours
            config.graceful_timeout = HYPERCORN_GRACE
        config.read_timeout = None  # it would also cut long SSE responses
        config.include_server_header = False
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        return config


def settle_heap() -> None:
    """Keep what start-up (or a reload) built out of the cyclic GC's full collections.

    A full collection walks every tracked object, some 56,000 once plugins are loaded: 16-35
    ms of CPU on the test VM, in which no request moves (at 64 connections about one a
    second, the p99). Frozen, they are skipped; what comes later (sessions, calls) is still
    collected. Unfreezing first lets what a reload left behind be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _loaded_plugins(registry: Registry) -> int:
    return sum(p.state == "loaded" for p in registry.plugins)


def _restart_needed(running: Settings, new: Settings) -> list[str]:
    """Config tables that changed but take effect only at a restart."""
    return [
        table
        for table in ("server", "tools", "logging", "metrics", "tracing")
        if getattr(running, table) != getattr(new, table)
    ]


def _load(settings: Settings) -> Registry:
    registry = load_registry(
        enable=settings.plugins.enable,
        disable=settings.plugins.disable,
        plugin_settings=settings.plugin,
    )
    # The same warnings `mcpd config check` prints (mcpd.checks).
    for finding in ignored_plugin_names(settings, registry):
        log.warning("config.ignored", key=finding.key, detail=finding.message)
    return registry


def _warn_if_exposed(settings: Settings, binds: list[str]) -> None:
    finding = exposure(settings, binds)
    if finding is not None:
        log.warning("daemon.beyond_loopback", binds=binds, detail=finding.message)


async def main(settings: Settings, *, reread: Callable[[], Settings] | None = None) -> int:
    """Run the daemon until SIGTERM or SIGINT, reloading on SIGHUP, then shut down in order.

    ``reread`` loads the config again for a reload (default: the system config layers). The
    stop takes at most ``Daemon.deadline`` seconds: calls that will not stop are abandoned
    (exit status 3), and if the event loop itself cannot get through the stop in time (a
    plugin blocking it), a watchdog thread ends the process (exit status 4).
    """
    raise_fd_limit(FDS_PER_SESSION * settings.server.max_sessions + FD_RESERVE)
    daemon = Daemon(settings, service=take_environment(), reread=reread)
    stop = signal.SIGTERM, signal.SIGINT, signal.SIGHUP
    with contextlib.ExitStack() as deadline, trio.open_signal_receiver(*stop) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.serve)
            async with trio.open_nursery() as reloads:
                await _next_signal(signals, on_reload=lambda: reloads.start_soon(daemon.reload))
                # A reload still loading must not hold up the shutdown.
                reloads.cancel_scope.cancel(reason="shutting down")
            # Until the nursery has ended (hypercorn stopped), not just the drain.
            deadline.enter_context(_exit_by(daemon.deadline, daemon))
            async with trio.open_nursery() as impatience:
                impatience.start_soon(_hurry_on_signal, signals, daemon)
                await daemon.shutdown()
                impatience.cancel_scope.cancel(reason="shutdown complete")
    daemon.notifier.close()
    log.info(
        "daemon.stopped",
        exit_status=0,
        elapsed_seconds=daemon.elapsed(),
        deadline_seconds=daemon.deadline,
    )
    return 0


@contextlib.contextmanager
def _exit_by(seconds: float, daemon: Daemon) -> Iterator[None]:
    """Within the block, a thread ends the process if it is still running after ``seconds``.

    A thread, not a task: it must work when the event loop is blocked (a plugin calling
    ``time.sleep`` in an async tool), which no cancellation can reach.
    """

    def expire() -> None:
        with contextlib.suppress(Exception):  # racing the blocked loop's own bookkeeping
            log.critical(
                "daemon.exit_forced",
                deadline_seconds=seconds,
                in_flight=daemon.tracker.describe(),
                detail="the stop did not finish in time (is the event loop blocked?)",
            )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(EXIT_FORCED)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; warn if that is below ``needed``.

    Returns the soft limit in force. (The usual daemon practice: a soft limit of 1024 is a
    default for interactive shells, not a choice made for this service.)
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, needed) if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            log.warning("daemon.fd_limit_unchanged", soft=soft, hard=hard, error=str(exc))
        else:
            log.info("daemon.fd_limit_raised", soft=target, was=soft)
            soft = target
    if soft < needed:
        log.warning(
            "daemon.fd_limit_low",
            limit=soft,
            needed=needed,
            detail="max_sessions needs more file descriptors than the process may open; "
            "raise LimitNOFILE= (systemd) or ulimit -n, or lower [server] max_sessions",
        )
    return soft


def _reload_skipped() -> None:
    log.info("daemon.reload_skipped", reason="shutting down")


async def _next_signal(
    signals: AsyncIterator[int], on_reload: Callable[[], None] = _reload_skipped
) -> None:
    """Wait for SIGTERM or SIGINT; SIGHUPs on the way call ``on_reload``."""
    async for signum in signals:
        log.info("daemon.signal", signal=signal.Signals(signum).name)
        if signum != signal.SIGHUP:
            return
        on_reload()


async def _hurry_on_signal(signals: AsyncIterator[int], daemon: Daemon) -> None:
    await _next_signal(signals)
    log.warning("daemon.hurrying", detail="second signal: cancelling in-flight calls now")
    daemon.hurry()


def run(settings: Settings, *, reread: Callable[[], Settings] | None = None) -> int:
    """Blocking entry point used by ``mcpd serve``."""
    return trio.run(partial(main, settings, reread=reread))
