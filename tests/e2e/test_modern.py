"""The stateless 2026-07-28 revision, end to end."""

from __future__ import annotations

import httpx
import pytest
from support.client import ACCEPT, P, messages_of, modern_headers, modern_meta, modern_post
from support.daemon import Daemon


def test_discover(daemon: Daemon, http: httpx.Client) -> None:
    response = modern_post(http, daemon.url, "server/discover")
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["resultType"] == "complete"
    assert result["supportedVersions"] == ["2026-07-28"]
    assert "tools" in result["capabilities"]
    assert result["_meta"][P + "serverInfo"]["name"] == "mcpd"
    assert isinstance(result["ttlMs"], int)
    assert result["cacheScope"] in ("public", "private")
    assert "mcp-session-id" not in response.headers


def test_tools_list_and_call(daemon: Daemon, http: httpx.Client) -> None:
    listed = modern_post(http, daemon.url, "tools/list").json()["result"]
    assert listed["resultType"] == "complete"
    assert "ttlMs" in listed
    assert listed["tools"]
    called = modern_post(
        http, daemon.url, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}
    ).json()
    assert called["result"]["resultType"] == "complete"
    assert called["result"]["structuredContent"] == {"result": 3}
    assert "ttlMs" not in called["result"]


def test_invalid_arguments_are_tool_errors(daemon: Daemon, http: httpx.Client) -> None:
    answer = modern_post(
        http, daemon.url, "tools/call", {"name": "add", "arguments": {"a": "x", "b": 1}}
    ).json()
    assert answer["result"]["isError"] is True


def test_removed_and_unknown_methods_are_404(daemon: Daemon, http: httpx.Client) -> None:
    for method in ("ping", "logging/setLevel", "no/such"):
        response = modern_post(http, daemon.url, method)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == -32601
        assert response.json()["id"] == 1


def test_missing_meta_is_400_with_jsonrpc_body(daemon: Daemon, http: httpx.Client) -> None:
    body = {"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {}}
    response = http.post(daemon.url, json=body, headers=modern_headers("tools/list"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32602
    assert response.json()["id"] == 4


def test_unsupported_version(daemon: Daemon, http: httpx.Client) -> None:
    meta = modern_meta(**{P + "protocolVersion": "2031-01-01"})
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    response = http.post(
        daemon.url,
        json=body,
        headers=modern_headers("tools/list", **{"mcp-protocol-version": "2031-01-01"}),
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32022
    assert error["data"]["supported"] == ["2026-07-28"]
    assert error["data"]["requested"] == "2031-01-01"


def test_body_version_unknown_but_header_differs_is_a_mismatch(
    daemon: Daemon, http: httpx.Client
) -> None:
    meta = modern_meta(**{P + "protocolVersion": "2031-01-01"})
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": meta}}
    response = http.post(daemon.url, json=body, headers=modern_headers("tools/list"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    assert response.json()["id"] == 7


@pytest.mark.parametrize(
    "headers",
    [
        {"mcp-method": "tools/list"},
        {"mcp-name": "other"},
        {"mcp-protocol-version": "2025-11-25"},
    ],
)
def test_header_mismatch(daemon: Daemon, http: httpx.Client, headers: dict[str, str]) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}, "_meta": modern_meta()},
    }
    response = http.post(
        daemon.url, json=body, headers={**modern_headers("tools/call", "echo"), **headers}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020


def test_missing_mcp_name(daemon: Daemon, http: httpx.Client) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}, "_meta": modern_meta()},
    }
    response = http.post(daemon.url, json=body, headers=modern_headers("tools/call"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020


def test_log_notifications_only_when_asked(daemon: Daemon, http: httpx.Client) -> None:
    quiet = modern_post(http, daemon.url, "tools/call", {"name": "chatty", "arguments": {}})
    assert not [m for m in messages_of(quiet) if m.get("method") == "notifications/message"]
    loud = modern_post(
        http,
        daemon.url,
        "tools/call",
        {"name": "chatty", "arguments": {}},
        meta=modern_meta(**{P + "logLevel": "info"}),
    )
    levels = {
        m["params"]["level"]
        for m in messages_of(loud)
        if m.get("method") == "notifications/message"
    }
    assert "info" in levels
    assert "debug" not in levels
    assert messages_of(loud)[-1]["result"]["resultType"] == "complete"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_get_and_delete_are_405_for_modern_traffic(
    daemon: Daemon, http: httpx.Client, method: str
) -> None:
    response = http.request(
        method, daemon.url, headers={"accept": ACCEPT, "mcp-protocol-version": "2026-07-28"}
    )
    assert response.status_code == 405
    assert "error" in response.json()


def test_modern_notification_is_accepted(daemon: Daemon, http: httpx.Client) -> None:
    body = {
        "jsonrpc": "2.0",
        "method": "notifications/whatever",
        "params": {"_meta": modern_meta()},
    }
    response = http.post(daemon.url, json=body, headers=modern_headers("notifications/whatever"))
    assert response.status_code == 202


def test_session_header_is_ignored_and_never_minted(daemon: Daemon, http: httpx.Client) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}}
    response = http.post(
        daemon.url, json=body, headers={**modern_headers("tools/list"), "last-event-id": "5"}
    )
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers
