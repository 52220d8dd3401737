"""Per-request ``_meta`` of the modern (2026-07-28) revision.

A modern request carries everything a handshake used to negotiate: its revision, the client's
capabilities and identity, the wanted log level and a progress token. Nothing is inherited from
earlier requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from mcpd.protocol.errors import InvalidParams

PREFIX: Final = "io.modelcontextprotocol/"
PROTOCOL_VERSION: Final = PREFIX + "protocolVersion"
CLIENT_CAPABILITIES: Final = PREFIX + "clientCapabilities"
CLIENT_INFO: Final = PREFIX + "clientInfo"
LOG_LEVEL: Final = PREFIX + "logLevel"
SERVER_INFO: Final = PREFIX + "serverInfo"

# Syslog severities in increasing order, as MCP's LoggingLevel.
LOG_LEVELS: Final = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)


@dataclass(frozen=True, slots=True)
class RequestMeta:
    protocol_version: str
    client_capabilities: dict[str, Any]
    client_info: dict[str, Any] | None
    log_level: str | None
    progress_token: str | int | None


def meta_of(params: dict[str, Any]) -> dict[str, Any]:
    """The request's ``_meta`` object, or an empty one."""
    meta = params.get("_meta")
    return meta if isinstance(meta, dict) else {}


def declares_modern(params: dict[str, Any]) -> bool:
    """Whether a request's body says it is a modern request."""
    return PROTOCOL_VERSION in meta_of(params)


def parse_request_meta(params: dict[str, Any]) -> RequestMeta:
    """Validate a modern request's ``_meta``; missing required fields are -32602."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        raise InvalidParams('modern requests must carry "_meta" with the protocol version')
    version = meta.get(PROTOCOL_VERSION)
    if not isinstance(version, str):
        raise InvalidParams(f'"_meta" must carry "{PROTOCOL_VERSION}" as a string')
    capabilities = meta.get(CLIENT_CAPABILITIES)
    if not isinstance(capabilities, dict):
        raise InvalidParams(f'"_meta" must carry "{CLIENT_CAPABILITIES}" as an object')
    return RequestMeta(
        protocol_version=version,
        client_capabilities=capabilities,
        client_info=_optional_object(meta, CLIENT_INFO),
        log_level=_log_level(meta.get(LOG_LEVEL)),
        progress_token=progress_token(params),
    )


def progress_token(params: dict[str, Any]) -> str | int | None:
    """The request's progress token; anything but a string or integer is ignored."""
    token = meta_of(params).get("progressToken")
    if isinstance(token, bool) or not isinstance(token, str | int):
        return None
    return token


def check_log_level(level: object) -> str:
    """A valid MCP logging level, or -32602."""
    if not isinstance(level, str) or level not in LOG_LEVELS:
        raise InvalidParams(f"log level must be one of {', '.join(LOG_LEVELS)}")
    return level


def level_enabled(level: str, threshold: str | None) -> bool:
    """Whether a message at ``level`` passes ``threshold`` (None: nothing passes)."""
    if threshold is None:
        return False
    return LOG_LEVELS.index(level) >= LOG_LEVELS.index(threshold)


def _log_level(value: object) -> str | None:
    return None if value is None else check_log_level(value)


def _optional_object(meta: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidParams(f'"_meta" field "{key}" must be an object')
    return value
