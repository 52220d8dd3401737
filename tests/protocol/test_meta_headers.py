import base64

import pytest

from mcpd.protocol import headers as hdr
from mcpd.protocol.errors import (
    HeaderMismatch,
    InvalidParams,
    NotAcceptable,
    OriginForbidden,
    UnsupportedMediaType,
)
from mcpd.protocol.jsonrpc import Notification, Request
from mcpd.protocol.meta import level_enabled, parse_request_meta
from mcpd.protocol.revisions import Era
from mcpd.protocol.shapes import complete_result

V = "io.modelcontextprotocol/"
GOOD_META = {V + "protocolVersion": "2026-07-28", V + "clientCapabilities": {}}


def test_meta_parsed() -> None:
    params = {
        "_meta": {
            **GOOD_META,
            V + "logLevel": "warning",
            V + "clientInfo": {"name": "c"},
            "progressToken": 5,
        }
    }
    meta = parse_request_meta(params)
    assert meta.protocol_version == "2026-07-28"
    assert meta.log_level == "warning"
    assert meta.progress_token == 5
    assert meta.client_info == {"name": "c"}


@pytest.mark.parametrize(
    ("meta", "error", "code"),
    [
        (None, InvalidParams, -32602),
        ({V + "clientCapabilities": {}}, InvalidParams, -32602),
        ({V + "protocolVersion": "2026-07-28"}, InvalidParams, -32602),
        ({**GOOD_META, V + "logLevel": "loud"}, InvalidParams, -32602),
        ({**GOOD_META, V + "clientInfo": "x"}, InvalidParams, -32602),
    ],
)
def test_meta_errors(meta: dict[str, object] | None, error: type[Exception], code: int) -> None:
    params = {} if meta is None else {"_meta": meta}
    with pytest.raises(error) as info:
        parse_request_meta(params)
    assert info.value.code == code  # type: ignore[attr-defined]
    assert info.value.http_status == 400  # type: ignore[attr-defined]


def test_an_unknown_version_is_parsed_for_the_transport_to_judge() -> None:
    # Header/body agreement (-32020) is checked before the version itself (-32022), so the
    # parser hands any version on; the endpoint tests cover both errors.
    meta = parse_request_meta(
        {"_meta": {V + "protocolVersion": "2030-01-01", V + "clientCapabilities": {}}}
    )
    assert meta.protocol_version == "2030-01-01"


@pytest.mark.parametrize(
    ("level", "threshold", "enabled"),
    [
        ("info", None, False),
        ("info", "info", True),
        ("debug", "info", False),
        ("emergency", "debug", True),
    ],
)
def test_level_enabled(level: str, threshold: str | None, enabled: bool) -> None:
    assert level_enabled(level, threshold) is enabled


MODERN_REQ = Request(1, "tools/list", {"_meta": GOOD_META})
LEGACY_REQ = Request(1, "tools/list", {})


@pytest.mark.parametrize(
    ("messages", "headers", "era"),
    [
        ([MODERN_REQ], {}, Era.MODERN),
        ([LEGACY_REQ], {"mcp-protocol-version": "2026-07-28"}, Era.MODERN),
        ([LEGACY_REQ], {"mcp-protocol-version": "2025-06-18"}, Era.LEGACY),
        ([LEGACY_REQ], {}, Era.LEGACY),
        ([Request(1, "initialize", {})], {}, Era.LEGACY),
        ([LEGACY_REQ], {"mcp-session-id": "s", "mcp-protocol-version": "2026-07-28"}, Era.LEGACY),
        ([Notification("notifications/initialized", {})], {"mcp-session-id": "s"}, Era.LEGACY),
        ([MODERN_REQ, LEGACY_REQ], {}, Era.LEGACY),
    ],
)
def test_classify(messages: list[Request], headers: dict[str, str], era: Era) -> None:
    assert hdr.classify(list(messages), headers) is era


