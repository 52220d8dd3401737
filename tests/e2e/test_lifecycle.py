"""Start-up, plugin isolation and shutdown of a real daemon process, with real signals."""

from __future__ import annotations

import signal
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import Legacy, parse_sse
from support.daemon import Daemon, daemon_config, wait_for_file, write_config


def test_broken_plugins_are_logged_and_skipped(daemon: Daemon, http: httpx.Client) -> None:
    failures = {entry["plugin"]: entry for entry in daemon.events("plugin.load_failed")}
    for broken in ("broken_import", "bad_hook", "raising_hook", "zz_duplicate"):
        assert any(broken in name for name in failures), failures.keys()
    assert all(entry.get("distribution") for entry in failures.values())
    client = Legacy(http, daemon.url).initialize()
    assert client.call("echo", {"text": "still here"})["content"][0]["text"] == "still here"


def test_example_plugin_tools_are_served(daemon: Daemon, http: httpx.Client) -> None:
    loaded = [e for e in daemon.events("plugin.loaded") if e.get("plugin") == "example"]
    assert loaded, daemon.events("plugin.loaded")


@pytest.fixture
def own_daemon(tmp_path: Path, plugin_site: Path, markers: Path) -> Daemon:
    config = daemon_config(tmp_path / "mcpd.toml", markers)
    return Daemon.start(config, pythonpath=plugin_site)


