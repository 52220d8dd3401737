"""HTTP header rules of both eras: era classification, metadata headers, Origin, Accept.

Header names arrive lower-cased (ASGI does that); values are compared case-sensitively where
the spec says so.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Collection, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from mcpd.protocol.errors import (
    HeaderMismatch,
    MisdirectedRequest,
    NotAcceptable,
    OriginForbidden,
    UnsupportedMediaType,
)
from mcpd.protocol.jsonrpc import Message, Request
from mcpd.protocol.meta import declares_modern
from mcpd.protocol.revisions import LEGACY_VERSIONS, Era

PROTOCOL_VERSION: Final = "mcp-protocol-version"
SESSION_ID: Final = "mcp-session-id"
METHOD: Final = "mcp-method"
NAME: Final = "mcp-name"

_SENTINEL = re.compile(r"^=\?base64\?(.*)\?=$")
PARAM_PREFIX: Final = "mcp-param-"
# What a header value may hold unencoded: visible ASCII and spaces (RFC 9110 field values).
_PLAIN_VALUE = re.compile(r"[\x20-\x7e]*")
# Methods whose Mcp-Name header mirrors a params field.
_NAME_FIELDS: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def classify(messages: list[Message], headers: Mapping[str, str]) -> Era:
    """Which era serves a POST: the body decides first, then the version header.

    A request whose ``_meta`` names a protocol version is modern; so is a version header that
    is not a handshake revision. ``initialize``, a session id, a handshake-revision header or
    no signal at all select the legacy path (spec: absent header → assume 2025-03-26).
    """
    first = messages[0]
    if len(messages) == 1 and isinstance(first, Request) and declares_modern(first.params):
        return Era.MODERN
    version = headers.get(PROTOCOL_VERSION)
    has_session = SESSION_ID in headers
    if version is not None and version not in LEGACY_VERSIONS and not has_session:
        return Era.MODERN
    return Era.LEGACY


def decode_value(value: str, header: str = "Mcp-Name") -> str:
    """Decode the ``=?base64?...?=`` sentinel used for values unsafe in a header."""
    match = _SENTINEL.match(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group(1), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise HeaderMismatch(f"{header} carries an invalid base64 value") from None


def header_params(schema: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Tool arguments mirrored in ``Mcp-Param-<Name>`` headers: name -> (argument, type).

    Only top-level properties whose schema says ``"x-mcp-header": "<Name>"`` and whose type
    is string, integer or boolean take part.
    """
    found: dict[str, tuple[str, str]] = {}
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return found
    for argument, spec in properties.items():
        if not isinstance(spec, Mapping):
            continue
        name = spec.get("x-mcp-header")
        kind = spec.get("type")
        if isinstance(name, str) and name and kind in ("string", "integer", "boolean"):
            found[name.lower()] = (argument, kind)
    return found


def check_param_headers(
    params: Mapping[str, tuple[str, str]], arguments: object, headers: Mapping[str, str]
) -> None:
    """Every ``Mcp-Param-*`` header a tool declares must agree with its argument (-32020)."""
    values = arguments if isinstance(arguments, Mapping) else {}
    for name, (argument, kind) in params.items():
        header = f"Mcp-Param-{name}"
        raw = headers.get(PARAM_PREFIX + name)
        present = argument in values and values[argument] is not None
        if raw is None:
            if present:
                raise HeaderMismatch(f"{header} header is required: the body sets {argument!r}")
            continue
        if not _PLAIN_VALUE.fullmatch(raw):
            raise HeaderMismatch(f"{header} holds characters a header value cannot carry")
        text = decode_value(raw, header)
        if not present or not _same(text, values[argument], kind):
            raise HeaderMismatch(f"{header} header does not match argument {argument!r}")


def _same(text: str, value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool) and text == ("true" if value else "false")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        try:
            return int(text, 10) == value
        except ValueError:
            return False
    return isinstance(value, str) and text == value


def check_modern_headers(request: Request, version: str, headers: Mapping[str, str]) -> None:
    """Enforce that the metadata headers of a modern POST agree with its body (-32020)."""
    header_version = headers.get(PROTOCOL_VERSION)
    if header_version is None:
        raise HeaderMismatch(
            f"MCP-Protocol-Version header is missing; it must equal the _meta protocol "
            f"version {version!r}"
        )
    if header_version != version:
        raise HeaderMismatch(
            f"MCP-Protocol-Version header {header_version!r} does not match "
            f"_meta protocol version {version!r}"
        )
    method = headers.get(METHOD)
    if method is None:
        raise HeaderMismatch(
            f"Mcp-Method header is missing; it must equal the method {request.method!r}"
        )
    if method != request.method:
        raise HeaderMismatch(f"Mcp-Method header {method!r} does not match method")
    field = _NAME_FIELDS.get(request.method)
    if field is not None:
        _check_name(headers.get(NAME), request.params.get(field), field)


def _check_name(header: str | None, body_value: Any, field: str) -> None:
    if header is None:
        raise HeaderMismatch(f"Mcp-Name header is required and must equal params.{field}")
    if decode_value(header) != body_value:
        raise HeaderMismatch(f"Mcp-Name header does not match params.{field}")


def check_origin(origin: str | None, allowed: Collection[str]) -> None:
    """403 for a present Origin that is neither loopback nor configured (DNS rebinding)."""
    if origin is None or origin in allowed:
        return
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        host = None
    if host not in _LOOPBACK_HOSTS:
        raise OriginForbidden(f"origin {origin!r} is not allowed")


def check_host(host: str | None, allowed: Collection[str]) -> None:
    """421 for a Host that is neither loopback nor configured (DNS rebinding, where a
    browser page on an attacker's name reaches a loopback-only daemon without an Origin)."""
    if host is None or host in allowed:
        return
    name = _host_name(host)
    if name not in _LOOPBACK_HOSTS and name not in allowed:
        raise MisdirectedRequest(f"host {host!r} is not served here")


@functools.lru_cache(maxsize=256)
def _host_name(host: str) -> str | None:
    """``127.0.0.1:8765`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1`` (cached: clients repeat)."""
    try:
        return urlsplit(f"//{host}").hostname
    except ValueError:
        return None


def check_post_accept(accept: str | None) -> None:
    """A POST must accept both JSON and SSE answers (406 otherwise)."""
    types = _media_types(accept)
    if "*/*" in types:
        return
    json_ok = "application/json" in types or "application/*" in types
    sse_ok = "text/event-stream" in types or "text/*" in types
    if not (json_ok and sse_ok):
        raise NotAcceptable("Accept must list both application/json and text/event-stream")


def check_get_accept(accept: str | None) -> None:
    types = _media_types(accept)
    if not {"text/event-stream", "text/*", "*/*"} & types:
        raise NotAcceptable("Accept must list text/event-stream")


def check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json")


@functools.lru_cache(maxsize=256)
def _media_types(accept: str | None) -> frozenset[str]:
    # A client sends the same Accept header on every request: parse each distinct one once.
    if not accept:
        return frozenset()
    return frozenset(part.split(";", 1)[0].strip().lower() for part in accept.split(","))