def _modern_headers(**extra: str) -> dict[str, str]:
    return {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", **extra}


def test_modern_headers_ok_and_base64_name() -> None:
    name = "ünïcode tool"
    encoded = "=?base64?" + base64.b64encode(name.encode()).decode() + "?="
    request = Request(1, "tools/call", {"name": name})
    hdr.check_modern_headers(request, "2026-07-28", _modern_headers(**{"mcp-name": encoded}))
    hdr.check_modern_headers(
        Request(1, "tools/call", {"name": "echo"}),
        "2026-07-28",
        _modern_headers(**{"mcp-name": "echo"}),
    )


@pytest.mark.parametrize(
    ("request_", "headers"),
    [
        (
            Request(1, "tools/call", {"name": "echo"}),
            {"mcp-method": "tools/call", "mcp-name": "echo"},
        ),
        (
            Request(1, "tools/call", {"name": "echo"}),
            _modern_headers(**{"mcp-protocol-version": "2025-11-25", "mcp-name": "echo"}),
        ),
        (
            Request(1, "tools/call", {"name": "echo"}),
            _modern_headers(**{"mcp-method": "tools/list", "mcp-name": "echo"}),
        ),
        (Request(1, "tools/call", {"name": "echo"}), _modern_headers()),
        (Request(1, "tools/call", {"name": "echo"}), _modern_headers(**{"mcp-name": "other"})),
        (
            Request(1, "resources/read", {"uri": "a://b"}),
            {**_modern_headers(), "mcp-method": "resources/read", "mcp-name": "a://c"},
        ),
        (
            Request(1, "tools/call", {"name": "echo"}),
            _modern_headers(**{"mcp-name": "=?base64?!!!?="}),
        ),
    ],
)
def test_modern_header_mismatch(request_: Request, headers: dict[str, str]) -> None:
    with pytest.raises(HeaderMismatch) as info:
        hdr.check_modern_headers(request_, "2026-07-28", headers)
    assert info.value.code == -32020


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        (None, (), True),
        ("http://localhost:6274", (), True),
        ("http://127.0.0.1", (), True),
        ("http://[::1]:3000", (), True),
        ("https://evil.example", (), False),
        ("https://app.example", ("https://app.example",), True),
        ("null", (), False),
        ("http://localhost.evil.example", (), False),
    ],
)
def test_origin(origin: str | None, allowed: tuple[str, ...], ok: bool) -> None:
    if ok:
        hdr.check_origin(origin, allowed)
    else:
        with pytest.raises(OriginForbidden) as info:
            hdr.check_origin(origin, allowed)
        assert info.value.http_status == 403


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        ("application/json, text/event-stream", True),
        ("text/event-stream;q=0.9,application/json", True),
        ("*/*", True),
        ("application/json", False),
        ("text/event-stream", False),
        (None, False),
    ],
)
def test_post_accept(accept: str | None, ok: bool) -> None:
    if ok:
        hdr.check_post_accept(accept)
    else:
        with pytest.raises(NotAcceptable):
            hdr.check_post_accept(accept)


def test_content_type() -> None:
    hdr.check_content_type("application/json; charset=utf-8")
    for bad in (None, "text/plain", "application/jsonx"):
        with pytest.raises(UnsupportedMediaType):
            hdr.check_content_type(bad)


def test_complete_result_shapes() -> None:
    info = {"name": "mcpd"}
    listed = complete_result("tools/list", {"tools": []}, info)
    assert listed["resultType"] == "complete"
    assert listed["_meta"][V + "serverInfo"] == info
    assert listed["ttlMs"] >= 0
    assert listed["cacheScope"] == "public"
    called = complete_result("tools/call", {"content": []}, info)
    assert "ttlMs" not in called
    assert "cacheScope" not in called


# -- Mcp-Param-* headers (2026-07-28) ----------------------------------------------------------

PARAM_SCHEMA = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "count": {"type": "integer", "x-mcp-header": "Count"},
        "dry": {"type": "boolean", "x-mcp-header": "Dry"},
        "nested": {"type": "object", "x-mcp-header": "Nested"},
        "plain": {"type": "string"},
    },
}


def test_header_params_are_the_marked_scalar_properties() -> None:
    assert hdr.header_params(PARAM_SCHEMA) == {
        "region": ("region", "string"),
        "count": ("count", "integer"),
        "dry": ("dry", "boolean"),
    }
    assert hdr.header_params({"type": "object"}) == {}


@pytest.mark.parametrize(
    ("arguments", "headers"),
    [
        ({"region": "eu", "count": 3, "dry": True}, {"region": "eu", "count": "3", "dry": "true"}),
        ({"region": "Hello"}, {"region": "=?base64?SGVsbG8=?="}),
        ({"count": 7}, {"count": "007"}),  # integers compare numerically
        ({}, {}),
        ({"region": None}, {}),
    ],
)
def test_param_headers_that_agree(arguments: dict[str, object], headers: dict[str, str]) -> None:
    params = hdr.header_params(PARAM_SCHEMA)
    hdr.check_param_headers(params, arguments, {f"mcp-param-{k}": v for k, v in headers.items()})


@pytest.mark.parametrize(
    ("arguments", "headers"),
    [
        ({"region": "eu"}, {}),  # the body has it, the header is missing
        ({"region": "eu"}, {"region": "us"}),
        ({}, {"region": "eu"}),  # a header with no argument behind it
        ({"count": 3}, {"count": "three"}),
        ({"dry": False}, {"dry": "true"}),
        ({"region": "Hello"}, {"region": "=?base64?SGVsbG8?="}),  # bad padding
        ({"region": "Hello"}, {"region": "=?base64?SGVs!!!bG8=?="}),
        ({"region": "caf\u00e9"}, {"region": "caf\u00e9"}),  # must have been base64-encoded
    ],
)
def test_param_headers_that_disagree(arguments: dict[str, object], headers: dict[str, str]) -> None:
    params = hdr.header_params(PARAM_SCHEMA)
    with pytest.raises(HeaderMismatch):
        hdr.check_param_headers(
            params, arguments, {f"mcp-param-{k}": v for k, v in headers.items()}
        )