def _long_call(tag: str, seconds: float) -> dict[str, Any]:
    params = {
        "name": "slow",
        "arguments": {"seconds": seconds, "tag": tag},
        "_meta": {"progressToken": 1},
    }
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def _post_in_thread(client: Legacy, body: dict[str, Any], out: list[str]) -> threading.Thread:
    """POST from a thread and return once the call has reported progress (it is running)."""
    running = threading.Event()

    def run() -> None:
        with (
            httpx.Client(timeout=60) as http,
            http.stream("POST", client.url, json=body, headers=client.headers()) as response,
        ):
            for line in response.iter_lines():
                out.append(line)
                if "notifications/progress" in line:
                    running.set()
        running.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert running.wait(30), "the call never reported progress"
    return thread


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_cancels_long_calls_with_a_terminal_error(
    own_daemon: Daemon, http: httpx.Client, markers: Path, signum: int
) -> None:
    client = Legacy(http, own_daemon.url).initialize()
    tag = f"shutdown-{uuid.uuid4().hex[:8]}"
    out: list[str] = []
    thread = _post_in_thread(client, _long_call(tag, 120), out)
    assert own_daemon.stop(signum) == 0
    thread.join(30)
    marker = wait_for_file(markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"
    assert "shutting down" in marker["reason"]
    final = parse_sse("\n".join(out))[-1]
    assert final["id"] == 1
    assert final["error"]["code"] == -32000


def test_shutdown_lets_short_calls_finish(
    own_daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    client = Legacy(http, own_daemon.url).initialize()
    tag = f"drain-{uuid.uuid4().hex[:8]}"
    out: list[str] = []
    thread = _post_in_thread(client, _long_call(tag, 1.0), out)
    own_daemon.signal(signal.SIGTERM)
    own_daemon.wait_for("daemon.draining")
    refused = http.post(
        own_daemon.url, json={"jsonrpc": "2.0", "id": 9, "method": "ping"}, headers=client.headers()
    )
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == -32000
    assert own_daemon.wait() == 0
    thread.join(30)
    assert wait_for_file(markers / f"{tag}.json")["outcome"] == "completed"
    assert parse_sse("\n".join(out))[-1]["result"].get("isError", False) is False


def test_second_signal_skips_the_grace_period(
    tmp_path: Path, plugin_site: Path, markers: Path, http: httpx.Client
) -> None:
    config = (
        daemon_config(tmp_path / "mcpd.toml", markers)
        .read_text()
        .replace("shutdown_grace_seconds = 2", "shutdown_grace_seconds = 600")
    )
    daemon = Daemon.start(write_config(tmp_path / "patient.toml", config), pythonpath=plugin_site)
    client = Legacy(http, daemon.url).initialize()
    tag = f"hurry-{uuid.uuid4().hex[:8]}"
    out: list[str] = []
    thread = _post_in_thread(client, _long_call(tag, 600), out)
    daemon.signal(signal.SIGTERM)
    daemon.wait_for("daemon.draining")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    thread.join(30)
    assert "shutting down" in wait_for_file(markers / f"{tag}.json")["reason"]
    assert daemon.events("daemon.hurrying")


def test_idle_keepalive_connections_do_not_hold_shutdown(own_daemon: Daemon) -> None:
    client = httpx.Client(timeout=30)
    Legacy(client, own_daemon.url).initialize()  # leaves a kept-alive idle connection open
    assert own_daemon.stop() == 0
    client.close()


def test_parse_sse_helper_ignores_comments() -> None:
    assert parse_sse(': keep-alive\n\nevent: message\ndata: {"a":1}\n\n') == [{"a": 1}]


def test_serves_tcp_and_unix_socket_binds(tmp_path: Path, plugin_site: Path, markers: Path) -> None:
    sock = tmp_path / "mcpd.sock"
    text = daemon_config(tmp_path / "mcpd.toml", markers).read_text()
    text = text.replace('listen = ["127.0.0.1:0"]', f'listen = ["127.0.0.1:0", "unix:{sock}"]')
    daemon = Daemon.start(write_config(tmp_path / "both.toml", text), pythonpath=plugin_site)
    try:
        assert len(daemon.binds) == 2
        assert sock.is_socket()
        transport = httpx.HTTPTransport(uds=str(sock))
        with httpx.Client(transport=transport, timeout=30) as over_unix:
            client = Legacy(over_unix, "http://localhost/mcp").initialize()
            assert client.call("echo", {"text": "via unix"})["content"][0]["text"] == "via unix"
    finally:
        assert daemon.stop() == 0


def test_idle_keepalive_connection_is_closed_by_the_server(
    tmp_path: Path, plugin_site: Path, markers: Path
) -> None:
    """An idle keep-alive connection is closed at the keep-alive timeout.

    This is the behaviour hypercorn defect B breaks for apps that cancel themselves on
    http.disconnect; the regression test of the fix itself is in tests/transport.
    """
    text = daemon_config(tmp_path / "mcpd.toml", markers).read_text()
    text = text.replace("[server]\n", "[server]\nkeep_alive_timeout_seconds = 0.5\n")
    daemon = Daemon.start(write_config(tmp_path / "ka.toml", text), pythonpath=plugin_site)
    try:
        host, port = daemon.binds[0].split("//")[1].rsplit(":", 1)
        body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
        request = (
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(request)
            received = b""
            while True:
                chunk = sock.recv(65536)  # returns b"" only once the server closes the connection
                if not chunk:
                    break
                received += chunk
        assert received.startswith(b"HTTP/1.1 400")
        # A busy connection is never closed by the idle timer: a call outlasting the
        # keep-alive timeout completes, and the same connection serves the next request.
        with httpx.Client(timeout=30) as http:
            client = Legacy(http, daemon.url).initialize()
            result = client.call("slow", {"seconds": 1.5, "tag": f"busy-{uuid.uuid4().hex[:8]}"})
            assert result.get("isError", False) is False
            assert client.rpc("ping")["result"] == {}
    finally:
        assert daemon.stop() == 0


def test_logs_hold_no_session_ids_or_arguments(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    secret = f"secret-{uuid.uuid4().hex}"
    assert client.call("echo", {"text": secret})["content"][0]["text"] == secret
    call = daemon.wait_for(
        "audit", lambda e: e.get("tool") == "echo" and e.get("session") == client.session_id[:8]
    )
    assert call["outcome"] == "ok"
    text = "".join(daemon.raw)
    assert client.session_id not in text
    assert secret not in text


def test_a_successful_call_is_one_line_and_a_failed_one_says_more(
    daemon: Daemon, http: httpx.Client
) -> None:
    client = Legacy(http, daemon.url).initialize()
    session = client.session_id[:8]
    assert client.call("echo", {"text": "fine"})["content"][0]["text"] == "fine"
    assert client.call("fail", {"message": "no"})["isError"] is True
    # Both audited; wait for the second, so both calls' lines are in.
    failed = daemon.wait_for(
        "audit", lambda e: e.get("session") == session and e.get("name") == "fail"
    )
    assert (failed["outcome"], failed["reason"]) == ("error", "tool_error")
    ours = [entry for entry in daemon.logs if entry.get("session") == session]
    per_call = [(e["event"], e.get("tool")) for e in ours if e.get("tool") in ("echo", "fail")]
    # The success: its audit event alone; the failure: the tool's own line too.
    assert per_call == [("audit", "echo"), ("tool.call", "fail"), ("audit", "fail")]
