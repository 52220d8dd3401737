"""Health and metrics over real HTTP: /healthz, /readyz and /metrics of a real daemon.

Metric values are read by parsing the exposition with prometheus_client's own parser and
compared as differences around what a test does, on a daemon of this module's own. Where a
value is recorded just after what the test can observe (a tool's ``finally`` marker), the
test waits for it with a bound that only turns a hang into a failure.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.client import Legacy, modern_headers, modern_meta
from support.daemon import WAIT, Daemon, daemon_config, wait_for_file
from support.eras import headers_for, modern_body

Labels = dict[str, str]


# -- reading /metrics -----------------------------------------------------------------------


class Scrape:
    """One /metrics exposition, parsed: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[sample.name, frozenset(sample.labels.items())] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def base(daemon: Daemon) -> str:
    return daemon.binds[0]


def scrape(http: httpx.Client, url: str) -> Scrape:
    response = http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return Scrape(response.text)


def eventually(http: httpx.Client, url: str, check: Callable[[Scrape], bool]) -> Scrape:
    """Scrape until ``check`` holds (bounded: a hang becomes a failure, never a timing claim)."""
    deadline = time.monotonic() + WAIT
    while True:
        current = scrape(http, url)
        if check(current):
            return current
        assert time.monotonic() < deadline, current.text
        time.sleep(0.02)


def tool_calls(s: Scrape, tool: str, outcome: str) -> float:
    return s.value(
        "mcp_server_tool_call_duration_seconds_count", gen_ai_tool_name=tool, outcome=outcome
    )


def operations(s: Scrape, method: str, error_type: str = "") -> float:
    return s.value(
        "mcp_server_operation_duration_seconds_count", mcp_method_name=method, error_type=error_type
    )


def requests(s: Scrape, method: str, outcome: str) -> float:
    return s.value("mcpd_requests_total", mcp_method_name=method, outcome=outcome)


def cancellations(s: Scrape, reason: str) -> float:
    return s.value("mcpd_cancellations_total", reason=reason)


def tag(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def metered(
    tmp_path_factory: pytest.TempPathFactory, plugin_site: Path, markers: Path
) -> Iterator[Daemon]:
    """This module's own daemon, so that no other test's traffic moves its counters."""
    config = daemon_config(tmp_path_factory.mktemp("metrics") / "mcpd.toml", markers)
    daemon = Daemon.start(config, pythonpath=plugin_site)
    yield daemon
    assert daemon.stop() == 0


@contextmanager
def running_call(
    http: httpx.Client, url: str, body: dict[str, Any], headers: Labels
) -> Iterator[None]:
    """POST a call and yield once it visibly runs (progress); leaving disconnects."""
    with http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: a generator closed early closes the connection
        for line in lines:
            if "notifications/progress" in line:
                break
        yield


def slow_call(call_tag: str, request_id: int | str = 1, seconds: float = 60) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": "slow",
            "arguments": {"seconds": seconds, "tag": call_tag},
            "_meta": {"progressToken": call_tag},
        },
    }


# -- health ---------------------------------------------------------------------------------


