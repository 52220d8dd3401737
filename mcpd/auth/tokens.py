"""JWT access tokens end to end: header, the right key (JWKS or shared secret), claims.

Glue between the pure checks of ``mcpd.auth.jwt`` and the key cache of ``mcpd.auth.jwks``.
The wall clock (for ``exp``/``nbf``/``iat``) is injectable; tests pass a fixed one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from joserfc.jwk import Key, OctKey

from mcpd.auth.failures import Failure
from mcpd.auth.jwks import JwksCache
from mcpd.auth.jwt import TokenRules, parse_header, verify
from mcpd.auth.principal import Principal

WallClock = Callable[[], float]


class JwtValidator:
    def __init__(
        self,
        rules: TokenRules,
        jwks: JwksCache | None,
        *,
        shared_secret: str = "",
        wall_clock: WallClock = time.time,
    ) -> None:
        self.rules = rules
        self.jwks = jwks
        self._secret: Key | None = OctKey.import_key(shared_secret) if shared_secret else None
        self._now = wall_clock

    async def validate(self, token: str) -> Principal | Failure:
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
