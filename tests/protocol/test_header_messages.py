"""Header mismatch messages name a missing header as missing, never as ``None``."""

from __future__ import annotations

import pytest

from mcpd.protocol import headers as hdr
from mcpd.protocol.errors import HeaderMismatch
from mcpd.protocol.jsonrpc import Request

VERSION = "2026-07-28"
LIST = Request(1, "tools/list", {})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            {},
            "MCP-Protocol-Version header is missing; it must equal the _meta protocol "
            "version '2026-07-28'",
        ),
        (
            {hdr.PROTOCOL_VERSION: VERSION},
            "Mcp-Method header is missing; it must equal the method 'tools/list'",
        ),
        (
            {hdr.PROTOCOL_VERSION: "2025-11-25", hdr.METHOD: "tools/list"},
            "MCP-Protocol-Version header '2025-11-25' does not match _meta protocol "
            "version '2026-07-28'",
        ),
    ],
)
def test_missing_headers_are_called_missing(headers: dict[str, str], message: str) -> None:
    with pytest.raises(HeaderMismatch) as raised:
        hdr.check_modern_headers(LIST, VERSION, headers)
    assert str(raised.value) == message
    assert "None" not in str(raised.value)
