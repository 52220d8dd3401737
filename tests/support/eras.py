"""One way to send a request in either era, for tests that assert the same feature in both.

``EraClient.rpc`` returns the final JSON-RPC message of a request: over a legacy session
(``Legacy``), or as a stateless 2026-07-28 POST with the metadata headers that method needs.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from support.client import Legacy, messages_of, modern_headers, modern_meta

# The methods whose Mcp-Name header mirrors a body field (2026 transports).
NAME_FIELDS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
ALL_CAPABILITIES: dict[str, Any] = {"elicitation": {}, "sampling": {}, "roots": {}}


def modern_body(
    method: str,
    params: dict[str, Any] | None = None,
    *,
    request_id: int | str = 1,
    capabilities: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta = modern_meta()
    meta["io.modelcontextprotocol/clientCapabilities"] = capabilities or {}
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {**(params or {}), "_meta": meta},
    }


def headers_for(body: dict[str, Any]) -> dict[str, str]:
    field = NAME_FIELDS.get(body["method"])
    name = body["params"].get(field) if field else None
    return modern_headers(body["method"], name)


def modern_request(
    http: httpx.Client,
    url: str,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    request_id: int | str = 1,
    capabilities: dict[str, Any] | None = None,
) -> httpx.Response:
    """One stateless 2026-07-28 request with the headers its method needs."""
    body = modern_body(method, params, request_id=request_id, capabilities=capabilities)
    return http.post(url, json=body, headers=headers_for(body))


class EraClient:
    """Requests in one era: ``modern`` False = a fresh legacy session at ``version``."""

    def __init__(
        self, http: httpx.Client, url: str, *, modern: bool, version: str = "2025-11-25"
    ) -> None:
        self.http = http
        self.url = url
        self.modern = modern
        self._ids = itertools.count(1)
        self._legacy = None if modern else Legacy(http, url, version).initialize()

    def response(self, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
        if self._legacy is not None:
            return self._legacy.request(method, params)
        return modern_request(self.http, self.url, method, params, request_id=next(self._ids))

    def rpc(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The final JSON-RPC message answering ``method``."""
        return messages_of(self.response(method, params))[-1]

    def result(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message = self.rpc(method, params)
        assert "result" in message, message
        return message["result"]  # type: ignore[no-any-return]

    def error(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message = self.rpc(method, params)
        assert "error" in message, message
        return message["error"]  # type: ignore[no-any-return]

    def walk(self, method: str, key: str) -> list[dict[str, Any]]:
        """Every page of a paginated list, following ``nextCursor`` to the end."""
        pages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self.result(method, {"cursor": cursor} if cursor else {})
            assert isinstance(page[key], list)
            pages.append(page)
            cursor = page.get("nextCursor")
            if cursor is None:
                return pages
            assert len(pages) < 100, "pagination does not end"
