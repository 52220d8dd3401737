"""The one call the endpoint makes: ``await authenticator.authenticate(headers, client)``.

It returns the request's ``Principal`` or raises ``Unauthenticated``, which carries the whole
answer to send: status (401, or 503 when the issuer's keys or the introspection endpoint
cannot be reached: the token may be fine), headers (the challenge) and an OAuth-style JSON
body. Modes:

- ``none``: every request is ``Anonymous(client)``; credentials are ignored.
- ``keys``: ``Authorization: Bearer mcpd_...`` must match a configured key.
- ``oauth``: a JWT access token (or, with ``[auth.introspection]``, an opaque one).
- ``keys+oauth``: a token with the key prefix is checked as a key, anything else as OAuth.

Only the ``Authorization`` header is read: tokens in the query string are never accepted
(OAuth 2.1 section 5.1.1). ``open_authenticator`` owns the HTTP client the OAuth side uses.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Final

import httpx
import structlog

from mcpd.auth import challenge
from mcpd.auth.discovery import discover_jwks_uri
from mcpd.auth.failures import Failure
from mcpd.auth.fetch import get_json, new_client
from mcpd.auth.introspection import Introspector
from mcpd.auth.jwks import CacheTimes, JwksCache
from mcpd.auth.jwt import TokenRules, looks_like_jwt
from mcpd.auth.keys import KeyTable, looks_like_key
from mcpd.auth.principal import Principal, anonymous
from mcpd.auth.settings import AuthSettings, OAuthSettings
from mcpd.auth.tokens import JwtValidator, WallClock

log = structlog.get_logger("mcpd.auth")

# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class Unauthenticated(Exception):
    """The request is refused before anything runs; send ``status``, ``headers``, ``body``."""

    def __init__(self, failure: Failure, status: int, headers: challenge.Headers, body: bytes):
        super().__init__(f"{failure.reason}: {failure.detail}")
        self.failure = failure
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def reason(self) -> str:
        return self.failure.reason


def bearer_token(headers: Mapping[str, str], max_bytes: int) -> str | Failure:
    """The token of ``Authorization: Bearer <token>`` (header names lower-case)."""
    value = headers.get("authorization")
    if value is None or not value.strip():
        return Failure("missing", "no Authorization header")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return Failure("malformed", "the Authorization scheme is not Bearer")
    if len(token) > max_bytes or not B64TOKEN.fullmatch(token):
        return Failure("malformed", "the bearer token is not a b64token of acceptable size")
    return token


class Authenticator:
    """Authentication for one ``[auth]`` configuration; ``reconfigured`` makes the next."""

    def __init__(
        self,
        auth: AuthSettings,
        client: httpx.AsyncClient | None = None,
        *,
        wall_clock: WallClock = time.time,
        jwks: JwksCache | None = None,
    ) -> None:
        self.settings = auth
        self.keys = KeyTable.from_settings(auth.keys)
        self._now = wall_clock
        self._client = client
        self.jwt: JwtValidator | None = None
        self.introspector: Introspector | None = None
        if auth.oauth_enabled:
            if client is None:
                raise ValueError("OAuth modes need an HTTP client")
            self._setup_oauth(auth, client, jwks)

    def _setup_oauth(
        self, auth: AuthSettings, client: httpx.AsyncClient, jwks: JwksCache | None
    ) -> None:
        oauth = auth.oauth
        assert oauth is not None  # checked by AuthSettings for the OAuth modes
        self.jwt = JwtValidator(
            TokenRules.from_settings(auth),
            jwks if jwks is not None else JwksCache(JwksFetch(client, oauth), _times(oauth)),
            shared_secret=oauth.shared_secret,
            wall_clock=self._now,
            remember_seconds=oauth.jwks_cache_seconds,
        )
        if auth.introspection is not None:
            self.introspector = Introspector(
                auth.introspection,
                client,
                issuer=oauth.issuer,
                audiences=frozenset(auth.audiences),
                wall_clock=self._now,
            )

    def reconfigured(self, auth: AuthSettings) -> Authenticator:
        """The authenticator for reloaded settings: new keys and rules at once; the JWKS cache
        is kept while the issuer's settings are unchanged (no refetch storm on SIGHUP)."""
        same_issuer = auth.oauth == self.settings.oauth and self.jwt is not None
        jwks = self.jwt.jwks if same_issuer and self.jwt is not None else None
        return Authenticator(auth, self._client, wall_clock=self._now, jwks=jwks)

    async def authenticate(self, headers: Mapping[str, str], client: str | None) -> Principal:
        """The caller of a request (``headers`` with lower-case names; ``client`` its address)."""
        if self.settings.mode == "none":
            return anonymous(client)
        token = bearer_token(headers, self.settings.max_token_bytes)
        result = token if isinstance(token, Failure) else await self._check(token)
        if isinstance(result, Failure):
            raise self.refusal(result, client)
        return result

    async def _check(self, token: str) -> Principal | Failure:
        if self.settings.keys_enabled and (looks_like_key(token) or self.jwt is None):
            found = self.keys.check(token, now=self._now())
            return found if isinstance(found, Principal) else Failure(found)
        if self.jwt is not None and looks_like_jwt(token):
            return await self.jwt.validate(token)
        if self.introspector is not None:
            return await self.introspector.introspect(token)
        return Failure("malformed", "neither a key nor a JWT")

    def refusal(self, failure: Failure, client: str | None = None) -> Unauthenticated:
        """The ``Unauthenticated`` answer for ``failure`` (logged; never the token)."""
        log.info("auth.refused", reason=failure.reason, detail=failure.detail, client=client)
        if failure.temporary:
            oauth = self.settings.oauth
            retry = max(1, round(oauth.jwks_min_refetch_seconds)) if oauth else 30
            body = challenge.error_body("temporarily_unavailable", "cannot validate tokens now")
            return Unauthenticated(failure, 503, [("Retry-After", str(retry))], body)
        headers = challenge.unauthorized(self.settings, token_sent=failure.token_sent)
        if failure.token_sent:
            body = challenge.error_body("invalid_token", "a valid access token is required")
        else:
            body = challenge.error_body("unauthorized", "authentication required")
        return Unauthenticated(failure, 401, headers, body)

    def forbidden(self, required: frozenset[str]) -> tuple[int, challenge.Headers, bytes]:
        """The 403 answer when the caller lacks scopes: status, challenge, body."""
        scope = " ".join(sorted(required))
        description = f"this needs the scopes: {scope}"
        body = challenge.error_body("insufficient_scope", description, scope=scope)
        return 403, challenge.insufficient_scope(self.settings, required), body


def _times(oauth: OAuthSettings) -> CacheTimes:
    return CacheTimes(
        max_age=oauth.jwks_cache_seconds,
        min_refetch=oauth.jwks_min_refetch_seconds,
        unknown_kid_ttl=oauth.unknown_kid_cache_seconds,
    )


class JwksFetch:
    """Fetches the JWKS; discovers ``jwks_uri`` from the issuer's metadata when not given."""

    def __init__(self, client: httpx.AsyncClient, oauth: OAuthSettings) -> None:
        self._client = client
        self._oauth = oauth
        self._uri = oauth.jwks_uri or None

    async def __call__(self) -> object:
        limit = self._oauth.http_timeout_seconds
        if self._uri is None:
            self._uri = await discover_jwks_uri(self._client, self._oauth.issuer, time_limit=limit)
            log.info("auth.jwks_discovered", jwks_uri=self._uri)
        return await get_json(self._client, self._uri, time_limit=limit)


@contextlib.asynccontextmanager
async def open_authenticator(auth: AuthSettings) -> AsyncIterator[Authenticator]:
    """An ``Authenticator`` and the HTTP client it owns (a reload may turn OAuth on)."""
    async with new_client() as client:
        yield Authenticator(auth, client)
