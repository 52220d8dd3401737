"""The operator app in a real daemon: which listener serves what, idle connections, load.

Health, readiness and metrics go where ``[metrics] listen`` says; the OAuth protected-resource
metadata stays on the main listener (clients look for it at the MCP origin); every other path
there is the JSON 404 clients parse. (Route-level behaviour: tests/transport/test_operator.py.)
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support.client import Legacy
from support.daemon import WAIT, Daemon, daemon_config, wait_for_file

OAUTH = """
[auth]
mode = "oauth"
resource = "https://mcp.example.com/mcp"

[auth.oauth]
issuer = "https://idp.example.com"
"""


def health_url(daemon: Daemon) -> str:
    [bind] = daemon.events("daemon.listening")[0]["health_binds"]
    return str(bind)


@pytest.fixture(scope="module")
def oauth_daemon(
    tmp_path_factory: pytest.TempPathFactory, plugin_site: Path, markers: Path
) -> Iterator[Daemon]:
    extra = OAUTH + '\n[metrics]\nlisten = ["127.0.0.1:0"]\n'
    config = daemon_config(tmp_path_factory.mktemp("oauth") / "mcpd.toml", markers, extra)
    daemon = Daemon.start(config, pythonpath=plugin_site)
    yield daemon
    assert daemon.stop() == 0


def test_metadata_on_the_main_listener_health_on_its_own(
    oauth_daemon: Daemon, http: httpx.Client
) -> None:
    main, health = oauth_daemon.binds[0], health_url(oauth_daemon)
    for path in (
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ):
        document = http.get(main + path)
        assert document.status_code == 200
        assert document.json()["resource"] == "https://mcp.example.com/mcp"
        assert document.json()["authorization_servers"] == ["https://idp.example.com"]
        # Not where health and metrics are: clients find it at the MCP origin.
        elsewhere = http.get(health + path)
        assert elsewhere.status_code == 404
        assert elsewhere.json()["error"]["message"] == f"nothing at {path}"
    assert http.get(health + "/readyz").json()["status"] == "ready"
    missing = http.get(main + "/readyz")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no MCP endpoint at /readyz"


def test_no_metadata_without_oauth(daemon: Daemon, http: httpx.Client) -> None:
    response = http.get(daemon.binds[0] + "/.well-known/oauth-protected-resource")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the daemon sends until it closes the connection (bounded by WAIT)."""
    sock.settimeout(WAIT)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_an_idle_keep_alive_connection_is_closed(
    tmp_path: Path, plugin_site: Path, markers: Path
) -> None:
    config = daemon_config(tmp_path / "mcpd.toml", markers)
    config.write_text(
        config.read_text().replace("[server]", "[server]\nkeep_alive_timeout_seconds = 0.2")
    )
    daemon = Daemon.start(config, pythonpath=plugin_site)
    try:
        url = urlsplit(daemon.binds[0])
        for path in ("/healthz", "/metrics", "/nowhere"):
            with socket.create_connection((url.hostname, url.port)) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                # The answer, then the close: quart's responses leave hypercorn's idle
                # timer working (a recv timeout would raise instead).
                answer = read_until_closed(sock)
                assert answer.startswith(b"HTTP/1.1 "), answer
                assert b"connection: close" not in answer.lower()
    finally:
        assert daemon.stop() == 0


def test_metrics_answer_while_calls_keep_the_daemon_busy(
    daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    """32 calls stream progress while scrapes and readiness probes are answered; ending their
    session then cancels them all."""
    tags = [f"busy-{uuid.uuid4().hex[:8]}" for _ in range(32)]
    client = Legacy(http, daemon.url).initialize()

    def run(tag: str) -> None:
        body = {
            "jsonrpc": "2.0",
            "id": tag,
            "method": "tools/call",
            "params": {"name": "slow", "arguments": {"seconds": 600, "tag": tag}},
        }
        with httpx.Client(timeout=WAIT) as own:
            assert own.post(daemon.url, json=body, headers=client.headers()).status_code == 200

    with ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(len(tags)))
        calls = [pool.submit(run, tag) for tag in tags]
        deadline = time.monotonic() + WAIT
        while http.get(daemon.binds[0] + "/readyz").json()["in_flight"] < len(tags):
            assert time.monotonic() < deadline
        for _ in range(20):
            scrape = http.get(daemon.binds[0] + "/metrics")
            assert scrape.status_code == 200
            assert "mcpd_tool_calls_in_flight" in scrape.text
        assert http.delete(daemon.url, headers=client.headers()).status_code == 200
        for future in calls:
            future.result(timeout=WAIT)
    for tag in tags:
        assert wait_for_file(markers / f"{tag}.json")["outcome"] == "cancelled"
