"""What mcpd costs besides throughput: memory per idle session and per session with an open GET
stream, disconnect-to-finally latency, and server CPU while 1,000 calls are pending."""

from __future__ import annotations

import selectors
import socket
import statistics
import struct
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from load import build_request
from servers import (
    Server,
    legacy_headers,
    legacy_session,
    modern_headers,
    modern_meta,
    port_of,
    start_mcpd,
    tool_call,
)

SESSIONS = 1000
_RST = struct.pack("ii", 1, 0)


def run_all(site: Path, markers: Path, work: Path, trials: int) -> dict[str, Any]:
    return {
        "memory": session_memory(site, markers, work),
        "memory_with_get_stream": stream_memory(site, markers, work),
        "cancellation": cancel_latency(site, markers, work, trials),
        "pending_calls": pending_calls(site, markers, work),
    }


# One client opening 2,050 sessions as fast as it can is what [limits] exists to stop
# (handshakes_per_second, max_sessions_per_principal); they are off here, where the cost of a
# session is measured, not the limits.
MANY_SESSIONS = "[limits]\nhandshakes_per_second = 0\nmax_sessions_per_principal = 0\n"
# Likewise 1,000 calls of one client running at once in one session (its
# max_concurrent_per_principal, and [server] max_requests_per_session).
MANY_CALLS = "[limits]\nmax_concurrent_per_principal = 0\n"


def session_memory(site: Path, markers: Path, work: Path) -> dict[str, Any]:
    """VmRSS growth per idle legacy session (initialize + initialized), over 1,000, twice."""
    server = start_mcpd(site, markers, work, tables=MANY_SESSIONS)
    url = f"http://127.0.0.1:{port_of(server)}/mcp"
    per_session = []
    try:
        with httpx.Client(timeout=30) as http:
            for _ in range(50):  # warm-up: one-time allocations are not per-session cost
                legacy_session(http, url)
            for _ in range(2):
                before = server.rss_kib()
                for _ in range(SESSIONS):
                    legacy_session(http, url)
                per_session.append(round((server.rss_kib() - before) * 1024 / SESSIONS))
    finally:
        server.stop()
    return {"bytes_per_idle_session": per_session}


def _open_get_stream(port: int, session: str) -> socket.socket:
    headers = {**legacy_headers(session), "Accept": "text/event-stream"}
    head = build_request("/mcp", b"", headers).replace(b"POST", b"GET", 1)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head)
    seen = b""
    while b"\r\n\r\n" not in seen:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("GET stream refused")
        seen += chunk
    if not seen.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET stream refused: {seen[:100]!r}")
    return sock


def stream_memory(site: Path, markers: Path, work: Path) -> dict[str, Any]:
    """VmRSS growth per session that holds an open GET stream (its socket, its tasks)."""
    server = start_mcpd(site, markers, work, tables=MANY_SESSIONS)
    port = port_of(server)
    url = f"http://127.0.0.1:{port}/mcp"
    socks: list[socket.socket] = []
    try:
        with httpx.Client(timeout=30) as http:
            for _ in range(50):
                socks.append(_open_get_stream(port, legacy_session(http, url)))
            sessions = [legacy_session(http, url) for _ in range(SESSIONS)]
            before = server.rss_kib()
            socks += [_open_get_stream(port, session) for session in sessions]
            after = server.rss_kib()
            idle = [legacy_session(http, url) for _ in range(SESSIONS)]
            after_idle = server.rss_kib()
        return {
            "bytes_per_session_with_get_stream": round(
                (after - before) * 1024 / SESSIONS + (after_idle - after) * 1024 / len(idle)
            ),
            "bytes_per_get_stream_alone": round((after - before) * 1024 / SESSIONS),
        }
    finally:
        for sock in socks:
            sock.close()
        server.stop()


def _wait_marker(path: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return path.stat().st_mtime_ns
        time.sleep(0.0005)
    raise RuntimeError(f"{path} never appeared")


def _one_cancel(
    port: int, body: bytes, headers: dict[str, str], marker: Path, *, reset: bool
) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(build_request("/mcp", body, headers))
        seen = b""
        while b"notifications/progress" not in seen:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("stream ended before progress")
            seen += chunk
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        closed_at = time.time_ns()
    return (_wait_marker(marker) - closed_at) / 1e6


def cancel_latency(site: Path, markers: Path, work: Path, trials: int) -> dict[str, Any]:
    """Client close (RST, and FIN) of a running call's stream → the tool's finally ran.

    Legacy disconnects cancel at once only without stream resumption (its window keeps a
    dropped request running for the client to come back), so this daemon runs without. A FIN
    alone may be a half-close (the client still reads), so it is noticed by the next write
    that fails (``slow`` reports progress every 50 ms)."""
    server = start_mcpd(site, markers, work, "resume_window_seconds = 0")
    port = port_of(server)
    out: dict[str, Any] = {}
    try:
        with httpx.Client(timeout=30) as http:
            session = legacy_session(http, f"http://127.0.0.1:{port}/mcp")
        for era in ("legacy", "modern"):
            for reset in (True, False):
                samples = []
                for i in range(trials):
                    tag = f"{era}-{reset}-{i}-{time.monotonic_ns()}"
                    args = {"seconds": 60, "tag": tag}
                    if era == "legacy":
                        body = tool_call("slow", args, {"progressToken": tag})
                        headers = legacy_headers(session)
                    else:
                        body = tool_call("slow", args, modern_meta(progressToken=tag))
                        headers = modern_headers("slow")
                    marker = markers / f"{tag}.json"
                    samples.append(_one_cancel(port, body, headers, marker, reset=reset))
                out[f"{era} {'RST' if reset else 'FIN'}"] = {
                    "p50_ms": round(statistics.median(samples), 2),
                    "max_ms": round(max(samples), 2),
                    "trials": trials,
                }
    finally:
        server.stop()
    return out


def pending_calls(site: Path, markers: Path, work: Path, calls: int = 1000) -> dict[str, Any]:
    """Server CPU while ``calls`` legacy calls of ``nap`` (silent) are all pending: the cost
    of waiting itself (timers, keep-alives, the priming event after a second)."""
    server = start_mcpd(
        site, markers, work, f"max_requests_per_session = {calls}", tables=MANY_CALLS
    )
    port = port_of(server)
    socks: list[socket.socket] = []
    stop = threading.Event()
    try:
        with httpx.Client(timeout=30) as http:
            session = legacy_session(http, f"http://127.0.0.1:{port}/mcp")
        for i in range(calls):
            body = tool_call("nap", {"seconds": 60}, {"progressToken": i})
            body = body.replace(b'"id": 1', f'"id": {i + 1}'.encode())  # one session: ids differ
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(build_request("/mcp", body, legacy_headers(session)))
            socks.append(sock)
        reader = threading.Thread(target=_drain, args=(socks, stop), daemon=True)
        reader.start()
        time.sleep(3)  # every call started and streaming
        before, started = server.cpu_seconds(), time.monotonic()
        time.sleep(5)
        cpu = server.cpu_seconds() - before
        return {"calls": calls, "server_cores": round(cpu / (time.monotonic() - started), 2)}
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        server.stop()


def _drain(socks: list[socket.socket], stop: threading.Event) -> None:
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.2):
            try:
                key.fileobj.recv(65536)  # type: ignore[union-attr]
            except OSError:
                selector.unregister(key.fileobj)


__all__ = ["Server", "run_all"]
