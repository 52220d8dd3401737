"""A tiny HTTP server on 127.0.0.1 in a thread: routes you set, and a log of what it received.

For the authorization-server side of the auth tests (a JWKS endpoint, issuer metadata, an
RFC 7662 introspection endpoint). It runs outside trio, so it answers while a test's trio
clock stands still (``MockClock`` without autojump), and tests count the requests it got.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Answer:
        return cls(status, json.dumps(value).encode())


Handler = Callable[[Received], Answer]


@dataclass
class LoopbackServer:
    routes: dict[str, Handler] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def serve_json(self, path: str, value: Any) -> None:
        """Answer GET/POST ``path`` with ``value`` as JSON (replacing any earlier route)."""
        self.routes[path] = lambda _request: Answer.json(value)

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [request for request in self.received if request.path == path]

    def _handle(self, request: Received) -> Answer:
        with self._lock:
            self.received.append(request)
        handler = self.routes.get(request.path.split("?")[0])
        return handler(request) if handler else Answer.json({"error": "not found"}, 404)


def _handler_class(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = server._handle(Received(self.command, self.path, headers, body))
            self.send_response(answer.status)
            self.send_header("content-type", answer.content_type)
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def loopback_server() -> Iterator[LoopbackServer]:
    """Start a server on an ephemeral loopback port; it stops when the block ends."""
    server = LoopbackServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(server))
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
