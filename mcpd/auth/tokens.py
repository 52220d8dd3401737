"""JWT access tokens end to end: header, the right key (JWKS or shared secret), claims.

Glue between the pure checks of ``mcpd.auth.jwt`` and the key cache of ``mcpd.auth.jwks``.
The wall clock (for ``exp``/``nbf``/``iat``) is injectable; tests pass a fixed one.

A client sends the same token with every request, and verifying a signature costs about
0.2 ms (RS256 or ES256, measured), so accepted tokens are remembered under their SHA-256
(never the token itself), bounded in number, until the token's ``exp`` (plus the leeway) or
for ``jwks_cache_seconds`` at most, so a key the issuer withdrew stops working as soon as
it would without the cache. Refused tokens are not remembered: each is checked again.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import trio
from joserfc.jwk import Key, OctKey

from mcpd.auth.failures import Failure
from mcpd.auth.jwks import JwksCache
from mcpd.auth.jwt import TokenRules, parse_header, verify
from mcpd.auth.principal import Principal

WallClock = Callable[[], float]
MAX_ACCEPTED: Final = 10_000


class JwtValidator:
    def __init__(
        self,
        rules: TokenRules,
        jwks: JwksCache | None,
        *,
        shared_secret: str = "",
        wall_clock: WallClock = time.time,
        remember_seconds: float = 600.0,
    ) -> None:
        self.rules = rules
        self.jwks = jwks
        self._secret: Key | None = OctKey.import_key(shared_secret) if shared_secret else None
        self._now = wall_clock
        self._remember = remember_seconds
        self._accepted: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    async def validate(self, token: str) -> Principal | Failure:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        known = self._recall(digest)
        if known is not None:
            return known
        result = await self._validate(token)
        if isinstance(result, Principal) and self._remember > 0:
            self._accepted[digest] = (trio.current_time() + self._remember, result)
            while len(self._accepted) > MAX_ACCEPTED:
                self._accepted.popitem(last=False)
        return result

    def _recall(self, digest: bytes) -> Principal | None:
        entry = self._accepted.get(digest)
        if entry is None:
            return None
        until, principal = entry
        expiry = principal.expiry
        if trio.current_time() >= until or (
            expiry is not None and self._now() >= expiry + self.rules.leeway
        ):
            del self._accepted[digest]
            return None
        return principal

    async def _validate(self, token: str) -> Principal | Failure:
        header = parse_header(token, self.rules)
        if isinstance(header, Failure):
            return header
        if header.is_hmac:
            # Only the configured secret verifies HS*: never a (public) key from the JWKS.
            if self._secret is None:
                return Failure("bad_algorithm", f"{header.alg} needs a shared secret")
            key: Key | Failure = self._secret
        elif self.jwks is None:
            return Failure("bad_algorithm", f"{header.alg}: no JWKS configured")
        else:
            key = await self.jwks.key_for(header.kid, header.alg)
        if isinstance(key, Failure):
            return key
        return verify(token, header, key, self.rules, now=int(self._now()))
