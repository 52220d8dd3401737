"""The caller: who authenticated, with what scopes, and the key that binds state to them.

A ``Principal`` comes from a static API key (issuer ``"keys"``), a validated access token
(issuer = the token's ``iss``), or no authentication at all (``Anonymous``, mode ``none``).
``key`` is what sessions, resumable streams, pending input and 2026 ``requestState`` are bound
to: two requests share state only if their principals have the same key. ``limit_key`` is
what per-caller limits count by; for anonymous callers it is their client address.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final

KEYS_ISSUER: Final = "keys"
ANONYMOUS_ISSUER: Final = "anonymous"


@lru_cache(maxsize=4096)
def _pair_key(first: str, second: str) -> str:
    """JSON of ``[first, second]``; cached: a request asks for its principal's keys several
    times (limits, state binding), and the same few principals call again and again."""
    return json.dumps([first, second], separators=(",", ":"))


def _frozen(value: Any) -> Any:
    """A read-only deep copy of JSON data: mappings become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(key): _frozen(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thawed(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_thawed(item) for item in value)
    return value


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. Plugins see it as ``ctx.principal``.

    Example::

        @mcpd.tool(scopes=["notes:read"])
        def my_notes(ctx: mcpd.Context) -> list[str]:
            return NOTES.get(ctx.principal.subject, [])
    """

    issuer: str  # "keys" for static keys, the token's "iss" for OAuth
    subject: str  # the key's principal name, or the token's "sub"
    client_id: str | None = None  # the OAuth client the token was issued to
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    expiry: float | None = None  # seconds since the epoch; None = does not expire

    def __post_init__(self) -> None:
        object.__setattr__(self, "scopes", frozenset(self.scopes))
        object.__setattr__(self, "claims", _frozen(self.claims))

    @property
    def key(self) -> str:
        """Stable and unambiguous: JSON of (issuer, subject); state is bound to it."""
        return _pair_key(self.issuer, self.subject)

    @property
    def limit_key(self) -> str:
        """What per-principal limits count by."""
        return self.key

    @property
    def anonymous(self) -> bool:
        return False

    def has_scopes(self, required: frozenset[str]) -> bool:
        return required <= self.scopes

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled for tools in worker processes; mapping proxies cannot be, plain dicts can.
        return type(self), tuple(_thawed(getattr(self, f.name)) for f in fields(self))


@dataclass(frozen=True, slots=True)
class Anonymous(Principal):
    """Nobody authenticated (``[auth] mode = "none"``): everything is allowed.

    All anonymous callers share one ``key`` (state binding as before authentication existed);
    limits count them apart by ``client_address``.
    """

    issuer: str = ANONYMOUS_ISSUER
    subject: str = ""
    client_address: str | None = None

    @property
    def limit_key(self) -> str:
        return _pair_key(ANONYMOUS_ISSUER, self.client_address or "")

    @property
    def anonymous(self) -> bool:
        return True


def anonymous(client_address: str | None) -> Anonymous:
    """The principal of a request in mode ``none``."""
    return Anonymous(client_address=client_address)
