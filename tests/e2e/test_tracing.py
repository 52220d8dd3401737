"""OpenTelemetry traces of a real daemon, exported the standard way and read from outside.

The daemon runs with ``[tracing] enabled = true`` and ``OTEL_TRACES_EXPORTER=mcpd_test_spans``:
the fixture plugin ``mcpd-fixture-tracing`` provides that exporter (the SDK's in-memory
exporter, each span also written as a JSON line to ``$MCPD_TEST_SPANS``) and tools that make
spans of their own. Spans arrive in batches (``OTEL_BSP_SCHEDULE_DELAY``); tests wait for the
ones they expect with a bound that only turns a hang into a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import Legacy, messages_of, modern_headers, modern_meta
from support.daemon import WAIT, Daemon, daemon_config, wait_for_file
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "plugins"
Span = dict[str, Any]

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
HTTP_TRACE = "11111111111111111111111111111111"
HTTP_SPAN = "2222222222222222"


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def new_trace() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def tracing_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("tracing-site")
    install_plugins(site, FIXTURES / "mcpd-fixture-tools", FIXTURES / "mcpd-fixture-tracing")
    return site


def tracing_env(spans: Path, **extra: str) -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": "mcpd_test_spans",
        "MCPD_TEST_SPANS": str(spans),
        "OTEL_BSP_SCHEDULE_DELAY": "20",
        **extra,
    }


class Traced:
    """A daemon with tracing on, and the spans it exported so far."""

    def __init__(self, daemon: Daemon, spans: Path) -> None:
        self.daemon = daemon
        self.path = spans

    def spans(self) -> list[Span]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def wait(self, check: Callable[[list[Span]], bool]) -> list[Span]:
        deadline = time.monotonic() + WAIT
        while True:
            spans = self.spans()
            if check(spans):
                return spans
            assert time.monotonic() < deadline, json.dumps(spans, indent=1)[-4000:]
            time.sleep(0.02)

    def trace(self, trace_id: str, count: int) -> list[Span]:
        """The ``count`` spans of trace ``trace_id`` (waiting for them), parents first."""
        found = self.wait(lambda spans: len(in_trace(spans, trace_id)) >= count)
        ordered = sorted(in_trace(found, trace_id), key=lambda span: span["start_time"])
        assert len(ordered) == count, ordered
        return ordered


def in_trace(spans: list[Span], trace_id: str) -> list[Span]:
    return [span for span in spans if span["context"]["trace_id"] == "0x" + trace_id]


def span_id(span: Span) -> str:
    return str(span["context"]["span_id"])


def named(spans: list[Span], name: str) -> Span:
    [span] = [span for span in spans if span["name"] == name]
    return span


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, tracing_site: Path, markers: Path
) -> Iterator[Traced]:
    work = tmp_path_factory.mktemp("traced")
    config = daemon_config(work / "mcpd.toml", markers, "\n[tracing]\nenabled = true\n")
    spans = work / "spans.jsonl"
    daemon = Daemon.start(config, pythonpath=tracing_site, env=tracing_env(spans))
    yield Traced(daemon, spans)
    assert daemon.stop() == 0


def call(name: str, arguments: dict[str, Any], request_id: int | str = 7) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


# -- the three ways in ------------------------------------------------------------------------


def test_a_session_call_with_traceparent_in_the_http_headers(
    traced: Traced, http: httpx.Client
) -> None:
    client = Legacy(http, traced.daemon.url).initialize()
    trace_id, secret = new_trace(), f"secret-{uuid.uuid4().hex}"
    response = client.post(
        call("traced_work", {"secret": secret}, request_id="r-1"),
        traceparent=traceparent(trace_id, CLIENT_SPAN),
    )
    assert messages_of(response)[-1]["result"]["structuredContent"] == {"result": len(secret)}
    server, tool, plugin = traced.trace(trace_id, 3)
    assert server["name"] == "tools/call traced_work"
    assert server["kind"] == "SpanKind.SERVER"
    assert server["parent_id"] == "0x" + CLIENT_SPAN
    assert server["status"]["status_code"] == "UNSET"
    assert client.session_id is not None
    assert server["attributes"] == {
        "mcp.method.name": "tools/call",
        "mcp.protocol.version": "2025-11-25",
        "jsonrpc.request.id": "r-1",
        # The logs' prefix of the session id, never the id itself (a bearer credential).
        "mcp.session.id": client.session_id[:8],
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "traced_work",
        "network.protocol.name": "http",
        "network.protocol.version": "1.1",
        "network.transport": "tcp",
        "client.address": "127.0.0.1",
        "client.port": server["attributes"]["client.port"],
    }
    assert isinstance(server["attributes"]["client.port"], int)
    assert tool["name"] == "execute_tool traced_work"
    assert tool["kind"] == "SpanKind.INTERNAL"
    assert tool["parent_id"] == span_id(server)
    assert tool["attributes"] == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "traced_work",
        "mcpd.tool.outcome": "ok",
    }
    # The plugin's own span nests in the tool's: its code ran in the tool span's context.
    assert plugin["name"] == "fixture.work"
    assert plugin["parent_id"] == span_id(tool)
    assert plugin["resource"]["attributes"]["service.name"] == "mcpd"
    assert secret not in traced.path.read_text()
    assert client.session_id not in traced.path.read_text()
    # The request's log events name its trace.
    logged = traced.daemon.wait_for("audit", lambda event: event.get("trace_id") == trace_id)
    assert logged["tool"] == "traced_work"


def test_a_stateless_call_with_traceparent_in_meta_and_in_the_headers(
    traced: Traced, http: httpx.Client
) -> None:
    trace_id = new_trace()
    meta = modern_meta(traceparent=traceparent(trace_id, CLIENT_SPAN), tracestate="rojo=00f0")
    body = call("traced_sync", {"secret": "x"})
    body["params"]["_meta"] = meta
    headers = modern_headers("tools/call", "traced_sync")
    headers["traceparent"] = traceparent(HTTP_TRACE, HTTP_SPAN)
    response = http.post(traced.daemon.url, json=body, headers=headers)
    assert response.json()["result"]["structuredContent"] == {"result": 1}
    server, tool, plugin = traced.trace(trace_id, 3)
    # _meta is the parent; the HTTP request's context is linked (the MCP conventions).
    assert server["parent_id"] == "0x" + CLIENT_SPAN
    assert "rojo" in server["context"]["trace_state"]  # tracestate comes along
    assert [link["context"] for link in server["links"]] == [
        {"trace_id": "0x" + HTTP_TRACE, "span_id": "0x" + HTTP_SPAN, "trace_state": "[]"}
    ]
    assert server["name"] == "tools/call traced_sync"
    assert server["attributes"]["mcp.protocol.version"] == "2026-07-28"
    assert "mcp.session.id" not in server["attributes"]
    assert tool["parent_id"] == span_id(server)
    # A sync tool runs in a worker thread, which inherits the tool span's context.
    assert (plugin["name"], plugin["parent_id"]) == ("fixture.sync_work", span_id(tool))
    assert in_trace(traced.spans(), HTTP_TRACE) == []


def test_a_call_over_the_2024_11_05_transport(traced: Traced, http: httpx.Client) -> None:
    base = traced.daemon.binds[0]
    trace_id = new_trace()
    with http.stream("GET", base + "/sse", headers={"accept": "text/event-stream"}) as stream:
        lines = stream.iter_lines()
        endpoint = _sse_data(lines)
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {}},
        }
        assert http.post(base + endpoint, json=initialize).status_code == 202
        assert json.loads(_sse_data(lines))["id"] == 1
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert http.post(base + endpoint, json=initialized).status_code == 202
        posted = http.post(
            base + endpoint,
            json=call("traced_work", {"secret": "y"}, request_id=2),
            headers={"traceparent": traceparent(trace_id, CLIENT_SPAN)},
        )
        assert posted.status_code == 202
        assert json.loads(_sse_data(lines))["id"] == 2
    server, tool, plugin = traced.trace(trace_id, 3)
    assert server["parent_id"] == "0x" + CLIENT_SPAN
    assert server["name"] == "tools/call traced_work"
    assert server["attributes"]["mcp.protocol.version"] == "2024-11-05"
    assert len(server["attributes"]["mcp.session.id"]) == 8
    assert (tool["parent_id"], plugin["parent_id"]) == (span_id(server), span_id(tool))


def _sse_data(lines: Iterator[str]) -> str:
    for line in lines:
        if line.startswith("data:"):
            return line[5:].strip()
    raise AssertionError("the stream ended")


# -- outcomes -----------------------------------------------------------------------------------


def traced_call(
    traced: Traced, http: httpx.Client, body: dict[str, Any], count: int
) -> tuple[dict[str, Any], list[Span]]:
    trace_id = new_trace()
    body["params"]["_meta"] = modern_meta(traceparent=traceparent(trace_id, CLIENT_SPAN))
    name = body["params"].get("name")
    response = http.post(traced.daemon.url, json=body, headers=modern_headers(body["method"], name))
    return response.json(), traced.trace(trace_id, count)


def test_a_failing_tool_records_its_exception_without_its_text(
    traced: Traced, http: httpx.Client
) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    answer, (server, tool) = traced_call(traced, http, call("traced_crash", {"secret": secret}), 2)
    assert answer["result"]["isError"] is True
    assert server["attributes"]["error.type"] == "tool_error"
    assert server["status"]["status_code"] == "ERROR"
    assert tool["attributes"]["error.type"] == "tool_error"
    assert tool["attributes"]["mcpd.tool.outcome"] == "error"
    [event] = tool["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert "mcpd_fixture_tracing.py" in event["attributes"]["exception.stacktrace"]
    assert "exception.message" not in event["attributes"]
    assert secret not in traced.path.read_text()


def test_a_tool_error_result_and_a_timeout(traced: Traced, http: httpx.Client) -> None:
    _, (server, tool) = traced_call(traced, http, call("traced_refusal", {"secret": "z"}), 2)
    assert server["attributes"]["error.type"] == "tool_error"
    assert tool["status"]["status_code"] == "ERROR"
    assert tool["events"] == []
    # The fixture's `forever` has a 0.2 s timeout: an isError result for the client.
    tag = f"traced-{uuid.uuid4().hex[:8]}"
    answer, (server, tool) = traced_call(traced, http, call("forever", {"tag": tag}), 2)
    assert answer["result"]["isError"] is True
    assert server["attributes"]["error.type"] == "tool_error"
    assert tool["attributes"]["error.type"] == "timeout"
    assert tool["attributes"]["mcpd.tool.outcome"] == "timeout"


def test_protocol_errors_carry_their_code(traced: Traced, http: httpx.Client) -> None:
    answer, [server] = traced_call(traced, http, call("no_such_tool", {}), 1)
    assert answer["error"]["code"] == -32602
    # Not a registered tool: no name of the client's in the span name.
    assert server["name"] == "tools/call"
    assert "gen_ai.tool.name" not in server["attributes"]
    assert server["attributes"]["error.type"] == "-32602"
    assert server["attributes"]["rpc.response.status_code"] == "-32602"
    assert server["status"] == {
        "status_code": "ERROR",
        "description": "unknown tool: 'no_such_tool'",
    }
    # A registered tool refused for its arguments (a tool error since 2025-11-25) keeps its
    # name; the tool never ran, so there is no tool span.
    answer, [server] = traced_call(traced, http, call("traced_work", {"secret": 5}), 1)
    assert answer["result"]["isError"] is True
    assert server["name"] == "tools/call traced_work"
    assert server["attributes"]["gen_ai.tool.name"] == "traced_work"
    assert server["attributes"]["error.type"] == "tool_error"


def test_prompts_and_unknown_methods_are_named_as_in_the_metrics(
    traced: Traced, http: httpx.Client
) -> None:
    client = Legacy(http, traced.daemon.url).initialize()
    trace_id = new_trace()
    prompt = {"name": "traced_prompt", "arguments": {"topic": "otters"}}
    for method, params in (("prompts/get", prompt), ("no/such/method", {})):
        message = {"jsonrpc": "2.0", "id": method, "method": method, "params": params}
        client.post(message, traceparent=traceparent(trace_id, CLIENT_SPAN))
    got, other = traced.trace(trace_id, 2)
    assert got["name"] == "prompts/get traced_prompt"
    assert got["attributes"]["gen_ai.prompt.name"] == "traced_prompt"
    assert "otters" not in traced.path.read_text()
    assert other["name"] == "other"
    assert other["attributes"]["mcp.method.name"] == "other"
    assert other["attributes"]["error.type"] == "-32601"


def test_a_request_cancelled_by_its_client_leaving(
    traced: Traced, http: httpx.Client, markers: Path
) -> None:
    trace_id, tag = new_trace(), f"traced-{uuid.uuid4().hex[:8]}"
    body = call("slow", {"seconds": 60, "tag": tag})
    body["params"]["_meta"] = modern_meta(
        progressToken=tag, traceparent=traceparent(trace_id, CLIENT_SPAN)
    )
    with http.stream(
        "POST", traced.daemon.url, json=body, headers=modern_headers("tools/call", "slow")
    ) as response:
        lines = response.iter_lines()  # kept: a generator closed early closes the connection
        for line in lines:
            if "notifications/progress" in line:
                break
    assert wait_for_file(markers / f"{tag}.json")["outcome"] == "cancelled"
    server, tool = traced.trace(trace_id, 2)
    assert server["attributes"]["error.type"] == "cancelled"
    assert server["status"]["description"] == "cancelled: disconnect"
    assert tool["attributes"]["mcpd.tool.outcome"] == "cancelled"


# -- daemons of their own -------------------------------------------------------------------------


def test_spans_still_buffered_are_exported_at_shutdown(
    tmp_path: Path, tracing_site: Path, markers: Path, http: httpx.Client
) -> None:
    config = daemon_config(tmp_path / "mcpd.toml", markers, "\n[tracing]\nenabled = true\n")
    spans = tmp_path / "spans.jsonl"
    # Batches would leave after an hour: only the flush at shutdown exports them.
    env = tracing_env(spans, OTEL_BSP_SCHEDULE_DELAY="3600000")
    daemon = Daemon.start(config, pythonpath=tracing_site, env=env)
    try:
        assert Legacy(http, daemon.url).initialize().call("echo", {"text": "hi"})
        assert not spans.exists()
    finally:
        assert daemon.stop() == 0
    names = [json.loads(line)["name"] for line in spans.read_text().splitlines()]
    assert names == ["execute_tool echo", "tools/call echo"]


def module_names(http: httpx.Client, daemon: Daemon, prefix: str) -> list[str]:
    client = Legacy(http, daemon.url).initialize()
    assert client.call("echo", {"text": "a call first"})
    return client.call("loaded_modules", {"prefix": prefix})["structuredContent"]["result"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("how", ["off", "sdk-disabled", "extra-missing"])
def test_untraced_daemons_import_no_opentelemetry(
    tmp_path: Path, tracing_site: Path, markers: Path, http: httpx.Client, how: str
) -> None:
    extra = "" if how == "off" else "\n[tracing]\nenabled = true\n"
    config = daemon_config(tmp_path / "mcpd.toml", markers, extra)
    env = tracing_env(tmp_path / "spans.jsonl")
    site = tracing_site
    if how == "sdk-disabled":
        env["OTEL_SDK_DISABLED"] = "true"
    if how == "extra-missing":
        # An environment without the extra: importing opentelemetry fails as it would.
        site = tmp_path / "site"
        (site / "opentelemetry").mkdir(parents=True)
        (site / "opentelemetry" / "__init__.py").write_text(
            "raise ModuleNotFoundError(\"No module named 'opentelemetry'\", name='opentelemetry')\n"
        )
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(tracing_site)])
    daemon = Daemon.start(config, pythonpath=None if how == "extra-missing" else site, env=env)
    try:
        assert module_names(http, daemon, "opentelemetry") == []
        if how == "extra-missing":
            [warning] = daemon.events("tracing.unavailable")
            assert warning["level"] == "warning"
            assert 'pip install "mcpd-daemon[otel]"' in warning["detail"]
        if how == "sdk-disabled":
            assert daemon.events("tracing.disabled")
    finally:
        assert daemon.stop() == 0
    assert not (tmp_path / "spans.jsonl").exists()


def test_an_exporter_that_is_not_installed_is_a_start_failure(
    tmp_path: Path, markers: Path
) -> None:
    config = daemon_config(tmp_path / "mcpd.toml", markers, "\n[tracing]\nenabled = true\n")
    result = subprocess.run(
        [sys.executable, "-m", "mcpd", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "zipkin"},
        check=False,
        timeout=WAIT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("mcpd: OTEL_TRACES_EXPORTER: no installed exporter is called 'zipkin'")
    assert "otlp" in last
    assert "Traceback" not in result.stderr
