"""A closed-loop HTTP/1.1 load generator: N keep-alive connections, one request in flight on
each, a fresh JSON-RPC id per request, responses framed by Content-Length or chunked. One
thread, selectors. bench.py checks it against a trivially fast responder (fast_responder.py)
and prefers wrk when it is installed."""

from __future__ import annotations

import itertools
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    # Percentiles measured elsewhere (wrk's), preferred over ``latencies``; 100 is the max.
    percentiles: dict[float, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if p in self.percentiles:
            return self.percentiles[p]
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


class _Conn:
    __slots__ = ("buffer", "need", "sent_at", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.need = -1
        self.sent_at = 0.0


def build_request(
    path: str, body: bytes, headers: dict[str, str], host: str = "127.0.0.1"
) -> bytes:
    # The SDK's DNS-rebinding check wants the port in Host (it answers 421 otherwise).
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Requests:
    """Requests with a fresh JSON-RPC id each (real clients never reuse an id in flight).

    Ids never repeat within one process: a legacy session keeps a request whose connection
    dropped (stream resumption), so a later run reusing its id would be refused."""

    _ids = itertools.count(1)

    def __init__(
        self, path: str, body: bytes, headers: dict[str, str], host: str = "127.0.0.1"
    ) -> None:
        if b'"id": 1' not in body and b'"id":1' not in body:
            raise ValueError("the body template must carry id 1")
        self._path, self._headers, self._host = path, headers, host
        self._head, _, self._tail = body.replace(b'"id":1', b'"id": 1').partition(b'"id": 1')

    def __call__(self) -> bytes:
        body = self._head + b'"id": ' + str(next(Requests._ids)).encode() + self._tail
        return build_request(self._path, body, self._headers, self._host)


def _complete(conn: _Conn) -> bool:
    if conn.need < 0:
        end = conn.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = conn.buffer[:end].lower()
        start = head.find(b"content-length:")
        if start < 0:
            if b"transfer-encoding: chunked" not in head:
                raise RuntimeError(f"response without framing: {conn.buffer[:200]!r}")
            # An SSE answer: complete at the terminating zero-length chunk.
            last = conn.buffer.find(b"\r\n0\r\n\r\n", end)
            if last < 0:
                return False
            conn.need = last + 7
            return True
        length = int(
            head[start + 15 : head.find(b"\r\n", start) if head.find(b"\r\n", start) > 0 else None]
        )
        conn.need = end + 4 + length
    return len(conn.buffer) >= conn.need


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def run(
    host: str,
    port: int,
    request: Callable[[], bytes],
    *,
    connections: int,
    warmup: float,
    seconds: float,
) -> Result:
    """Drive the server for ``warmup`` + ``seconds``; only the second period is measured."""
    load = _Load(host, port, request, connections)
    try:
        return load.drive(warmup, seconds)
    finally:
        load.close()


class _Load:
    def __init__(
        self, host: str, port: int, request: Callable[[], bytes], connections: int
    ) -> None:
        self.host, self.port, self.request = host, port, request
        self.selector = selectors.DefaultSelector()
        self.conns = [_Conn(_connect(host, port)) for _ in range(connections)]
        for conn in self.conns:
            self.selector.register(conn.sock, selectors.EVENT_READ, conn)
        self.result = Result()

    def drive(self, warmup: float, seconds: float) -> Result:
        now = time.perf_counter()
        measure_from, stop_at = now + warmup, now + warmup + seconds
        for conn in self.conns:
            conn.sent_at = now
            conn.sock.sendall(self.request())
        cpu_start = None
        while (now := time.perf_counter()) < stop_at:
            if cpu_start is None and now >= measure_from:
                cpu_start = time.process_time()
            for key, _ in self.selector.select(timeout=1.0):
                self._readable(key.data, measure_from)
        self.result.seconds = seconds
        self.result.client_cpu = time.process_time() - (cpu_start or time.process_time())
        return self.result

    def _readable(self, conn: _Conn, measure_from: float) -> None:
        chunk = conn.sock.recv(65536)
        if not chunk:
            self._reconnect(conn)
            return
        conn.buffer += chunk
        if not _complete(conn):
            return
        done = time.perf_counter()
        answer = conn.buffer[: conn.need]
        if not answer.startswith(b"HTTP/1.1 200") or b'"error"' in answer:
            self.result.errors += 1
        if done >= measure_from:
            self.result.requests += 1
            self.result.latencies.append(done - conn.sent_at)
        conn.buffer, conn.need, conn.sent_at = conn.buffer[conn.need :], -1, done
        conn.sock.sendall(self.request())

    def _reconnect(self, conn: _Conn) -> None:
        # hypercorn closes a connection after keep_alive_max_requests (1000): reconnect and
        # resend the unanswered request, as a real client would.
        self.selector.unregister(conn.sock)
        conn.sock.close()
        conn.sock = _connect(self.host, self.port)
        self.selector.register(conn.sock, selectors.EVENT_READ, conn)
        conn.buffer, conn.need = b"", -1
        conn.sock.sendall(self.request())
        self.result.reconnects += 1

    def close(self) -> None:
        for conn in self.conns:
            self.selector.unregister(conn.sock)
            conn.sock.close()
