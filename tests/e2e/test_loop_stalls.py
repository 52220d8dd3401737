"""A tool that blocks the event loop, seen by a real daemon: one ``loop.stalled`` warning that
names the call, and the stall counted in /metrics.

The stall is real time here, so the tests assert on what the daemon reports (the event, the
call it names, the counter), never on how long anything took.
"""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support.client import Legacy, messages_of, modern_headers, modern_meta
from support.daemon import Daemon


def metric(http: httpx.Client, daemon: Daemon, name: str) -> float:
    text = http.get(daemon.binds[0] + "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} is not exported")


def stall_of(daemon: Daemon, request_id: str) -> dict[str, object]:
    return daemon.wait_for(
        "loop.stalled",
        lambda e: {"tool": "block_loop", "request_id": request_id} in e.get("calls", []),
    )


def test_a_blocking_tool_is_named_and_counted(daemon: Daemon, http: httpx.Client) -> None:
    before = metric(http, daemon, "mcpd_event_loop_stalls_total")
    client = Legacy(http, daemon.url).initialize()
    request_id = f"blocker-{uuid.uuid4().hex[:8]}"
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "block_loop", "arguments": {"seconds": 1.5}},
    }
    answer = messages_of(client.post(body))[-1]
    assert answer["result"]["content"][0]["text"] == "blocked the loop for 1.5s"
    event = stall_of(daemon, request_id)
    assert event["level"] == "warning"
    assert isinstance(event["lag_seconds"], float)
    assert event["lag_seconds"] > event["threshold_seconds"]  # type: ignore[operator]
    assert metric(http, daemon, "mcpd_event_loop_stalls_total") >= before + 1
    assert metric(http, daemon, "mcpd_event_loop_lag_seconds_count") > 0


def test_a_modern_request_is_named_too(daemon: Daemon, http: httpx.Client) -> None:
    request_id = f"modern-blocker-{uuid.uuid4().hex[:8]}"
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": "block_loop",
            "arguments": {"seconds": 1.5},
            "_meta": modern_meta(),
        },
    }
    response = http.post(daemon.url, json=body, headers=modern_headers("tools/call", "block_loop"))
    assert response.status_code == 200
    assert stall_of(daemon, request_id)["calls_total"] >= 1  # type: ignore[operator]
