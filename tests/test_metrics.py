"""The metrics registry, the readiness rule and the [metrics] config (the health routes over HTTP:
``tests/transport/test_operator.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mcpd.config import ConfigError, MetricsSettings, load_settings
from mcpd.metrics import Metrics, cancel_reason, method_label
from mcpd.plugin.loader import PluginRecord
from mcpd.runtime.flights import (
    CLIENT_CANCELLED,
    CLIENT_DISCONNECTED,
    SESSION_DELETED,
    SESSION_EXPIRED,
    SHUTDOWN,
)
from mcpd.transport.health import readiness


def values(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_each_daemon_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.operation("tools/call", "", 0.01)
    key = (
        "mcpd_requests_total",
        frozenset({"mcp_method_name": "tools/call", "outcome": "ok"}.items()),
    )
    assert values(one)[key] == 1
    assert key not in values(two)
    assert not [m for m in REGISTRY.collect() if m.name.startswith(("mcpd", "mcp_"))]


@pytest.mark.parametrize(
    ("method", "label"),
    [
        ("tools/call", "tools/call"),
        ("initialize", "initialize"),
        ("x/" * 50, "other"),
        ("", "other"),
    ],
)
def test_unknown_methods_share_one_label(method: str, label: str) -> None:
    assert method_label(method) == label


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        (CLIENT_DISCONNECTED, "disconnect"),
        (CLIENT_CANCELLED, "client"),
        (f"{CLIENT_CANCELLED}: user pressed stop", "client"),
        (SESSION_DELETED, "session_end"),
        (SESSION_EXPIRED, "session_end"),
        (SHUTDOWN, "shutdown"),
        ("the HTTP request was cancelled", "other"),
        (None, "other"),
    ],
)
def test_cancel_reasons_map_to_a_closed_set(reason: str | None, label: str) -> None:
    assert cancel_reason(reason) == label


def test_live_gauges_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    in_flight = [3]
    metrics.watch(in_flight=lambda: in_flight[0], sessions=lambda: 2)
    metrics.stream_opened("listen")
    metrics.tool_calls_in_flight = 1
    records = [
        PluginRecord("a", None, None, "loaded"),
        PluginRecord("b", None, None, "failed", "boom"),
    ]
    metrics.plugins_loaded(records, tools=4)
    seen = values(metrics)
    assert seen["mcpd_requests_in_flight", frozenset()] == 3
    assert seen["mcpd_sessions", frozenset()] == 2
    assert seen["mcpd_tool_calls_in_flight", frozenset()] == 1
    assert seen["mcpd_open_streams", frozenset({("kind", "listen")})] == 1
    assert seen["mcpd_plugins", frozenset({("state", "failed")})] == 1
    assert seen["mcpd_plugin_load_failures_total", frozenset()] == 1
    in_flight[0] = 0
    metrics.stream_closed("listen")
    seen = values(metrics)
    assert seen["mcpd_requests_in_flight", frozenset()] == 0
    assert seen["mcpd_open_streams", frozenset({("kind", "listen")})] == 0


def test_a_timeout_counts_as_a_cancellation() -> None:
    metrics = Metrics()
    metrics.tool_call("forever", "timeout", 0.2)
    assert values(metrics)["mcpd_cancellations_total", frozenset({("reason", "timeout")})] == 1


@pytest.mark.parametrize(
    ("listening", "accepting", "plugins", "reason"),
    [
        (True, True, {"loaded": 1, "failed": 2}, None),
        (True, True, {"loaded": 0, "failed": 0}, None),
        (False, True, {"loaded": 1}, "starting"),
        (True, False, {"loaded": 1}, "draining"),
        (True, True, {"loaded": 0, "failed": 1}, "no plugin loaded"),
    ],
)
def test_readiness(
    listening: bool, accepting: bool, plugins: dict[str, int], reason: str | None
) -> None:
    state = readiness(listening=listening, accepting=accepting, plugins=plugins, counts={})
    assert state.ready is (reason is None)
    assert state.body()["status"] == ("ready" if reason is None else "not_ready")
    if reason is not None:
        assert reason in state.body()["reasons"][0]


def test_metrics_config(tmp_path: Path) -> None:
    assert load_settings().metrics == MetricsSettings()
    path = tmp_path / "mcpd.toml"
    path.write_text('[metrics]\nlisten = ["127.0.0.1:9465", "unix:/run/m.sock"]\npath = "/prom"\n')
    settings = load_settings(path)
    assert settings.metrics.listen == ("127.0.0.1:9465", "unix:/run/m.sock")
    assert settings.metrics.path == "/prom"
    path.write_text('[metrics]\nlisten = ["nowhere"]\n')
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        load_settings(path)
    path.write_text('[metrics]\npath = "metrics"\n')
    with pytest.raises(ConfigError, match=r"metrics\.path"):
        load_settings(path)