def test_healthz_and_readyz_answer_on_the_main_listener(
    metered: Daemon, http: httpx.Client
) -> None:
    health = http.get(base(metered) + "/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = http.get(base(metered) + "/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["reasons"] == []
    assert body["plugins"]["loaded"] >= 1
    assert body["plugins"]["failed"] >= 1  # the broken fixture plugins
    assert body["tools"] > 0


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
def test_the_endpoints_answer_get_only(
    metered: Daemon, http: httpx.Client, path: str, method: str
) -> None:
    response = http.request(method, base(metered) + path)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_they_skip_the_origin_check_but_not_the_host_check(
    metered: Daemon, http: httpx.Client
) -> None:
    before = scrape(http, base(metered) + "/metrics")
    # The MCP endpoint refuses a foreign Origin (DNS-rebinding protection) ...
    refused = http.post(metered.url, json={}, headers={"origin": "https://evil.example"})
    assert refused.status_code == 403
    # ... health and metrics answer it, since scrapers send none and they change nothing ...
    for path in ("/healthz", "/readyz", "/metrics"):
        answered = http.get(base(metered) + path, headers={"origin": "https://evil.example"})
        assert answered.status_code == 200
    # ... but a foreign Host is a DNS-rebinding page reading a loopback-only daemon: 421.
    for path in ("/healthz", "/readyz", "/metrics"):
        misdirected = http.get(base(metered) + path, headers={"host": "evil.example"})
        assert misdirected.status_code == 421
    after = scrape(http, base(metered) + "/metrics")
    rejected = "mcpd_http_rejections_total"
    assert after.value(rejected, status="403") == before.value(rejected, status="403") + 1
    assert after.value(rejected, status="421") == before.value(rejected, status="421") + 3


def test_nothing_secret_is_exposed(metered: Daemon, http: httpx.Client, markers: Path) -> None:
    secret = tag("secret-argument")
    client = Legacy(http, metered.url).initialize()
    assert client.call("echo", {"text": secret})["content"][0]["text"] == secret
    texts = [http.get(base(metered) + path).text for path in ("/metrics", "/readyz")]
    for text in texts:
        assert secret not in text  # no tool arguments
        assert str(markers) not in text  # no config values (the fixture plugin's marker_dir)
        assert client.session_id is not None
        assert client.session_id not in text


# -- metrics moving with calls --------------------------------------------------------------


def test_calls_that_succeed_fail_and_time_out(metered: Daemon, http: httpx.Client) -> None:
    url = base(metered) + "/metrics"
    client = Legacy(http, metered.url).initialize()
    before = scrape(http, url)
    assert client.call("echo", {"text": "hi"}).get("isError", False) is False
    assert client.call("fail", {"message": "no"})["isError"] is True
    assert client.call("forever", {"tag": tag("timeout")})["isError"] is True
    assert "error" in client.rpc("no/such/method")
    after = scrape(http, url)

    def grew(read: Callable[[Scrape], float]) -> float:
        return read(after) - read(before)

    assert grew(lambda s: tool_calls(s, "echo", "ok")) == 1
    assert grew(lambda s: tool_calls(s, "fail", "error")) == 1
    assert grew(lambda s: tool_calls(s, "forever", "timeout")) == 1
    assert grew(lambda s: cancellations(s, "timeout")) == 1
    assert grew(lambda s: operations(s, "tools/call")) == 1
    assert grew(lambda s: operations(s, "tools/call", "tool_error")) == 2  # isError: fail, timeout
    assert grew(lambda s: requests(s, "tools/call", "ok")) == 1
    assert grew(lambda s: requests(s, "tools/call", "error")) == 2
    # Unknown methods share one label value, so clients cannot grow the series.
    assert grew(lambda s: operations(s, "other", "-32601")) == 1
    assert grew(lambda s: requests(s, "other", "error")) == 1
    assert "no/such/method" not in after.text
    # The session's handshake counts too.
    assert operations(after, "initialize") >= 1
    assert requests(after, "notifications/initialized", "ok") >= 1


def test_a_modern_call_cancelled_by_disconnect(
    metered: Daemon, http: httpx.Client, markers: Path
) -> None:
    url = base(metered) + "/metrics"
    before = scrape(http, url)
    call_tag = tag("disconnect")
    body = slow_call(call_tag)
    body["params"]["_meta"] = modern_meta(progressToken=call_tag)
    with running_call(http, metered.url, body, modern_headers("tools/call", "slow")):
        during = scrape(http, url)
        assert during.value("mcpd_requests_in_flight") >= 1
        assert during.value("mcpd_tool_calls_in_flight") >= 1
        assert during.value("mcpd_open_streams", kind="post_sse") >= 1
    assert wait_for_file(markers / f"{call_tag}.json")["outcome"] == "cancelled"
    after = eventually(
        http,
        url,
        lambda s: (
            cancellations(s, "disconnect") == cancellations(before, "disconnect") + 1
            and requests(s, "tools/call", "cancelled")
            == requests(before, "tools/call", "cancelled") + 1
        ),
    )
    assert tool_calls(after, "slow", "cancelled") == tool_calls(before, "slow", "cancelled") + 1
    assert (
        operations(after, "tools/call", "cancelled")
        == operations(before, "tools/call", "cancelled") + 1
    )


def test_a_call_cancelled_by_the_client_and_one_ended_with_its_session(
    metered: Daemon, markers: Path
) -> None:
    with httpx.Client(timeout=30) as one, httpx.Client(timeout=30) as two:
        url = base(metered) + "/metrics"
        before = scrape(two, url)
        client = Legacy(one, metered.url).initialize()
        other = Legacy(two, metered.url)
        other.session_id, other.version = client.session_id, client.version
        first = tag("client-cancel")
        with running_call(one, metered.url, slow_call(first, "c-1"), client.headers()):
            cancel = other.notify("notifications/cancelled", {"requestId": "c-1"})
            assert cancel.status_code == 202
            wait_for_file(markers / f"{first}.json")
        eventually(
            two, url, lambda s: cancellations(s, "client") == cancellations(before, "client") + 1
        )
        second = tag("session-end")
        with running_call(one, metered.url, slow_call(second, "c-2"), client.headers()):
            assert two.delete(metered.url, headers=client.headers()).status_code == 200
            wait_for_file(markers / f"{second}.json")
        eventually(
            two,
            url,
            lambda s: cancellations(s, "session_end") == cancellations(before, "session_end") + 1,
        )
        after = scrape(two, url)
        assert requests(after, "notifications/cancelled", "ok") > requests(
            before, "notifications/cancelled", "ok"
        )


def test_sessions_and_streams_gauges_go_up_and_down(metered: Daemon, http: httpx.Client) -> None:
    url = base(metered) + "/metrics"
    sessions = scrape(http, url).value("mcpd_sessions")
    ended = scrape(http, url).value(
        "mcp_server_session_duration_seconds_count", mcp_protocol_version="2025-11-25"
    )
    one = Legacy(http, metered.url).initialize()
    two = Legacy(http, metered.url).initialize()
    assert scrape(http, url).value("mcpd_sessions") == sessions + 2

    with httpx.Client(timeout=30) as streaming:
        get_headers = one.headers(accept="text/event-stream")
        with streaming.stream("GET", metered.url, headers=get_headers) as response:
            assert response.status_code == 200
            assert scrape(http, url).value("mcpd_open_streams", kind="get") == 1
        eventually(http, url, lambda s: s.value("mcpd_open_streams", kind="get") == 0)

        body = modern_body("subscriptions/listen", {"notifications": {}}, request_id="l-1")
        with streaming.stream("POST", metered.url, json=body, headers=headers_for(body)) as listen:
            assert listen.status_code == 200
            lines = listen.iter_lines()
            next(lines)  # the acknowledgement: the stream is open
            assert scrape(http, url).value("mcpd_open_streams", kind="listen") == 1
        eventually(http, url, lambda s: s.value("mcpd_open_streams", kind="listen") == 0)

        with streaming.stream(
            "GET", base(metered) + "/sse", headers={"accept": "text/event-stream"}
        ) as legacy:
            assert legacy.status_code == 200
            lines = legacy.iter_lines()
            next(lines)  # the endpoint event
            assert scrape(http, url).value("mcpd_open_streams", kind="http_sse") == 1
        eventually(http, url, lambda s: s.value("mcpd_open_streams", kind="http_sse") == 0)

    for client in (one, two):
        assert http.delete(metered.url, headers=client.headers()).status_code == 200
    after = scrape(http, url)
    assert after.value("mcpd_sessions") == sessions
    duration = after.value(
        "mcp_server_session_duration_seconds_count", mcp_protocol_version="2025-11-25"
    )
    assert duration == ended + 2


def test_plugin_load_failures_are_counted(metered: Daemon, http: httpx.Client) -> None:
    failed = http.get(base(metered) + "/readyz").json()["plugins"]["failed"]
    current = scrape(http, base(metered) + "/metrics")
    assert failed >= 1
    assert current.value("mcpd_plugin_load_failures_total") == failed
    assert current.value("mcpd_plugins", state="failed") == failed


# -- daemons of their own: reload, separate listener, drain ---------------------------------


def test_reloads_are_counted(
    tmp_path: Path, plugin_site: Path, markers: Path, http: httpx.Client
) -> None:
    config = daemon_config(tmp_path / "mcpd.toml", markers)
    daemon = Daemon.start(config, pythonpath=plugin_site)
    try:
        url = base(daemon) + "/metrics"
        failures = scrape(http, url).value("mcpd_plugin_load_failures_total")
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("daemon.reloaded")
        after = scrape(http, url)
        assert after.value("mcpd_reloads_total", outcome="ok") == 1
        assert after.value("mcpd_reloads_total", outcome="failed") == 0
        # The broken plugins fail again at the reload, and are counted again.
        assert after.value("mcpd_plugin_load_failures_total") == 2 * failures

        config.write_text(config.read_text() + "\n[server\n")
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("daemon.reload_failed")
        assert scrape(http, url).value("mcpd_reloads_total", outcome="failed") == 1
    finally:
        assert daemon.stop() == 0


def _separate(path: Path, markers: Path, extra: str = "") -> Path:
    return daemon_config(
        path, markers, f'\n[metrics]\nlisten = ["127.0.0.1:0"]\npath = "/prom"\n{extra}'
    )


def _health_url(daemon: Daemon) -> str:
    binds = daemon.events("daemon.listening")[0]["health_binds"]
    assert len(binds) == 1
    return str(binds[0])


def test_a_separate_metrics_listener(
    tmp_path: Path, plugin_site: Path, markers: Path, http: httpx.Client
) -> None:
    daemon = Daemon.start(_separate(tmp_path / "mcpd.toml", markers), pythonpath=plugin_site)
    try:
        health = _health_url(daemon)
        assert health != base(daemon)
        assert http.get(health + "/healthz").json() == {"status": "ok"}
        assert http.get(health + "/readyz").status_code == 200
        before = scrape(http, health + "/prom")
        Legacy(http, daemon.url).initialize().call("echo", {"text": "x"})
        after = scrape(http, health + "/prom")
        assert tool_calls(after, "echo", "ok") == tool_calls(before, "echo", "ok") + 1
        # Only there: the main listener no longer serves them, and MCP is not served there.
        assert http.get(base(daemon) + "/prom").status_code == 404
        assert http.get(base(daemon) + "/healthz").status_code == 404
        assert http.get(health + "/mcp").status_code == 404
        assert (
            http.get(health + "/prom", headers={"origin": "https://evil.example"}).status_code
            == 200
        )
    finally:
        assert daemon.stop() == 0


@pytest.mark.parametrize("separate", [False, True], ids=["main-listener", "own-listener"])
def test_readyz_is_503_while_draining(
    tmp_path: Path, plugin_site: Path, markers: Path, http: httpx.Client, separate: bool
) -> None:
    config = tmp_path / "mcpd.toml"
    if separate:
        _separate(config, markers)
    else:
        daemon_config(config, markers)
    config.write_text(
        config.read_text().replace("shutdown_grace_seconds = 2", "shutdown_grace_seconds = 600")
    )
    daemon = Daemon.start(config, pythonpath=plugin_site)
    health = _health_url(daemon) if separate else base(daemon)
    client = Legacy(http, daemon.url).initialize()
    call_tag = tag("drain")
    running = threading.Event()

    def call() -> None:
        body = slow_call(call_tag, seconds=600)
        with (
            httpx.Client(timeout=60) as own,
            own.stream("POST", daemon.url, json=body, headers=client.headers()) as response,
        ):
            for line in response.iter_lines():  # to the end: the daemon's terminal error
                if "notifications/progress" in line:
                    running.set()

    thread = threading.Thread(target=call)
    thread.start()
    assert running.wait(WAIT)
    daemon.signal(signal.SIGTERM)
    daemon.wait_for("daemon.draining")
    ready = http.get(health + "/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert any("draining" in reason for reason in body["reasons"])
    assert body["in_flight"] >= 1
    assert http.get(health + "/healthz").status_code == 200  # alive, just not ready
    daemon.signal(signal.SIGTERM)  # a second signal: cancel the call now
    assert daemon.wait() == 0
    thread.join(WAIT)
    assert "shutting down" in wait_for_file(markers / f"{call_tag}.json")["reason"]
