"""A closed-loop h2c (prior knowledge) load generator on the ``h2`` library: N connections,
one stream in flight on each, a fresh JSON-RPC id per request. One thread, selectors."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
from load import Result

Body = Callable[[], bytes]


class _Conn:
    def __init__(self, port: int, path: str, headers: list[tuple[str, str]]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.sock.sendall(self.h2.data_to_send())
        self.sock.setblocking(False)
        self.path, self.headers = path, headers
        self.sent_at = 0.0
        self.failed = False

    def send(self, body: bytes) -> None:
        stream = self.h2.get_next_available_stream_id()
        headers = [(":method", "POST"), (":path", self.path), (":scheme", "http")]
        headers += [(":authority", "127.0.0.1"), *self.headers]
        headers.append(("content-length", str(len(body))))
        self.h2.send_headers(stream, headers)
        self.h2.send_data(stream, body, end_stream=True)
        self.sent_at = time.perf_counter()
        self.sock.sendall(self.h2.data_to_send())

    def receive(self) -> bool | None:
        """Read what arrived; True once the stream in flight has ended, None once the
        connection is over (EOF, GOAWAY, or the stream refused: after keep_alive_max_requests)."""
        data = self.sock.recv(65536)
        if not data:
            return None
        ended: bool | None = False
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.ResponseReceived):
                self.failed = dict(event.headers).get(b":status") != b"200"
            elif isinstance(event, h2.events.StreamEnded):
                ended = True
            elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                return None
        if data := self.h2.data_to_send():
            self.sock.sendall(data)
        return ended


def run(
    port: int,
    path: str,
    body: Body,
    headers: dict[str, str],
    *,
    connections: int,
    seconds: float,
) -> Result:
    pairs = [(name.lower(), value) for name, value in headers.items()]
    conns = [_Conn(port, path, pairs) for _ in range(connections)]
    selector = selectors.DefaultSelector()
    result = Result(seconds=seconds)
    try:
        for conn in conns:
            selector.register(conn.sock, selectors.EVENT_READ, conn)
            conn.send(body())
        stop_at = time.perf_counter() + seconds
        while time.perf_counter() < stop_at:
            for key, _ in selector.select(timeout=1.0):
                conn = key.data
                ended = conn.receive()
                if ended is None:
                    # Reconnect and ask again, as load.py does over HTTP/1.1.
                    selector.unregister(conn.sock)
                    conn.sock.close()
                    conns[conns.index(conn)] = conn = _Conn(port, path, pairs)
                    selector.register(conn.sock, selectors.EVENT_READ, conn)
                    result.reconnects += 1
                    conn.send(body())
                elif ended:
                    result.requests += 1
                    result.errors += conn.failed
                    result.latencies.append(time.perf_counter() - conn.sent_at)
                    conn.send(body())
    finally:
        for conn in conns:
            conn.sock.close()
    return result
