"""What a refusal sends (429, Retry-After, a JSON-RPC error), quota hits inside tools, metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import mcpd
from mcpd.limits.limiter import Limits
from mcpd.limits.names import LIMIT_NAMES
from mcpd.limits.quota import RETRY_AFTER_META, RateLimited, rate_limited_result
from mcpd.limits.settings import LimitsSettings
from mcpd.metrics import AUTH_REASONS_MAX, Metrics
from mcpd.plugin.testing import call_tool
from mcpd.protocol.errors import LimitExceeded, McpError, PeerError
from mcpd.transport.asgi_io import reject


async def sent_by_reject(error: McpError, request_id: int | None) -> list[dict[str, Any]]:
    """The ASGI messages the transport's ``reject`` sends for ``error``."""
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    headers = error.headers() if isinstance(error, LimitExceeded) else []
    await reject(send, error, request_id, headers)
    return messages


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [
        (0.5, b"1"),
        (1.0, b"1"),
        (2.0000000000000004, b"2"),
        (2.01, b"3"),
        (0.0, b"1"),
        (59.9, b"60"),
    ],
)
async def test_a_refusal_is_429_with_whole_seconds_retry_after(
    retry_after: float, header: bytes
) -> None:
    error = LimitExceeded("too many requests", limit="principal_rate", retry_after=retry_after)
    start, body = await sent_by_reject(error, 7)
    assert start["type"] == "http.response.start"
    assert start["status"] == 429
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == header
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body["body"]) == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {
            "code": -32005,
            "message": "too many requests",
            "data": {"limit": "principal_rate", "retryAfterSeconds": int(header)},
        },
    }


async def test_the_configured_code_is_on_the_wire(autojump_clock: trio.testing.MockClock) -> None:
    limits = Limits(LimitsSettings(requests_per_second=1, burst=1, error_code=-32023))
    limits.check_request("alice", "ping")
    with pytest.raises(LimitExceeded) as caught:
        limits.check_request("alice", "ping")
    error = caught.value
    assert isinstance(error, PeerError)
    assert (error.code, error.http_status) == (-32023, 429)
    assert error.message == "too many requests; retry after 1 second"
    start, body = await sent_by_reject(error, "r1")
    assert json.loads(body["body"])["error"]["code"] == -32023
    assert dict(start["headers"])[b"retry-after"] == b"1"
    assert LimitExceeded.code == -32005  # other daemons' default is untouched
    assert LimitExceeded.with_code(-32023) is type(error)  # one class per code


def test_rate_limited_result_carries_the_hint_in_text_and_meta() -> None:
    result = rate_limited_result(RateLimited("the search API's quota is used up", retry_after=30))
    assert result == {
        "content": [
            {"type": "text", "text": "the search API's quota is used up; retry after 30 seconds"}
        ],
        "isError": True,
        "_meta": {RETRY_AFTER_META: 30},
    }
    unknown = rate_limited_result(mcpd.RateLimited())
    assert unknown == {
        "content": [{"type": "text", "text": "rate limited; retry later"}],
        "isError": True,
    }


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_rate_limited_needs_a_sane_retry_after(bad: float) -> None:
    with pytest.raises(ValueError, match="retry_after"):
        RateLimited(retry_after=bad)


@mcpd.tool
async def weather(city: str) -> str:
    """The weather in a city, from an upstream with a quota."""
    raise mcpd.RateLimited(f"the weather service's quota is used up for {city}", retry_after=1.5)


async def test_a_tool_raising_rate_limited_ends_as_is_error_with_the_hint() -> None:
    # Through the plugin test runner (the dispatcher's ToolError path): the hint is in the text
    # even before the dispatcher adds the _meta.
    result = await call_tool(weather, {"city": "Oslo"})
    assert result["isError"] is True
    assert result["content"][0]["text"] == (
        "the weather service's quota is used up for Oslo; retry after 2 seconds"
    )


async def test_a_quota_hit_in_a_resource_becomes_a_counted_refusal() -> None:
    metrics = Metrics()
    limits = Limits(on_reject=metrics.limit_rejected)
    error = limits.quota_error(RateLimited("upstream busy", retry_after=3))
    assert (error.limit, error.retry_after_seconds, error.message) == (
        "tool_quota",
        3,
        "upstream busy; retry after 3 seconds",
    )
    result = limits.tool_quota_result(RateLimited("upstream busy"))
    assert result["isError"] is True
    assert rejections(metrics)["tool_quota"] == 2


def rejections(metrics: Metrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "mcpd_limit_rejections"
    ]
    return {s.labels["limit"]: s.value for s in family.samples if s.name.endswith("_total")}


async def test_limit_rejections_are_exposed_by_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics()
    assert rejections(metrics) == dict.fromkeys(LIMIT_NAMES, 0.0)  # every series from the start
    limits = Limits(
        LimitsSettings(handshakes_per_second=1, handshake_burst=1, max_sessions_per_principal=1),
        on_reject=metrics.limit_rejected,
    )
    limits.check_request("10.0.0.1", "initialize")
    limits.open_session("10.0.0.1")
    for _ in range(3):
        with pytest.raises(LimitExceeded):
            limits.check_request("10.0.0.1", "initialize")
    with pytest.raises(LimitExceeded):
        limits.open_session("10.0.0.1")
    counts = rejections(metrics)
    assert (counts["handshake_rate"], counts["principal_sessions"]) == (3.0, 1.0)
    assert sum(counts.values()) == 4.0
    text = generate_latest(metrics.registry).decode()
    assert "10.0.0.1" not in text  # no principal label
    assert 'mcpd_limit_rejections_total{limit="handshake_rate"} 3.0' in text


def test_auth_failures_are_exposed_by_reason_with_a_bounded_label_set() -> None:
    metrics = Metrics()
    metrics.auth_failed("invalid_token")
    metrics.auth_failed("invalid_token")
    metrics.auth_failed("missing_token")
    for n in range(AUTH_REASONS_MAX * 2):
        metrics.auth_failed(f"reason_{n}")  # a bug upstream must not grow the series forever
    text = generate_latest(metrics.registry).decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "mcpd_auth_failures"]
    counts = {s.labels["reason"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert counts["invalid_token"] == 2.0
    assert counts["missing_token"] == 1.0
    assert len(counts) == AUTH_REASONS_MAX + 1  # the first 32 reasons, then "other"
    assert counts["other"] == AUTH_REASONS_MAX * 2 - (AUTH_REASONS_MAX - 2)
