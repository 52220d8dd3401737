"""JSON-RPC 2.0 framing: bytes in, validated message objects out, and back.

Validation is strict about the envelope (``jsonrpc``, ``id`` types, ``method``, ``params``
shape) and leaves the meaning of ``params`` to the method handlers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from mcpd.protocol.errors import InvalidRequest, McpError, ParseError

RequestId: TypeAlias = str | int
JsonObject: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Request:
    id: RequestId
    method: str
    params: JsonObject


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: JsonObject


@dataclass(frozen=True, slots=True)
class Response:
    """A client's answer to a server→client request (result or error)."""

    id: RequestId | None
    result: JsonObject | None
    error: JsonObject | None


Message: TypeAlias = Request | Notification | Response


def parse_body(body: bytes) -> tuple[list[Message], bool]:
    """Parse a POST body into messages; the flag says whether it was a batch array."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"body is not valid JSON: {exc}") from None
    if isinstance(data, list):
        if not data:
            raise InvalidRequest("empty batch")
        return [parse_message(item) for item in data], True
    return [parse_message(data)], False


def parse_message(data: object) -> Message:
    """Validate one decoded JSON value as a JSON-RPC 2.0 message."""
    if not isinstance(data, dict):
        raise InvalidRequest("a JSON-RPC message must be an object")
    if data.get("jsonrpc") != "2.0":
        raise InvalidRequest('"jsonrpc" must be exactly "2.0"')
    if "method" in data:
        return _parse_call(data)
    if "result" in data or "error" in data:
        return _parse_response(data)
    raise InvalidRequest("message has neither a method nor a result/error")


def _parse_call(data: JsonObject) -> Request | Notification:
    method = data["method"]
    if not isinstance(method, str) or not method:
        raise InvalidRequest('"method" must be a non-empty string')
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidRequest('"params" must be an object (MCP uses named parameters)')
    if "id" not in data:
        return Notification(method, params)
    return Request(_check_id(data["id"]), method, params)


def _parse_response(data: JsonObject) -> Response:
    if "result" in data and "error" in data:
        raise InvalidRequest("a response carries either result or error, not both")
    request_id = data.get("id")
    result, error = data.get("result"), data.get("error")
    if request_id is not None:
        request_id = _check_id(request_id)
    if "result" in data and not isinstance(result, dict):
        raise InvalidRequest('"result" must be an object')
    if "error" in data and not isinstance(error, dict):
        raise InvalidRequest('"error" must be an object')
    return Response(request_id, result, error)


def _check_id(value: object) -> RequestId:
    # bool is an int subclass in Python but not a JSON-RPC id.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest('"id" must be a string or an integer (MCP forbids null ids)')
    return value


def result_message(request_id: RequestId, result: JsonObject) -> JsonObject:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_message(request_id: RequestId | None, error: McpError) -> JsonObject:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_error()}


def request_message(request_id: RequestId, method: str, params: JsonObject) -> JsonObject:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def notification_message(method: str, params: JsonObject) -> JsonObject:
    return {"jsonrpc": "2.0", "method": method, "params": params}


class Unencodable(ValueError):
    """A value that has no JSON form: a lone surrogate in a string, NaN, an unknown type, a
    structure nested too deep."""


def dumps(message: object) -> bytes:
    """Serialize one message (or a batch list) to compact JSON bytes; ``Unencodable`` if it
    has no JSON form.

    Encode before committing anything to the wire: a response that fails half-way through
    cannot be taken back.
    """
    try:
        return orjson.dumps(message)
    except orjson.JSONEncodeError as exc:
        return _dumps_exact(message, exc)


def _dumps_exact(message: object, error: Exception) -> bytes:
    """The standard library's encoder, for what orjson refuses but JSON can carry: integers
    beyond 64 bits (RFC 8259 leaves number precision to the reader)."""
    try:
        text = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exact:  # UnicodeEncodeError included
        raise Unencodable(str(error)) from exact
