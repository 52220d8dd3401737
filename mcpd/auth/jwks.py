"""The issuer's signing keys (JWKS), fetched on demand and cached, safe against key-id floods.

- Cached for ``jwks_cache_seconds``; the first request after that refreshes it.
- Single flight: concurrent requests that need a refresh wait for one fetch.
- At most one fetch per ``jwks_min_refetch_seconds``, whatever triggers it (an unknown
  ``kid``, an expired cache, a failed fetch): a flood of tokens with made-up key ids costs
  the issuer one request per interval, not one per token (FastMCP refetches on every unknown
  ``kid``, which turns any client into a load generator against the IdP).
- A ``kid`` still unknown after a refetch is remembered for ``unknown_kid_cache_seconds``
  (bounded), so the same bogus ``kid`` never triggers another fetch; any later fetch that
  brings the ``kid`` clears it.
- Rotation: a token signed with a new key triggers one refetch (when the interval allows),
  after which the key is known.
- A failed refresh keeps the keys already known; with none at all, tokens fail as
  ``unavailable`` (a temporary problem, not a bad token).

Times come from ``trio.current_time()``, so tests drive the intervals with ``MockClock``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog
import trio
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from mcpd.auth.failures import Failure
from mcpd.auth.fetch import Unavailable
from mcpd.auth.jwt import key_fits

log = structlog.get_logger("mcpd.auth")

MAX_KEYS: Final = 100
MAX_UNKNOWN_KIDS: Final = 1024

Fetch = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class CacheTimes:
    max_age: float = 600.0
    min_refetch: float = 30.0
    unknown_kid_ttl: float = 300.0


def parse_jwks(document: Any) -> list[Key]:
    """The usable public keys of a JWKS document; keys that do not import are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise Unavailable("the JWKS is not an object with a 'keys' list")
    keys: list[Key] = []
    for entry in document["keys"][:MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("kty") == "oct":
            continue  # a symmetric key has no place in a published key set
        try:
            keys.append(import_key(entry))
        except (JoseError, ValueError, TypeError):
            continue
    return keys


class JwksCache:
    """Keys by ``kid`` for one issuer; ``key_for`` is what token validation asks."""

    def __init__(self, fetch: Fetch, times: CacheTimes | None = None) -> None:
        self._fetch = fetch
        self._times = times or CacheTimes()
        self._keys: list[Key] = []
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not
        self._generation = 0  # counts fetch attempts: waiters skip one that just happened
        self._lock = trio.Lock()
        self._unknown: dict[str, float] = {}  # kid -> until when it is known to be unknown
        self.fetches = 0  # attempts, for tests and logs

    async def key_for(self, kid: str | None, alg: str) -> Key | Failure:
        """The key that verifies a token with this ``kid`` and ``alg``, or why there is none."""
        now = trio.current_time()
        if self._fetched_at is None or now - self._fetched_at >= self._times.max_age:
            await self._refresh()
        found = self._find(kid, alg)
        if found is not None:
            return found
        if self._remembered_unknown(kid, trio.current_time()):
            return Failure("unknown_kid", "key id known to be absent from the JWKS")
        await self._refresh()
        found = self._find(kid, alg)
        if found is not None:
            return found
        if self._fetched_at is None:
            return Failure("unavailable", "the issuer's JWKS could not be fetched")
        self._remember_unknown(kid, trio.current_time())
        return Failure("unknown_kid", "no key in the JWKS for this token")

    def _find(self, kid: str | None, alg: str) -> Key | None:
        if kid is not None:
            for key in self._keys:
                if key.kid == kid:
                    return key if key_fits(key, alg) else None
            return None
        fitting = [key for key in self._keys if key_fits(key, alg)]
        return fitting[0] if len(fitting) == 1 else None  # no kid: only an unambiguous key

    def _remembered_unknown(self, kid: str | None, now: float) -> bool:
        until = self._unknown.get(kid or "")
        if until is None:
            return False
        if now < until:
            return True
        del self._unknown[kid or ""]
        return False

    def _remember_unknown(self, kid: str | None, now: float) -> None:
        if self._times.unknown_kid_ttl <= 0:
            return
        self._unknown.pop(kid or "", None)
        while len(self._unknown) >= MAX_UNKNOWN_KIDS:
            del self._unknown[next(iter(self._unknown))]  # the oldest
        self._unknown[kid or ""] = now + self._times.unknown_kid_ttl

    async def _refresh(self) -> None:
        """Fetch once, unless another task just did or the minimum interval has not passed."""
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                return  # a fetch finished while we waited for the lock
            now = trio.current_time()
            last = self._attempted_at
            if last is not None and now - last < self._times.min_refetch:
                return
            self._attempted_at = now
            self._generation += 1
            self.fetches += 1
            try:
                keys = parse_jwks(await self._fetch())
            except Unavailable as exc:
                log.warning("auth.jwks_unavailable", error=str(exc), keys_kept=len(self._keys))
                return
            self._keys = keys
            self._fetched_at = trio.current_time()
            known = {key.kid for key in keys}
            self._unknown = {kid: t for kid, t in self._unknown.items() if kid not in known}
            log.info("auth.jwks_fetched", keys=len(keys))
