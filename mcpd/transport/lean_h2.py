"""The lean HTTP/2 path: one task per connection drives the ``h2`` state machine, one task per
stream runs the app, and nothing else runs.

hypercorn 0.18.0 serves an HTTP/2 connection with a reader, a sender task fed through events,
a task per stream started through a memory channel per stream, and a locked, shielded write
per frame batch: measured on mcpd, 2.7x the CPU per request of the lean HTTP/1.1 path.
``lean_h11._run`` hands this module the connections that speak h2: TLS with ALPN ``h2``, and
h2c with prior knowledge (the preface read as a ``PRI`` request) and ``Upgrade: h2c`` as
hypercorn serves it (``lean_h2_upgrade``); a configured ``read_timeout`` keeps hypercorn's
handling whole.

The connection's task reads (``lean_io.ConnectionIO``), feeds h2, and starts each request's
app with ``start_soon`` in the connection's nursery (``lean_h2_stream.Stream``): streams run
concurrently, and a slow tool call never holds the others. An app's ``send`` puts its bytes
into h2's frames itself and writes what h2 has to send under the connection's one write lock,
so a complete response is one write (HEADERS and DATA), and frames queued meanwhile by other
streams or the reader (acknowledgements) go out in the same write.

Kept from ``hypercorn_h2.BoundedH2Protocol`` and hypercorn: response bytes the peer's windows
do not admit wait in a per-stream buffer of at most ``STREAM_BUFFER_BYTES``, at most
``h2_max_buffer_bytes`` per connection, and the app's send waits for room (back-pressure); a
stream whose bytes cannot move for ``write_timeout`` is reset (CANCEL), the whole connection
(GOAWAY CANCEL) if its own window is the one shut; ``h2_max_concurrent_streams``,
``h2_max_header_list_size``, ``keep_alive_timeout`` while no stream is open, the
``keep_alive_max_requests`` cap, server names, 500 when the app fails before responding, the
access log (the sending half: ``lean_h2_send``). A write that stalls for ``write_timeout``
aborts the connection (``lean_io``).
Shutting down (``context.terminated``) new streams are refused (REFUSED_STREAM: safe to
retry); draining (``lean_h11.begin_drain``) they are served; either way a connection closes
with GOAWAY once it has no stream left, an idle one at once (after ``DRAIN_LINGER``).
"""

from __future__ import annotations

from contextlib import suppress
from time import time
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.typing import ConnectionState
from hypercorn.utils import filter_pseudo_headers

from mcpd.transport import lean_h2_upgrade
from mcpd.transport.hypercorn_h2 import BoundedH2Protocol
from mcpd.transport.hypercorn_idle import IdleDeadline
from mcpd.transport.lean_app import AppCaller
from mcpd.transport.lean_h2_send import H2Send
from mcpd.transport.lean_h2_stream import Message, State, Stream
from mcpd.transport.lean_io import ConnectionIO, Gone

if TYPE_CHECKING:
    from mcpd.transport.lean_h11 import Drain

PREFACE: Final = b"PRI * HTTP/2.0\r\n"
_ASGI: Final = {"spec_version": "2.1", "version": "3.0"}
_Settings = h2.settings.SettingCodes


def is_preface(data: bytes) -> bool:
    """Whether bytes a client sent first are HTTP/2's connection preface (h2c, prior
    knowledge)."""
    return data.startswith(PREFACE)


def takes(data: bytes) -> bool:
    """Whether this path serves a connection whose first request (handed over by the lean
    HTTP/1.1 path) is ``data``: the h2 preface, or an ``Upgrade: h2c`` it can take."""
    return is_preface(data) or lean_h2_upgrade.parse(data) is not None


async def serve(
    server: TCPServer,
    ssl: bool,
    *,
    client: Any,
    address: Any,
    initial: bytes,
    drain: Drain,
    write_timeout: float,
    linger: float,
) -> None:
    """Serve one HTTP/2 connection of ``server``, starting with ``initial`` bytes."""
    conn = LeanH2(server, ssl=ssl, client=client, address=address, drain=drain)
    conn.set_timeouts(write_timeout=write_timeout, linger=linger)
    await conn.serve(initial)


