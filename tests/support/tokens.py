"""A test token issuer: real RSA and EC keys, their JWKS, and JWTs signed with them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, Key, OctKey, RSAKey

from mcpd.auth.settings import AuthSettings
from support.loopback_http import Answer, LoopbackServer

RESOURCE = "http://127.0.0.1:8765/mcp"  # the [auth] resource of the token tests


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rsa_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def ec_key(kid: str, curve: str = "P-256") -> ECKey:
    return ECKey.generate_key(curve, parameters={"kid": kid})  # type: ignore[arg-type]


@dataclass
class Issuer:
    """Signs tokens as ``issuer`` for ``audience``; ``keys`` are what its JWKS publishes."""

    issuer: str
    audience: str
    keys: dict[str, Key] = field(default_factory=dict)

    def add(self, key: Key) -> Key:
        assert key.kid is not None
        self.keys[key.kid] = key
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.keys.values()]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "alice",
            "client_id": "client-1",
            "scope": "probe:read",
            "iat": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def token(
        self,
        key: Key,
        alg: str,
        *,
        typ: str | None = "at+jwt",
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        head: dict[str, Any] = {"alg": alg, "kid": key.kid, **(header or {})}
        if typ is not None:
            head["typ"] = typ
        return jwt.encode(head, self.claims(**claims), key, algorithms=[alg], default_type=None)


def unsigned_token(claims: dict[str, Any], alg: str = "none") -> str:
    """``alg: none`` (or any alg) with an empty signature."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def hmac_token(
    claims: dict[str, Any], secret: bytes, *, kid: str | None = None, alg: str = "HS256"
) -> str:
    """An HS* token signed with ``secret`` (e.g. an RSA public key's PEM: key confusion)."""
    head: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        head["kid"] = kid
    signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def shared_secret_key(secret: str) -> OctKey:
    return OctKey.import_key(secret)


def publish(server: LoopbackServer, issuer: Issuer) -> None:
    server.routes["/jwks"] = lambda _request: _jwks_answer(issuer)


def _jwks_answer(issuer: Issuer) -> Answer:
    return Answer.json(issuer.jwks())  # read at request time: rotation shows at once


def oauth_settings(server: LoopbackServer, **oauth: Any) -> AuthSettings:
    """``[auth]`` in oauth mode for the stub issuer, as a config file would give it."""
    table: dict[str, Any] = {"issuer": server.url, "jwks_uri": f"{server.url}/jwks", **oauth}
    return AuthSettings.model_validate(
        {
            "mode": "oauth",
            "resource": RESOURCE,
            "oauth": {k: v for k, v in table.items() if v is not None},
        }
    )
