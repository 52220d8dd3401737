"""A small MCP client over real HTTP (httpx) for both eras, for tests and benchmarks."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

ACCEPT = "application/json, text/event-stream"
MODERN = "2026-07-28"
P = "io.modelcontextprotocol/"


def parse_sse(text: str) -> list[dict[str, Any]]:
    """The JSON payloads of every ``data:`` event in an SSE body (comments skipped)."""
    events: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        data = [line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")]
        if data and "".join(data):
            events.append(json.loads("".join(data)))
    return events


def messages_of(response: httpx.Response) -> list[dict[str, Any]]:
    """Every JSON-RPC message of a response, JSON or SSE."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        return parse_sse(response.text)
    if not response.content:
        return []
    data = response.json()
    return data if isinstance(data, list) else [data]


class Legacy:
    """A handshake-era session."""

    def __init__(self, http: httpx.Client, url: str, version: str = "2025-11-25") -> None:
        self.http = http
        self.url = url
        self.version = version
        self.session_id: str | None = None
        self._ids = itertools.count(1)
        self.init_result: dict[str, Any] = {}

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"accept": ACCEPT, "content-type": "application/json"}
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
            if self.version >= "2025-06-18":
                headers["mcp-protocol-version"] = self.version
        return {**headers, **extra}

    def initialize(self, capabilities: dict[str, Any] | None = None) -> Legacy:
        params = {
            "protocolVersion": self.version,
            "capabilities": capabilities or {},
            "clientInfo": {"name": "tests", "version": "0"},
        }
        response = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        self.init_result = response.json()["result"]
        self.version = self.init_result["protocolVersion"]
        assert self.notify("notifications/initialized").status_code == 202
        return self

    def post(self, body: Any, **headers: str) -> httpx.Response:
        return self.http.post(self.url, json=body, headers=self.headers(**headers))

    def notify(self, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        return self.post(message)

    def request(
        self, method: str, params: dict[str, Any] | None = None, request_id: int | str | None = None
    ) -> httpx.Response:
        rid = next(self._ids) if request_id is None else request_id
        return self.post({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})

    def rpc(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The final JSON-RPC response message of a request."""
        response = self.request(method, params)
        assert response.status_code == 200, response.text
        return messages_of(response)[-1]

    def tool_names(self) -> set[str]:
        """Every tool name, walking all pages of tools/list."""
        names: set[str] = set()
        cursor = None
        while True:
            result = self.rpc("tools/list", {"cursor": cursor} if cursor else {})["result"]
            names.update(tool["name"] for tool in result["tools"])
            cursor = result.get("nextCursor")
            if not cursor:
                return names

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.rpc("tools/call", {"name": name, "arguments": arguments or {}})["result"]  # type: ignore[no-any-return]


def modern_meta(**extra: Any) -> dict[str, Any]:
    return {
        P + "protocolVersion": MODERN,
        P + "clientCapabilities": {},
        P + "clientInfo": {"name": "tests"},
        **extra,
    }


def modern_headers(method: str, name: str | None = None, **extra: str) -> dict[str, str]:
    headers = {
        "accept": ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    if name is not None:
        headers["mcp-name"] = name
    return {**headers, **extra}


def modern_post(
    http: httpx.Client,
    url: str,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    request_id: int = 1,
    meta: dict[str, Any] | None = None,
) -> httpx.Response:
    params = dict(params or {})
    params["_meta"] = meta if meta is not None else modern_meta()
    name = params.get("name") if method in ("tools/call", "prompts/get") else None
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    return http.post(url, json=body, headers=modern_headers(method, name))