def _h2_connection(server: TCPServer) -> h2.connection.H2Connection:
    """hypercorn's server-side h2 settings, without extended CONNECT (mcpd has no WebSocket)."""
    config = server.config
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    conn.DEFAULT_MAX_INBOUND_FRAME_SIZE = config.h2_max_inbound_frame_size
    conn.local_settings = h2.settings.Settings(
        client=False,
        initial_values={
            _Settings.MAX_CONCURRENT_STREAMS: config.h2_max_concurrent_streams,
            _Settings.MAX_HEADER_LIST_SIZE: config.h2_max_header_list_size,
        },
    )
    return conn


class LeanH2(H2Send):
    """One HTTP/2 connection: its h2 state machine, its streams, its send buffers."""

    def __init__(
        self,
        server: TCPServer,
        *,
        ssl: bool,
        client: Any,
        address: Any,
        drain: Drain,
    ) -> None:
        config = server.config
        self.server = server
        self.config = config
        self.io = ConnectionIO(server.stream, BoundedH2Protocol.stall_timeout)
        self.h2 = _h2_connection(server)
        self._app = AppCaller(server.app, config)
        self._lock = trio.Lock()
        self._terminated: Any = server.context.terminated
        self._drain = drain
        self._idle = IdleDeadline(config.keep_alive_timeout)
        self._streams: dict[int, Stream] = {}
        self._waiting: dict[int, Stream] = {}  # streams with bytes the windows hold back
        self.buffered = 0  # response bytes waiting in this connection's streams
        self._room = trio.lowlevel.ParkingLot()  # sends waiting for buffer room
        self._max_buffer = BoundedH2Protocol.max_buffer_bytes
        self._stall_timeout = BoundedH2Protocol.stall_timeout
        self._life: trio.CancelScope | None = None
        self._read_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._requests = 0
        self._last_id = 0  # the highest stream served: GOAWAY's last_stream_id
        self._refusing = False  # MAX_CONCURRENT_STREAMS 0 sent (shutting down)
        self._ending = False  # the peer closed, sent GOAWAY, or broke the protocol
        self.told_close = False  # GOAWAY sent, or the connection is over (lean_h11.Drain)
        self._scheme = "https" if ssl else "http"
        self._client = client
        self._server_address = address
        self._state = ConnectionState(server.state)
        self._date: tuple[int, list[tuple[bytes, bytes]]] = (0, [])

    def set_timeouts(self, *, write_timeout: float, linger: float) -> None:
        """How long a write may make no progress, and how long an idle connection stays once
        the server starts shutting down (before ``serve``)."""
        self.io = ConnectionIO(self.server.stream, write_timeout)
        self._idle = IdleDeadline(self.config.keep_alive_timeout, linger=linger)

    # -- the connection ---------------------------------------------------------------------

    async def serve(self, initial: bytes) -> None:
        idle_sets = [self._drain.idle, getattr(self._terminated, "idle", None)]
        for idle in idle_sets:
            if idle is not None:
                idle.add(self._idle)
        self._drain.connections.add(self)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    with trio.CancelScope() as self._life:
                        self._idle.scope = self._life
                        await self._run(initial)
                    await self._goodbye()
                finally:
                    self._idle.scope = None
                    self._lose()
        finally:
            self._drain.connections.discard(self)
            for idle in idle_sets:
                if idle is not None:
                    idle.discard(self._idle)

    async def _run(self, initial: bytes) -> None:
        upgrade = None if is_preface(initial) else lean_h2_upgrade.parse(initial)
        if upgrade is None:
            self.h2.initiate_connection()
        elif not await self._switch(upgrade):
            return
        else:
            initial = upgrade.rest
        if not self._streams:
            self._idle.arm()
        if initial:  # its answers go out with our SETTINGS, in one write
            if not await self._feed(initial):
                return
        else:
            await self.flush(wait=False)
        while not self._over():
            with trio.CancelScope(deadline=self._stall_deadline()) as scope:
                self._read_scope = scope
                data = await self._receive()
            self._read_scope = None
            if scope.cancelled_caught:
                await self._end_stalled()  # or woken: the loop's condition says
            elif not data or not await self._feed(data):
                return

    async def _receive(self) -> bytes:
        """The next bytes from the peer (b"" once it is gone), after a scheduler pass: the
        streams' tasks run before the next request is read."""
        try:
            data = self.io.try_receive()
            if data is None:
                return await self.io.receive_later()
            await trio.lowlevel.cancel_shielded_checkpoint()  # bytes read are never dropped
            return data
        except (Gone, trio.ClosedResourceError):  # closed: by a write that timed out, say
            return b""

    def _closing(self) -> bool:
        """Whether the connection ends once its streams are done."""
        return (
            self._terminated.is_set()
            or self._drain.draining
            or self._requests >= self.config.keep_alive_max_requests
        )

    def _over(self) -> bool:
        if self.io.broken or self._ending:
            return True
        # A fresh connection accepted while draining still gets to send its request.
        return not self._streams and self._requests > 0 and self._closing()

    def _wake_reader(self) -> None:
        if self._read_scope is not None:
            self._read_scope.cancel(reason="connection state changed")

    async def _goodbye(self) -> None:
        """GOAWAY, naming the last stream served, unless the connection is already gone."""
        if self.io.broken:
            return
        if not self.told_close and not self._ending:
            with suppress(h2.exceptions.ProtocolError):
                self.h2.close_connection(last_stream_id=self._last_id)
        self.told_close = True
        await self.flush()

    def _lose(self) -> None:
        """The connection is over: every stream's app hears http.disconnect."""
        self.told_close = True
        for stream in self._streams.values():
            stream.lost()
        self._waiting.clear()
        self.buffered = 0
        self._room.unpark_all()

    # -- reading ----------------------------------------------------------------------------

    async def _feed(self, data: bytes) -> bool:
        """Hand ``data`` to h2 and act on its events; False once the connection must end."""
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._ending = self.told_close = True  # h2 has queued its GOAWAY
            await self.flush(wait=False)
            return False
        requests = 0
        for event in events:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                requests += 1
                self._on_request(event.stream_id, event.headers or [])  # type: ignore[attr-defined]
            else:
                handler = _HANDLERS.get(kind)
                if handler is not None:
                    handler(self, event)
        if requests and self.server.context.max_requests is not None:
            for _ in range(requests):
                await self.server.context.mark_request()
        await self.flush(wait=False)
        return not self._ending

    async def _switch(self, upgrade: lean_h2_upgrade.Upgrade) -> bool:
        """Answer an ``Upgrade: h2c`` request with 101; its request is stream 1 from now on."""
        response = lean_h2_upgrade.switching(upgrade, self.config.response_headers("h11"))
        if not await self.io.write([response]):
            return False
        self.h2.initiate_upgrade_connection(upgrade.settings)
        stream = self._on_request(1, upgrade.headers)
        if stream is not None:
            stream.body_done = True  # the client's side of stream 1 is closed
        if self.server.context.max_requests is not None:
            await self.server.context.mark_request()
        return True

    def _on_request(self, stream_id: int, headers: list[Any]) -> Stream | None:
        self._idle.disarm()
        if self._refuses():
            self._refuse(stream_id)
            return None
        self._requests += 1
        self._last_id = stream_id
        scope, status = self._scope(headers)
        stream = Stream(self, stream_id, scope)
        self._streams[stream_id] = stream
        if status is None and self._nursery is not None:
            self._nursery.start_soon(self._run_app, stream)
            return stream
        stream.app_done = True
        stream.respond_empty(status or 400)
        self._send_head(stream, end=True)
        self._settle(stream)
        return stream

    def _refuses(self) -> bool:
        """Whether a new stream is refused: shutting down, at the request cap, or the idle
        deadline passed just as it came in."""
        return (
            self._terminated.is_set()
            or self._requests >= self.config.keep_alive_max_requests
            or (self._life is not None and self._life.cancel_called)
        )

    def _refuse(self, stream_id: int) -> None:
        with suppress(h2.exceptions.ProtocolError):
            self.h2.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.REFUSED_STREAM)
            if self._terminated.is_set() and not self._refusing:
                self._refusing = True  # as hypercorn does: no more streams, please
                self.h2.update_settings({_Settings.MAX_CONCURRENT_STREAMS: 0})

    def _scope(self, headers: list[Any]) -> tuple[Message, int | None]:
        """The ASGI scope of a request, and the status to answer it with instead of running
        the app (None: run it)."""
        method, raw_path = "GET", b"/"
        for name, value in headers:
            if name == b":method":
                method = value.decode("ascii").upper()
            elif name == b":path":
                raw_path = value
        path, _, query_string = raw_path.partition(b"?")
        try:
            decoded = unquote(path.decode("ascii"))
        except UnicodeDecodeError:
            decoded, method = "", "BAD"
        scope = {
            "type": "http",
            "http_version": "2",
            "asgi": _ASGI,
            "method": method,
            "scheme": self._scheme,
            "path": decoded,
            "raw_path": path,
            "query_string": query_string,
            "root_path": self.config.root_path,
            "headers": filter_pseudo_headers(headers),
            "client": self._client,
            "server": self._server_address,
            "state": self._state.copy(),
            "extensions": {},
        }
        return scope, self._refusal(scope)

    def _refusal(self, scope: Message) -> int | None:
        if scope["method"] == "BAD":
            return 400
        if scope["method"] == "CONNECT":
            return 501  # extended CONNECT (WebSocket over h2) is not offered
        names = self.config.server_names
        if names and scope["headers"][0][1].decode("latin-1") not in names:
            return 404
        return None

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self._streams.get(event.stream_id)
        size = event.flow_controlled_length or 0
        if stream is None or stream.app_done or stream.body_told or stream.gone:
            self._acknowledge(event.stream_id, size)  # nobody will read it
        else:
            stream.arrived(event.data or b"", size)

    def _on_end(self, event: h2.events.StreamEnded) -> None:
        stream = self._streams.get(event.stream_id or 0)
        if stream is not None:
            stream.body_done = True
            stream.wake()

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        stream = self._streams.get(event.stream_id or 0)
        if stream is not None:
            self._drop(stream)

    def _on_window(self, event: h2.events.Event) -> None:
        changed = getattr(event, "changed_settings", None)  # RemoteSettingsChanged
        if changed is None or _Settings.INITIAL_WINDOW_SIZE in changed:
            self._pump()

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        self._ending = self.told_close = True  # as hypercorn: the client is leaving

    def _acknowledge(self, stream_id: int, size: int) -> None:
        if size > 0:
            with suppress(h2.exceptions.ProtocolError):
                self.h2.acknowledge_received_data(size, stream_id)

    async def acknowledge(self, stream: Stream, size: int) -> None:
        """The app has read ``size`` bytes of the stream's body: the client may send more."""
        self._acknowledge(stream.id, size)
        await self.flush()

    # -- the app ----------------------------------------------------------------------------

    async def _run_app(self, stream: Stream) -> None:
        try:
            await self._call_app(stream)
            self._complete(stream)
            await self.flush()
        finally:
            stream.app_done = True
            self._acknowledge(stream.id, stream.unacked)  # what the app left unread
            stream.unacked = 0
            self._settle(stream)

    async def _call_app(self, stream: Stream) -> None:
        await self._app(stream.scope, stream.receive, stream.send)

    def _complete(self, stream: Stream) -> None:
        """The app returned: a response it did not give is 500, one it left unfinished is
        reset (the client must not take it for complete)."""
        if stream.gone or stream.h2_done or stream.finished:
            return
        if stream.state is State.REQUEST:
            stream.respond_empty(500)
            self._send_head(stream, end=True)
            return
        with suppress(h2.exceptions.ProtocolError):
            self.h2.reset_stream(stream.id, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR)
        self._drop(stream)

    def log_access(self, stream: Stream, elapsed: float) -> None:
        config_log: Any = self.config.log
        if config_log.access_logger is not None:
            summary = {"status": stream.status, "headers": []}
            atoms = config_log.atoms(stream.scope, summary, elapsed)
            config_log.access_logger.info(config_log.access_log_format, atoms)

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """hypercorn's own response headers (date, server), made once a second."""
        second = int(time())
        if self._date[0] != second:
            self._date = (second, self.config.response_headers("h2"))
        return self._date[1]

    def _forget(self, stream: Stream) -> None:
        if not (stream.app_done and stream.h2_done) or stream.id not in self._streams:
            return
        del self._streams[stream.id]
        if not self._streams:
            self._idle.arm(now=self._closing())
            if self._over():
                self._wake_reader()

    def _write_failed(self) -> None:
        self._ending = True
        if self._life is not None:
            self._life.cancel(reason="write failed")
        self._lose()


_HANDLERS: Final[dict[type, Any]] = {
    h2.events.DataReceived: LeanH2._on_data,
    h2.events.StreamEnded: LeanH2._on_end,
    h2.events.StreamReset: LeanH2._on_reset,
    h2.events.WindowUpdated: LeanH2._on_window,
    h2.events.RemoteSettingsChanged: LeanH2._on_window,
    h2.events.ConnectionTerminated: LeanH2._on_goaway,
}
