"""Handshake-era Streamable HTTP, end to end against a real daemon."""

from __future__ import annotations

import string

import httpx
import pytest
from support.client import ACCEPT, Legacy, messages_of
from support.daemon import Daemon

VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")


@pytest.mark.parametrize("version", VERSIONS)
def test_initialize_negotiates_and_mints_session(
    daemon: Daemon, http: httpx.Client, version: str
) -> None:
    client = Legacy(http, daemon.url, version).initialize()
    assert client.version == version
    result = client.init_result
    assert result["serverInfo"]["name"] == "mcpd"
    assert "tools" in result["capabilities"]
    assert client.session_id is not None
    assert len(client.session_id) >= 32
    assert set(client.session_id) <= set(string.printable[:94])  # visible ASCII only


def test_unknown_version_gets_latest_handshake_revision(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url, "2026-07-28").initialize()
    assert client.version == "2025-11-25"


def test_session_ids_are_unique(daemon: Daemon, http: httpx.Client) -> None:
    ids = {Legacy(http, daemon.url).initialize().session_id for _ in range(5)}
    assert len(ids) == 5


def test_ping_and_unknown_method(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    assert client.rpc("ping")["result"] == {}
    response = client.request("no/such/method")
    assert response.status_code == 200
    assert messages_of(response)[0]["error"]["code"] == -32601


def test_tools_list_is_paginated_and_deterministic(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        result = client.rpc("tools/list", {"cursor": cursor} if cursor else {})["result"]
        assert len(result["tools"]) <= 4
        names += [tool["name"] for tool in result["tools"]]
        pages += 1
        cursor = result.get("nextCursor")
        if cursor is None:
            break
    assert pages >= 2
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert {"echo", "add", "slow", "blocking", "fail"} <= set(names)
    again = client.rpc("tools/list")["result"]["tools"]
    assert [t["name"] for t in again] == names[: len(again)]


def test_bad_cursor(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    assert client.rpc("tools/list", {"cursor": "not-a-cursor"})["error"]["code"] == -32602


def test_tool_definitions_follow_the_revision(daemon: Daemon, http: httpx.Client) -> None:
    old = Legacy(http, daemon.url, "2025-03-26").initialize()
    new = Legacy(http, daemon.url, "2025-11-25").initialize()
    old_add = _tool(old, "add")
    new_add = _tool(new, "add")
    assert "outputSchema" not in old_add
    assert new_add["outputSchema"]["type"] == "object"
    assert new_add["inputSchema"]["required"] == ["a", "b"]
    assert "$schema" in new_add["inputSchema"]
    assert "$schema" not in old_add["inputSchema"]


def _tool(client: Legacy, name: str) -> dict[str, object]:
    cursor = None
    while True:
        result = client.rpc("tools/list", {"cursor": cursor} if cursor else {})["result"]
        for tool in result["tools"]:
            if tool["name"] == name:
                return tool  # type: ignore[no-any-return]
        cursor = result.get("nextCursor")
        assert cursor is not None, f"{name} not listed"


def test_calls_and_results(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url, "2025-06-18").initialize()
    assert client.call("echo", {"text": "hi"})["content"] == [{"type": "text", "text": "hi"}]
    added = client.call("add", {"a": 2, "b": 3})
    assert added["structuredContent"] == {"result": 5}
    assert added.get("isError", False) is False
    failed = client.call("fail", {"message": "nope"})
    assert failed["isError"] is True
    assert "nope" in failed["content"][0]["text"]
    crashed = client.call("crash")
    assert crashed["isError"] is True
    picture = client.call("picture")
    assert picture["content"][0]["type"] == "image"


def test_unknown_tool_is_a_protocol_error(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    assert client.rpc("tools/call", {"name": "nope", "arguments": {}})["error"]["code"] == -32602


@pytest.mark.parametrize(
    ("version", "is_tool_error"), [("2025-06-18", False), ("2025-11-25", True)]
)
def test_argument_validation_per_revision(
    daemon: Daemon, http: httpx.Client, version: str, is_tool_error: bool
) -> None:
    client = Legacy(http, daemon.url, version).initialize()
    answer = client.rpc("tools/call", {"name": "add", "arguments": {"a": "x"}})
    if is_tool_error:
        assert answer["result"]["isError"] is True
    else:
        assert answer["error"]["code"] == -32602


def test_progress_streams_as_sse(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    params = {
        "name": "slow",
        "arguments": {"seconds": 0.2, "tag": "progress-sse"},
        "_meta": {"progressToken": "tok"},
    }
    response = client.request("tools/call", params)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    messages = messages_of(response)
    progress = [m for m in messages if m.get("method") == "notifications/progress"]
    assert progress
    assert all(m["params"]["progressToken"] == "tok" for m in progress)
    values = [m["params"]["progress"] for m in progress]
    assert values == sorted(set(values))
    assert messages[-1]["result"].get("isError", False) is False


def test_fast_call_answers_plain_json(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    response = client.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
    assert response.headers["content-type"] == "application/json"


def test_log_level_filters_notifications(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    assert client.rpc("logging/setLevel", {"level": "warning"})["result"] == {}
    messages = messages_of(client.request("tools/call", {"name": "chatty", "arguments": {}}))
    levels = [m["params"]["level"] for m in messages if m.get("method") == "notifications/message"]
    assert levels
    assert set(levels) <= {"warning", "error", "critical", "alert", "emergency"}
    assert client.rpc("logging/setLevel", {"level": "shouting"})["error"]["code"] == -32602


def test_batch_only_in_2025_03_26(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url, "2025-03-26").initialize()
    batch = [
        {"jsonrpc": "2.0", "id": 10, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}},
        {
            "jsonrpc": "2.0",
            "id": 11,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "b"}},
        },
    ]
    answers = {m["id"]: m for m in messages_of(client.post(batch))}
    assert answers[10]["result"] == {}
    assert answers[11]["result"]["content"][0]["text"] == "b"
    newer = Legacy(http, daemon.url, "2025-06-18").initialize()
    response = newer.post(batch)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600


def test_notifications_and_responses_get_202(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    response = client.notify("notifications/roots/list_changed")
    assert response.status_code == 202
    assert response.content == b""
    response = client.post({"jsonrpc": "2.0", "id": "srv-1", "result": {}})
    assert response.status_code == 202


def test_session_rules(daemon: Daemon, http: httpx.Client) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"accept": ACCEPT, "content-type": "application/json"}
    missing = http.post(daemon.url, json=body, headers=headers)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == -32600
    unknown = http.post(daemon.url, json=body, headers={**headers, "mcp-session-id": "nope"})
    assert unknown.status_code == 404
    assert "error" in unknown.json()


def test_delete_ends_session(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    assert http.delete(daemon.url, headers=client.headers()).status_code == 200
    assert client.request("ping").status_code == 404
    assert http.delete(daemon.url, headers=client.headers()).status_code == 404


def test_discover_then_initialize(daemon: Daemon, http: httpx.Client) -> None:
    """Real clients probe server/discover and then initialize; both must work."""
    from support.client import modern_post

    probe = modern_post(http, daemon.url, "server/discover")
    assert probe.status_code == 200
    client = Legacy(http, daemon.url).initialize()
    assert client.rpc("ping")["result"] == {}


def test_legacy_header_must_be_supported(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    response = client.post(
        {"jsonrpc": "2.0", "id": 5, "method": "ping"}, **{"mcp-protocol-version": "1999-01-01"}
    )
    assert response.status_code == 400
    assert "error" in response.json()
