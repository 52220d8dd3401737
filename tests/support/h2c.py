"""A raw HTTP/2 client (h2c, prior knowledge) that opens flow-control windows only when told to.

Built on the ``h2`` library over one trio TCP stream, for the tests of flow control: a real
client library acknowledges received data by itself, which is exactly what these tests must
not do. Everything it received is kept per stream; every read is bounded by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
import trio


@dataclass
class StreamState:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code, if the server reset it


class H2c:
    """One connection; ``receive`` reads once and records what arrived."""

    def __init__(self, stream: trio.SocketStream, *, initial_window: int | None) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        if initial_window is not None:
            # What we grant each stream; the connection's own window stays 65,535.
            self.conn.local_settings = h2.settings.Settings(
                client=True,
                initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window},
            )
        self.conn.initiate_connection()
        self.streams: dict[int, StreamState] = {}
        self.received = 0  # flow-controlled bytes received, all streams
        self.terminated: h2.events.ConnectionTerminated | None = None
        self.closed = False  # the server closed (or reset) the TCP connection

    @classmethod
    async def connect(cls, address: tuple[str, int], *, initial_window: int | None = None) -> H2c:
        client = cls(await trio.open_tcp_stream(*address), initial_window=initial_window)
        await client.flush()
        return client

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def request(
        self,
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> int:
        """Send a request (its body within the server's flow-control windows); its stream id."""
        stream_id = self.conn.get_next_available_stream_id()
        self.streams[stream_id] = StreamState()
        pseudo = [(":method", method), (":path", path), (":scheme", "http")]
        pseudo.append((":authority", "127.0.0.1"))
        self.conn.send_headers(stream_id, [*pseudo, *headers], end_stream=not body)
        await self.flush()
        view = memoryview(body)
        while view:
            size = min(self.conn.local_flow_control_window(stream_id), len(view))
            size = min(size, self.conn.max_outbound_frame_size)
            if size == 0:
                await self.receive()  # wait for the server's WINDOW_UPDATE
                continue
            self.conn.send_data(stream_id, bytes(view[:size]), end_stream=size == len(view))
            view = view[size:]
            await self.flush()
        return stream_id

    async def open_window(self, stream_id: int | None, size: int) -> None:
        """Grant the server ``size`` more bytes on a stream (None: on the connection)."""
        self.conn.increment_flow_control_window(size, stream_id=stream_id)
        await self.flush()

    async def receive(self) -> None:
        """Read once and record it (never acknowledging data); sets ``closed`` at EOF."""
        try:
            data = await self.stream.receive_some()
        except trio.BrokenResourceError:
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self._record(event)
        await self.flush()  # SETTINGS and PING acknowledgements only

    async def until(self, done: Callable[[], bool]) -> None:
        """Read until ``done()`` (or the connection closed; the caller bounds the time)."""
        while not done() and not self.closed:
            await self.receive()

    def _record(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self.streams[event.stream_id].headers = list(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self.streams[event.stream_id].data += event.data
            self.received += event.flow_controlled_length
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.streams[event.stream_id].reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.terminated = event

    async def aclose(self) -> None:
        await self.stream.aclose()
