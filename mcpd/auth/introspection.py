"""RFC 7662 token introspection for opaque (non-JWT) access tokens.

The daemon authenticates to the introspection endpoint with its own client credentials
(``client_secret_basic`` or ``client_secret_post``; the secret is a config secret). Answers
are cached under the SHA-256 of the token (the token itself is never kept), for no longer
than ``cache_seconds`` and never past the token's own ``exp``; a token found inactive is
remembered briefly so a flood of bad tokens does not become a flood of introspection calls.
The cache is bounded (oldest entries go first). Concurrent requests with the same token share
one introspection call (single flight).

An active answer still has to name us: its ``aud`` must contain an accepted audience (an
answer without ``aud`` is refused unless ``require_audience = false``), its ``iss``, when
present, must be the configured issuer, and ``exp``/``nbf`` must hold.
"""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

import httpx
import structlog
import trio

from mcpd.auth.failures import Failure
from mcpd.auth.fetch import Unavailable, post_form_json
from mcpd.auth.jwt import principal_from_claims
from mcpd.auth.principal import Principal
from mcpd.auth.settings import IntrospectionSettings
from mcpd.auth.tokens import WallClock

log = structlog.get_logger("mcpd.auth")

INACTIVE_TTL: Final = 10.0  # seconds a refused token stays refused without asking again

Result = Principal | Failure


@dataclass
class _Flight:
    done: trio.Event = field(default_factory=trio.Event)
    result: Result = field(default_factory=lambda: Failure("unavailable", "introspection failed"))


def _client_auth(settings: IntrospectionSettings) -> tuple[dict[str, str], dict[str, str]]:
    """(form fields, headers) that authenticate the daemon to the endpoint (RFC 6749 2.3.1)."""
    if settings.auth_method == "client_secret_post":
        return {"client_id": settings.client_id, "client_secret": settings.client_secret}, {}
    quote = urllib.parse.quote
    pair = f"{quote(settings.client_id, safe='')}:{quote(settings.client_secret, safe='')}"
    return {}, {"authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}


def judge(
    answer: Any, *, issuer: str, audiences: frozenset[str], require_audience: bool, now: float
) -> Result:
    """What one introspection answer means for the request (pure)."""
    if not isinstance(answer, dict) or answer.get("active") is not True:
        return Failure("inactive", "the token is not active")
    if "iss" in answer and answer["iss"] != issuer:
        return Failure("inactive", "the token is from another issuer")
    aud = answer.get("aud")
    names = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    if (aud is not None or require_audience) and not names & audiences:
        return Failure("inactive", "the token is not for this resource")
    exp, nbf = answer.get("exp"), answer.get("nbf")
    if _number(exp) and now >= exp:
        return Failure("expired", "exp has passed")
    if _number(nbf) and now < nbf:
        return Failure("inactive", "the token is not valid yet")
    return principal_from_claims(answer, issuer)


def _lapsed(principal: Principal, now: float) -> bool:
    return principal.expiry is not None and now >= principal.expiry


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Introspector:
    def __init__(
        self,
        settings: IntrospectionSettings,
        client: httpx.AsyncClient,
        *,
        issuer: str,
        audiences: frozenset[str],
        wall_clock: WallClock = time.time,
    ) -> None:
        self._settings = settings
        self._client = client
        self._issuer = issuer
        self._audiences = audiences
        self._now = wall_clock
        self._cache: OrderedDict[bytes, tuple[float, Result]] = OrderedDict()
        self._flights: dict[bytes, _Flight] = {}
        self.calls = 0  # introspection requests made, for tests and logs

    async def introspect(self, token: str) -> Result:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        cached = self._cached(digest)
        if cached is not None:
            return cached
        flight = self._flights.get(digest)
        if flight is not None:
            await flight.done.wait()
            return flight.result
        flight = self._flights[digest] = _Flight()
        try:
            flight.result = await self._ask(token)
            self._store(digest, flight.result)
        finally:
            del self._flights[digest]
            flight.done.set()
        return flight.result

    async def _ask(self, token: str) -> Result:
        form, headers = _client_auth(self._settings)
        form = {"token": token, "token_type_hint": "access_token", **form}
        self.calls += 1
        try:
            answer = await post_form_json(
                self._client,
                self._settings.endpoint,
                form,
                headers=headers,
                time_limit=self._settings.http_timeout_seconds,
            )
        except Unavailable as exc:
            log.warning("auth.introspection_unavailable", error=str(exc))
            return Failure("unavailable", "the introspection endpoint cannot be reached")
        return judge(
            answer,
            issuer=self._issuer,
            audiences=self._audiences,
            require_audience=self._settings.require_audience,
            now=self._now(),
        )

    def _cached(self, digest: bytes) -> Result | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        until, result = entry
        lapsed = isinstance(result, Principal) and _lapsed(result, self._now())
        if trio.current_time() >= until or lapsed:
            del self._cache[digest]
            return None
        return result

    def _store(self, digest: bytes, result: Result) -> None:
        ttl = self._ttl(result)
        if ttl <= 0 or self._settings.max_cached_tokens == 0:
            return
        self._cache[digest] = (trio.current_time() + ttl, result)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._settings.max_cached_tokens:
            self._cache.popitem(last=False)

    def _ttl(self, result: Result) -> float:
        limit = self._settings.cache_seconds
        if isinstance(result, Failure):
            return 0.0 if result.temporary else min(limit, INACTIVE_TTL)
        if result.expiry is not None:
            return min(limit, result.expiry - self._now())
        return limit
