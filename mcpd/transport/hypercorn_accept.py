"""How connections get in: the listen backlog, and accepting when file descriptors run out.

Accepting at the descriptor limit. hypercorn serves its listeners with
``trio.serve_listeners``, whose accept loop meets ``EMFILE``/``ENFILE``/``ENOMEM``/``ENOBUFS``
by logging the error with a full traceback and retrying every 100 ms, for as long as it lasts
(5.4 MB of log in 100 s), while new connections wait in the backlog. ``install`` replaces that
per-listener loop (``trio._highlevel_serve_listeners._serve_one_listener``, looked up by
``serve_listeners`` at call time) with one that pauses: one ``accept.paused`` warning naming
the errno, retries with a backoff from ``FIRST_RETRY`` doubling up to ``MAX_RETRY`` seconds,
and one ``accept.resumed`` event once a connection is accepted again. Other accept errors
propagate as before. Connections already accepted are served throughout.

Accepting in bursts. trio's ``accept`` takes one connection per scheduler pass. When many
connections arrive together (a client pool opening, clients reconnecting after a restart) and
the loop is busy serving, the last of 64 waited 64 passes, about 0.6 s under load, before its
first request was read. After each accept the loop here also takes what is already waiting in
the backlog, up to ``ACCEPT_BURST``, without a pass in between (plain sockets; a TLS
listener's connections handshake in passes of their own anyway). Only while descriptors are
plentiful: near the open-files limit (an accepted descriptor numbered within
``BURST_HEADROOM`` of it) accepting goes one per pass, so that connections already closed by
their clients are let go as fast as they come in, instead of taking the last descriptors.

The backlog. ``serve`` is ``hypercorn.trio.serve`` except that it calls ``listen()`` only on
the sockets it binds itself (with ``config.backlog``, mcpd's ``[server] backlog``). hypercorn
calls ``listen()`` again on inherited ``fd://`` sockets too, which on Linux replaces the
backlog the socket's owner chose (systemd's ``Backlog=``) with hypercorn's.
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Awaitable, Callable
from typing import Any, Final, NoReturn

import structlog
import trio
import trio._highlevel_serve_listeners as trio_serve_listeners
from hypercorn.config import Config
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

log = structlog.get_logger("mcpd.transport")

FIRST_RETRY: Final = 0.1  # seconds: trio's own interval
MAX_RETRY: Final = 1.0
# Connections accepted per scheduler pass beyond the first. Each costs a task spawn (some
# 20 µs), so a burst adds at most about a millisecond to a pass.
ACCEPT_BURST: Final = 64
# No burst once an accepted descriptor's number is this close to the open-files limit.
BURST_HEADROOM: Final = 2 * ACCEPT_BURST

Handler = Callable[[Any], Awaitable[object]]


def _ignore() -> None:
    pass


class AcceptPause:
    """One listener's pause while the process or the system is out of descriptors or memory."""

    def __init__(self, listener: str, on_pause: Callable[[], None] = _ignore) -> None:
        self._listener = listener
        self._on_pause = on_pause
        self.since: float | None = None
        self.retries = 0
        self.delay = FIRST_RETRY

    async def wait(self, code: int) -> None:
        """``accept`` failed with ``code``: log once per pause, then back off."""
        if self.since is None:
            self.since = trio.current_time()
            log.warning(
                "accept.paused",
                listener=self._listener,
                errno=errno.errorcode.get(code, str(code)),
                error=os.strerror(code),
                detail="new connections wait in the listen backlog until accepting works again",
            )
            self._on_pause()
        else:
            self.retries += 1
            self.delay = min(self.delay * 2, MAX_RETRY)
        await trio.sleep(self.delay)

    def end(self) -> None:
        """A connection was accepted: if paused, say so once and reset."""
        if self.since is None:
            return
        log.info(
            "accept.resumed",
            listener=self._listener,
            paused_seconds=round(trio.current_time() - self.since, 3),
            retries=self.retries,
        )
        self.since, self.retries, self.delay = None, 0, FIRST_RETRY


def _name(listener: Any) -> str:
    sock = getattr(listener, "socket", None)
    try:
        return str(sock.getsockname()) if sock is not None else repr(listener)
    except OSError:
        return repr(listener)


def _pausing_loop(on_pause: Callable[[], None]) -> Callable[..., Awaitable[NoReturn]]:
    async def serve_one_listener(
        listener: trio.abc.Listener[Any], handler_nursery: trio.Nursery, handler: Handler
    ) -> NoReturn:
        async with listener:
            pause = AcceptPause(_name(listener), on_pause)
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in trio_serve_listeners.ACCEPT_CAPACITY_ERRNOS:
                        raise
                    await pause.wait(exc.errno)
                    continue
                pause.end()
                handler_nursery.start_soon(trio_serve_listeners._run_handler, stream, handler)
                for waiting in _waiting(listener, stream):
                    handler_nursery.start_soon(trio_serve_listeners._run_handler, waiting, handler)

    return serve_one_listener


def _waiting(listener: Any, accepted: Any) -> list[trio.SocketStream]:
    """The connections already in ``listener``'s backlog, up to ``ACCEPT_BURST``, accepted
    without a scheduler pass after ``accepted``; an error ends the burst (the next
    ``accept`` meets it again), and so does a descriptor near the open-files limit."""
    if type(listener) is not trio.SocketListener or _scarce(accepted.socket.fileno()):
        return []
    # The stdlib socket under trio's (non-blocking): its accept never waits.
    sock = getattr(listener.socket, "_sock", None)
    streams: list[trio.SocketStream] = []
    while sock is not None and len(streams) < ACCEPT_BURST:
        try:
            connection, _ = sock.accept()
        except OSError:  # BlockingIOError: the backlog is empty
            break
        streams.append(trio.SocketStream(trio.socket.from_stdlib_socket(connection)))
        if _scarce(connection.fileno()):
            break
    return streams


def _scarce(fd: int) -> bool:
    """Whether descriptors run short: the kernel hands out the lowest free number, so at
    least ``fd`` of them are in use."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft != resource.RLIM_INFINITY and fd >= soft - BURST_HEADROOM


def install(on_pause: Callable[[], None] | None = None) -> None:
    """Pause accepting at the descriptor limit; ``on_pause`` is called once per pause."""
    for name in ("_serve_one_listener", "_run_handler", "ACCEPT_CAPACITY_ERRNOS"):
        if not hasattr(trio_serve_listeners, name):
            raise RuntimeError(f"mcpd patches trio's accept loop; trio {trio.__version__} differs")
    # Replacing the module's function is the patch; serve_listeners looks it up per call.
    loop = _pausing_loop(on_pause or _ignore)
    trio_serve_listeners._serve_one_listener = loop  # type: ignore[assignment]


async def serve(
    app: Any,
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``hypercorn.trio.serve(app, config, ...)``, leaving inherited sockets' backlog alone."""
    sockets = config.create_sockets()
    binds = [*config.bind, *config.insecure_bind] if config.ssl_enabled else config.bind
    for bind, sock in zip(binds, [*sockets.secure_sockets, *sockets.insecure_sockets], strict=True):
        if not bind.startswith("fd://"):
            sock.listen(config.backlog)
    await worker_serve(
        wrap_app(app, config.wsgi_max_body_size, "asgi"),
        config,
        sockets=sockets,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )
