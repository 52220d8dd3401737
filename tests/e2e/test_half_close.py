"""A real daemon and clients that half-close: the request is answered; only a real disconnect cancels.

Raw sockets, so that the bytes on the wire are what is asserted (status line included), and
the fixture plugin's ``slow`` tool, which records in its ``finally`` whether it completed or
was cancelled. The h2c case checks that END_STREAM (HTTP/2's end of a request) still works.
"""

from __future__ import annotations

import json
import socket
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from support.daemon import WAIT, Daemon, daemon_config, wait_for_file, write_config
from support.eras import headers_for, modern_body
from support.h2c import H2c


def _post(daemon: Daemon, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers_for(body).items())
    return head.encode() + b"\r\n" + data


def _slow(seconds: float, tag: str) -> dict[str, Any]:
    return modern_body(
        "tools/call", {"name": "slow", "arguments": {"seconds": seconds, "tag": tag}}
    )


def _address(daemon: Daemon) -> tuple[str, int]:
    host, _, port = daemon.binds[0].removeprefix("http://").rpartition(":")
    return host, int(port)


def _read_to_eof(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _dechunk(body: bytes) -> bytes:
    """A chunked HTTP/1.1 body's payload."""
    payload = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return payload
        payload += rest[:size]
        body = rest[size + 2 :]
    raise AssertionError("the chunked body has no last chunk")


def _sse_messages(payload: bytes) -> list[dict[str, Any]]:
    return [
        json.loads(line[5:])
        for line in payload.decode().splitlines()
        if line.startswith("data:") and line[5:].strip()
    ]


def test_a_half_closed_request_gets_its_full_answer(daemon: Daemon, markers: Path) -> None:
    tag = f"half-closed-{uuid.uuid4().hex[:8]}"
    with socket.create_connection(_address(daemon), timeout=WAIT) as sock:
        sock.sendall(_post(daemon, _slow(0.3, tag)))
        sock.shutdown(socket.SHUT_WR)  # complete request sent; the client only reads now
        received = _read_to_eof(sock)  # the daemon closes after answering
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    # At the EOF the daemon probed the client with an SSE comment (a closed client would
    # have reset), so the answer came as an event stream.
    assert b"content-type: text/event-stream" in head.lower()
    (answer,) = _sse_messages(_dechunk(body))
    assert answer["result"]["content"][0]["text"] == "slept 0.3s"
    assert wait_for_file(markers / f"{tag}.json")["outcome"] == "completed"


@pytest.fixture(scope="module")
def quiet(
    tmp_path_factory: pytest.TempPathFactory, plugin_site: Path, markers: Path
) -> Iterator[Daemon]:
    """A daemon whose keep-alives come only every 10 minutes: only the probe can find a
    client gone before the test's bound."""
    path = tmp_path_factory.mktemp("quiet") / "mcpd.toml"
    text = daemon_config(path, markers).read_text()
    text = text.replace("sse_keepalive_seconds = 0.5", "sse_keepalive_seconds = 600")
    running = Daemon.start(write_config(path, text), pythonpath=plugin_site)
    yield running
    assert running.stop() == 0


def test_a_client_that_closes_a_silent_call_is_noticed(quiet: Daemon, markers: Path) -> None:
    """A FIN is probed at once: a call that writes nothing is still cancelled, long before
    its first keep-alive would have found the client gone (the tool would run 120 s)."""
    tag = f"closed-{uuid.uuid4().hex[:8]}"
    with socket.create_connection(_address(quiet), timeout=WAIT) as sock:
        sock.sendall(_post(quiet, _slow(120, tag)))
    marker = wait_for_file(markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"
    assert "client disconnected" in marker["reason"]


@pytest.mark.parametrize("half_closed", [False, True])
def test_a_reset_still_cancels_the_request(
    daemon: Daemon, markers: Path, half_closed: bool
) -> None:
    """A reset is a real disconnect, also after a half-close (seen by the next write)."""
    tag = f"reset-{uuid.uuid4().hex[:8]}"
    body = _slow(30, tag)
    body["params"]["_meta"]["progressToken"] = tag
    with socket.create_connection(_address(daemon), timeout=WAIT) as sock:
        sock.sendall(_post(daemon, body))
        if half_closed:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while b"notifications/progress" not in received:  # the call is running
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    marker = wait_for_file(markers / f"{tag}.json")  # closed above with RST
    assert marker == {"outcome": "cancelled", "reason": "client disconnected"}


def test_daemon_errors_carry_a_reason_phrase(daemon: Daemon) -> None:
    with socket.create_connection(_address(daemon), timeout=WAIT) as sock:
        sock.sendall(b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 404 Not Found\r\n")


async def test_h2c_end_stream_still_ends_the_request(daemon: Daemon, markers: Path) -> None:
    tag = f"h2c-end-stream-{uuid.uuid4().hex[:8]}"
    body = _slow(0.3, tag)
    client = await H2c.connect(_address(daemon))
    try:
        data = json.dumps(body).encode()
        headers = [*headers_for(body).items(), ("content-length", str(len(data)))]
        stream = await client.request("POST", "/mcp", headers, data)  # END_STREAM on the body
        with trio.fail_after(WAIT):
            await client.until(lambda: client.streams[stream].ended)
    finally:
        await client.aclose()
    assert (b":status", b"200") in client.streams[stream].headers
    answer = json.loads(bytes(client.streams[stream].data))
    assert answer["result"]["content"][0]["text"] == "slept 0.3s"
    assert wait_for_file(markers / f"{tag}.json")["outcome"] == "completed"
