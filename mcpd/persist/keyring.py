"""The keys kept in the state directory, as versioned JSON. Pure: no file system, no clock.

::

    {"format": "mcpd-keys", "version": 1, "state_key": "<base64>",
     "request_state": [{"key": "<base64>", "created": 1764590000.0, "retired": null}, …]}

``state_key`` authenticates the state file (``mcpd.persist.records``). ``request_state`` seals
the 2026 ``requestState`` tokens: the first entry is the current key, the rest are keys
retired by a rotation (newest first), still accepted for one ``input_timeout_seconds`` after
their retirement, so that input rounds already handed out stay valid. A rotation keeps at
most ``MAX_RETIRED`` of them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

import orjson

FORMAT: Final = "mcpd-keys"
VERSION: Final = 1
KEY_BYTES: Final = 32
MAX_RETIRED: Final = 4


class KeyringInvalid(Exception):
    """A keys file that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class SealKey:
    key: bytes
    created: float
    retired: float | None = None


@dataclass(frozen=True, slots=True)
class Keyring:
    state_key: bytes
    request_state: tuple[SealKey, ...]  # the current key first, then retired ones

    @property
    def current(self) -> SealKey:
        return self.request_state[0]

    def rotated(self, now: float) -> Keyring:
        """A new current ``requestState`` key; the old one retired at ``now``."""
        old = SealKey(self.current.key, self.current.created, now)
        retired = (old, *self.request_state[1:])[:MAX_RETIRED]
        return Keyring(self.state_key, (SealKey(secrets.token_bytes(KEY_BYTES), now), *retired))

    def previous(self, now: float, ttl: float) -> tuple[tuple[bytes, float], ...]:
        """Retired keys still accepted at ``now``, each with the time it stops being."""
        return tuple(
            (k.key, k.retired + ttl)
            for k in self.request_state[1:]
            if k.retired is not None and k.retired + ttl > now
        )


def new_keyring(now: float) -> Keyring:
    return Keyring(secrets.token_bytes(KEY_BYTES), (SealKey(secrets.token_bytes(KEY_BYTES), now),))


def encode_keyring(keyring: Keyring) -> bytes:
    return orjson.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "state_key": _b64(keyring.state_key),
            "request_state": [
                {"key": _b64(k.key), "created": k.created, "retired": k.retired}
                for k in keyring.request_state
            ],
        },
        option=orjson.OPT_INDENT_2,
    )


def decode_keyring(data: bytes) -> Keyring:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise KeyringInvalid("not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeyringInvalid("not an mcpd keys file")
    if document.get("version") != VERSION:
        raise KeyringInvalid(f"format version {document.get('version')!r}, this mcpd reads 1")
    entries = document.get("request_state")
    if not isinstance(entries, list) or not entries:
        raise KeyringInvalid("request_state must list at least one key")
    return Keyring(_key(document.get("state_key")), tuple(_seal_key(e) for e in entries))


def _seal_key(entry: Any) -> SealKey:
    if not isinstance(entry, dict):
        raise KeyringInvalid("a request_state entry is not an object")
    created, retired = entry.get("created"), entry.get("retired")
    if not _is_time(created) or not (retired is None or _is_time(retired)):
        raise KeyringInvalid("a request_state entry has a bad time")
    return SealKey(_key(entry.get("key")), created, retired)


def _is_time(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key(value: Any) -> bytes:
    try:
        key = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyringInvalid(f"a key is not {KEY_BYTES} bytes of base64")
    return key


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")
