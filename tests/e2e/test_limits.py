"""Limits per principal on a real daemon: sessions, request rates, a per-tool rule and a
concurrency cap, each refused with HTTP 429, ``Retry-After`` and a JSON-RPC error naming the
limit. Anonymous callers are told apart by address, which a trusted proxy's
``X-Forwarded-For`` gives (the tests' loopback client is that proxy)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.client import Legacy
from support.daemon import WAIT, Daemon, write_config
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "plugins"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    site = tmp_path_factory.mktemp("limits-site")
    install_plugins(site, FIXTURES / "mcpd-fixture-probe")
    config = write_config(
        tmp_path_factory.mktemp("limits-cfg") / "mcpd.toml",
        """
[server]
listen = ["127.0.0.1:0"]
trusted_proxies = ["127.0.0.1"]
shutdown_grace_seconds = 1

[plugins]
enable = ["probe"]

[limits]
max_sessions_per_principal = 2
requests_per_second = 1.0
burst = 3
max_concurrent_per_principal = 1
queue_timeout_seconds = 0.2

[[limits.tools]]
tools = ["probe_echo"]
rate = 0.5
burst = 1
""",
    )
    running = Daemon.start(config, pythonpath=site)
    yield running
    assert running.stop() == 0


class From(Legacy):
    """A legacy session of a client at ``address`` (behind the trusted proxy)."""

    def __init__(self, http: httpx.Client, url: str, address: str) -> None:
        super().__init__(http, url)
        self.address = address

    def headers(self, **extra: str) -> dict[str, str]:
        return super().headers(**{"x-forwarded-for": self.address, **extra})


def _assert_over(response: httpx.Response, limit: str) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == -32005
    assert error["data"]["limit"] == limit


def test_a_principal_gets_only_its_share_of_sessions(limited: Daemon) -> None:
    with httpx.Client(timeout=WAIT) as http:
        first = [From(http, limited.url, "10.0.0.1").initialize() for _ in range(2)]
        third = From(http, limited.url, "10.0.0.1")
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}}
        refused = third.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        _assert_over(refused, "principal_sessions")
        # Another address is another principal: its sessions are its own.
        assert From(http, limited.url, "10.0.0.2").initialize().session_id
        # An ended session frees its place.
        assert http.delete(limited.url, headers=first[0].headers()).status_code == 200
        assert From(http, limited.url, "10.0.0.1").initialize().session_id


def test_requests_beyond_the_rate_get_429(limited: Daemon) -> None:
    with httpx.Client(timeout=WAIT) as http:
        client = From(http, limited.url, "10.0.1.1").initialize()
        answers = [client.request("ping") for _ in range(8)]
    assert answers[0].status_code == 200
    refused = [a for a in answers if a.status_code != 200]
    assert refused, "a burst of 3 at 1/s let 8 requests through"
    _assert_over(refused[0], "principal_rate")


def test_a_tool_rule_limits_that_tool_only(limited: Daemon) -> None:
    with httpx.Client(timeout=WAIT) as http:
        client = From(http, limited.url, "10.0.2.1").initialize()
        first = client.request("tools/call", {"name": "probe_echo", "arguments": {"text": "a"}})
        assert first.status_code == 200
        second = client.request("tools/call", {"name": "probe_echo", "arguments": {"text": "b"}})
        _assert_over(second, "tool_rate")


def test_a_call_waiting_past_the_queue_timeout_gets_429(limited: Daemon) -> None:
    with httpx.Client(timeout=WAIT) as http:
        busy = From(http, limited.url, "10.0.3.1").initialize()
        waiter = From(http, limited.url, "10.0.3.1").initialize()
        started = threading.Event()
        results: list[httpx.Response] = []

        def hold() -> None:
            started.set()
            results.append(
                busy.request("tools/call", {"name": "probe_sleep", "arguments": {"seconds": 2}})
            )

        holder = threading.Thread(target=hold)
        holder.start()
        started.wait(WAIT)
        # One slot per principal: the second call waits 0.2 s for it, then is refused.
        refused = None
        for _ in range(50):  # bounded: until the holder's call is running
            answer = waiter.request("tools/call", {"name": "whoami", "arguments": {}})
            if answer.status_code == 429:
                refused = answer
                break
        holder.join(WAIT)
    assert refused is not None
    _assert_over(refused, "principal_concurrency")
    assert results[0].status_code == 200


def test_refusals_are_counted_by_limit(limited: Daemon) -> None:
    with httpx.Client(timeout=WAIT) as http:
        text = http.get(limited.binds[0] + "/metrics").text
    counts = {
        line.split('"')[1]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("mcpd_limit_rejections_total{")
    }
    assert counts["principal_sessions"] >= 1
    assert "10.0.0.1" not in text  # no principal label
