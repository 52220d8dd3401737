"""Bad input gets the right status and a JSON-RPC error body; the daemon stays healthy."""

from __future__ import annotations

import socket

import httpx
import pytest
from support.client import ACCEPT, Legacy
from support.daemon import Daemon

JSON = {"accept": ACCEPT, "content-type": "application/json"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", JSON, 400, -32700),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', JSON, 400, -32600),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', JSON, 400, -32600),
        (b"[]", JSON, 400, -32600),
        (b'"hello"', JSON, 400, -32600),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
            {**JSON, "content-type": "text/plain"},
            415,
            -32600,
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
            {**JSON, "accept": "application/json"},
            406,
            -32600,
        ),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
            {**JSON, "origin": "https://evil.example"},
            403,
            -32600,
        ),
        (b"x" * 70_000, JSON, 413, -32600),
    ],
)
def test_bad_posts(
    daemon: Daemon, http: httpx.Client, body: bytes, headers: dict[str, str], status: int, code: int
) -> None:
    response = http.post(daemon.url, content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["jsonrpc"] == "2.0"


def test_chunked_body_over_the_limit(daemon: Daemon, http: httpx.Client) -> None:
    def chunks() -> object:
        for _ in range(20):
            yield b" " * 8192

    response = http.post(daemon.url, content=chunks(), headers=JSON)  # type: ignore[arg-type]
    assert response.status_code == 413


def test_other_methods_and_paths(daemon: Daemon, http: httpx.Client) -> None:
    response = http.put(daemon.url, json=PING, headers=JSON)
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    elsewhere = http.post(daemon.url.rsplit("/", 1)[0] + "/nope", json=PING, headers=JSON)
    assert elsewhere.status_code == 404


def test_get_needs_session_and_accept(daemon: Daemon, http: httpx.Client) -> None:
    assert http.get(daemon.url, headers={"accept": "text/event-stream"}).status_code == 400
    client = Legacy(http, daemon.url).initialize()
    assert (
        http.get(daemon.url, headers={**client.headers(), "accept": "application/json"}).status_code
        == 406
    )


def test_get_stream_keeps_alive_and_ends_with_the_session(daemon: Daemon) -> None:
    with httpx.Client(timeout=30) as one, httpx.Client(timeout=30) as two:
        client = Legacy(one, daemon.url).initialize()
        headers = {**client.headers(), "accept": "text/event-stream"}
        with one.stream("GET", daemon.url, headers=headers) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(line for line in lines if line).startswith(":")
            second = two.get(daemon.url, headers=headers)
            assert second.status_code == 409
            assert two.delete(daemon.url, headers=client.headers()).status_code == 200
            rest = list(lines)  # the stream ends once the session is gone
        assert all(not line or line.startswith(":") for line in rest)


def test_origin_allowed_for_loopback(daemon: Daemon, http: httpx.Client) -> None:
    response = http.post(
        daemon.url, json={**PING}, headers={**JSON, "origin": "http://localhost:6274"}
    )
    assert response.status_code == 400  # allowed through Origin; fails later for lack of a session


def test_garbage_on_the_socket_leaves_the_daemon_healthy(
    daemon: Daemon, http: httpx.Client
) -> None:
    host, port = daemon.url.split("//")[1].split("/")[0].rsplit(":", 1)
    for junk in (
        b"\x16\x03\x01\x00\x05hello\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /mcp HTTP/1.1\r\nContent-Length: 99\r\n\r\n{",
    ):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass
    assert Legacy(http, daemon.url).initialize().rpc("ping")["result"] == {}
