"""Static API keys: ``mcpd_`` + 256 random bits, stored in the config only as a SHA-256 hash.

A fast hash is the right one here. Slow password hashes (bcrypt, scrypt, argon2) exist to
make guessing a low-entropy password expensive; a key of 256 random bits cannot be guessed at
any speed, so SHA-256 loses nothing, while a slow hash would cost CPU on every request and
hand anyone who sends garbage keys a way to burn it.

A presented key is hashed and compared with every configured hash using
``hmac.compare_digest``, without stopping at the first match, so the time taken does not say
which entry (if any) matched. The recognisable prefix lets secret scanners find leaked keys
and lets ``keys+oauth`` tell a key from a JWT without trying both.

The table is built from ``[[auth.keys]]``; a reload builds a new one from the new settings.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from mcpd.auth.principal import KEYS_ISSUER, Principal
from mcpd.auth.settings import KeySettings

KEY_PREFIX: Final = "mcpd_"
KEY_BYTES: Final = 32
KEY_SHAPE: Final = re.compile(r"mcpd_[A-Za-z0-9_-]{43}")

KeyFailure = Literal["invalid_key", "expired"]
Compare = Callable[[bytes, bytes], bool]


def new_key() -> str:
    """A fresh random key: ``mcpd_`` and 43 base64url characters (256 bits)."""
    raw = secrets.token_bytes(KEY_BYTES)
    return KEY_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def key_hash(key: str) -> str:
    """The config form of a key's hash: ``sha256:<64 hex digits>``."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(token: str) -> bool:
    """Whether ``token`` has the prefix of an mcpd key (it may still be wrong)."""
    return token.startswith(KEY_PREFIX)


@dataclass(frozen=True, slots=True)
class StaticKey:
    principal: str
    digest: bytes
    scopes: frozenset[str]
    expires: float | None  # seconds since the epoch

    @classmethod
    def from_settings(cls, entry: KeySettings) -> StaticKey:
        return cls(
            principal=entry.principal,
            digest=bytes.fromhex(entry.hash.removeprefix("sha256:")),
            scopes=frozenset(entry.scopes),
            expires=entry.expires.timestamp() if entry.expires is not None else None,
        )

    def principal_object(self) -> Principal:
        return Principal(
            issuer=KEYS_ISSUER, subject=self.principal, scopes=self.scopes, expiry=self.expires
        )


class KeyTable:
    """The configured keys; ``check`` finds the one a request presents."""

    def __init__(self, keys: Sequence[StaticKey] = ()) -> None:
        self._keys = tuple(keys)

    @classmethod
    def from_settings(cls, entries: Sequence[KeySettings]) -> KeyTable:
        return cls([StaticKey.from_settings(entry) for entry in entries])

    def __len__(self) -> int:
        return len(self._keys)

    def find(self, token: str, *, compare: Compare = hmac.compare_digest) -> StaticKey | None:
        """The entry whose hash matches ``token``; every entry is compared, match or not."""
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: StaticKey | None = None
        for entry in self._keys:
            if compare(digest, entry.digest) and found is None:
                found = entry
        return found

    def check(
        self, token: str, *, now: float, compare: Compare = hmac.compare_digest
    ) -> Principal | KeyFailure:
        """The principal of a presented key, or why it is refused."""
        entry = self.find(token, compare=compare) if KEY_SHAPE.fullmatch(token) else None
        if entry is None:
            return "invalid_key"
        if entry.expires is not None and now >= entry.expires:
            return "expired"
        return entry.principal_object()


def parse_expiry(text: str) -> dt.date | dt.datetime:
    """``--expires``: an ISO date (``2027-01-31``) or date-time (``2027-01-31T12:00:00Z``)."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return dt.date.fromisoformat(text)
    return dt.datetime.fromisoformat(text)


def config_lines(
    principal: str, hashed: str, scopes: Sequence[str], expires: dt.date | dt.datetime | None
) -> list[str]:
    """The ``[[auth.keys]]`` entry to paste into the config, as TOML lines.

    The entry is validated first (``KeySettings``), so what is printed always loads.
    """
    KeySettings.model_validate(
        {
            "principal": principal,
            "hash": hashed,
            "scopes": list(scopes),
            "expires": expires.isoformat() if expires is not None else None,
        }
    )
    # JSON strings are TOML basic strings for the printable ASCII these values are.
    lines = [
        "[[auth.keys]]",
        f"principal = {json.dumps(principal)}",
        f"hash = {json.dumps(hashed)}",
        f"scopes = [{', '.join(json.dumps(scope) for scope in scopes)}]",
    ]
    if expires is not None:
        lines.append(f"expires = {expires.isoformat()}")
    return lines
