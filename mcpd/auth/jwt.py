"""JWT access tokens (RFC 9068 profile, OAuth 2.1 section 5.2), validated with joserfc.

Pure: the key comes from the caller (``mcpd.auth.jwks`` for the issuer's keys, or the shared
secret for HS*), and so does the time. What is checked, in order:

1. shape and size: three base64url segments, a JSON-object header, at most ``max_token_bytes``;
2. ``alg`` on the allow-list: never ``none``; HS256/384/512 only when configured with a shared
   secret, and then verified only with that secret: a public key from the JWKS is never used
   as an HMAC secret (the RS256-to-HS256 confusion attack);
3. the key fits the algorithm (RSA for RS*/PS*, the right curve for ES*, OKP for EdDSA; a key
   whose own ``alg`` or ``use`` says otherwise is not used);
4. the signature;
5. claims: ``iss`` exactly the configured issuer, ``aud`` containing one accepted audience,
   ``exp`` present and in the future, ``nbf``/``iat`` not in the future, with a leeway;
6. ``typ``: RFC 9068 says ``at+jwt``, but most identity providers send ``JWT`` or nothing, so by
   default ``at+jwt``, ``application/at+jwt``, ``JWT`` and no ``typ`` pass and anything else
   (an ID token marked ``id_token``, a logout or DPoP proof JWT...) fails;
   ``require_at_jwt_type = true`` accepts only the RFC 9068 types.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import Key
from joserfc.jws import JWSRegistry

from mcpd.auth.failures import Failure
from mcpd.auth.principal import Principal
from mcpd.auth.settings import HMAC_ALGORITHMS, AuthSettings

SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]+")
AT_JWT_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
LENIENT_TYPES: Final = AT_JWT_TYPES | {"jwt", "application/jwt"}
MAX_HEADER_BYTES: Final = 4096  # joserfc's own default (512) is too small for x5c chains
# RFC 7518 / RFC 8037: the key type (and curve) each algorithm family needs.
_KEY_TYPES: Final = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP", "HS": "oct"}
_CURVES: Final = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


@dataclass(frozen=True, slots=True)
class TokenRules:
    """What an access token must satisfy, from ``[auth]`` and ``[auth.oauth]``."""

    issuer: str
    audiences: frozenset[str]
    algorithms: frozenset[str]
    leeway: int
    require_at_jwt_type: bool = False
    max_bytes: int = 16_384

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> TokenRules:
        if auth.oauth is None:
            raise ValueError("[auth.oauth] is not configured")
        return cls(
            issuer=auth.oauth.issuer,
            audiences=frozenset(auth.audiences),
            algorithms=frozenset(auth.oauth.algorithms),
            leeway=round(auth.oauth.leeway_seconds),
            require_at_jwt_type=auth.oauth.require_at_jwt_type,
            max_bytes=auth.max_token_bytes,
        )


@dataclass(frozen=True, slots=True)
class Header:
    alg: str
    kid: str | None
    typ: str | None

    @property
    def is_hmac(self) -> bool:
        return self.alg in HMAC_ALGORITHMS


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated base64url segments (the signature may not be empty)."""
    parts = token.split(".")
    return len(parts) == 3 and all(SEGMENT.fullmatch(part) for part in parts)


def _b64_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def parse_header(token: str, rules: TokenRules) -> Header | Failure:
    """The protected header, checked for shape, size, ``alg`` and ``typ``."""
    header = _decode_header(token, rules.max_bytes)
    if isinstance(header, Failure):
        return header
    alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
    if not isinstance(alg, str) or alg not in rules.algorithms:
        return Failure("bad_algorithm", f"alg {str(alg)[:16]!r} is not allowed")
    if not all(value is None or isinstance(value, str) for value in (kid, typ)):
        return Failure("malformed", "kid and typ must be strings")
    if "crit" in header:
        # No critical extension is understood here, so RFC 7515 section 4.1.11 says reject.
        return Failure("malformed", "JWT header has crit parameters")
    if not _typ_ok(typ, rules.require_at_jwt_type):
        return Failure("bad_claims", f"typ {str(typ)[:32]!r} is not an access token type")
    return Header(alg=alg, kid=kid, typ=typ)


def _decode_header(token: str, max_bytes: int) -> dict[str, Any] | Failure:
    if len(token) > max_bytes or not looks_like_jwt(token):
        return Failure("malformed", "not a compact JWS of acceptable size")
    segment = token.split(".", 1)[0]
    if len(segment) > MAX_HEADER_BYTES:
        return Failure("malformed", "JWT header too large")
    try:
        header = _b64_json(segment)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return Failure("malformed", "JWT header is not base64url JSON")
    if not isinstance(header, dict):
        return Failure("malformed", "JWT header is not a JSON object")
    return header


def _typ_ok(typ: str | None, strict: bool) -> bool:
    if typ is None:
        return not strict
    return typ.lower() in (AT_JWT_TYPES if strict else LENIENT_TYPES)


def key_fits(key: Key, alg: str) -> bool:
    """Whether ``key`` may verify ``alg``: type, curve, and the key's own alg/use."""
    if _KEY_TYPES.get(alg[:2]) != key.key_type:
        return False
    if alg in _CURVES and key.get("crv") != _CURVES[alg]:
        return False
    own_alg, use = key.get("alg"), key.get("use")
    return (own_alg is None or own_alg == alg) and (use is None or use == "sig")


def verify(
    token: str, header: Header, key: Key, rules: TokenRules, *, now: int
) -> Principal | Failure:
    """Signature and claims; the principal the token stands for."""
    if not key_fits(key, header.alg):
        return Failure("bad_algorithm", f"the key for kid {header.kid!r} does not fit {header.alg}")
    registry = JWSRegistry(algorithms=[header.alg], strict_check_header=False)
    registry.max_header_length = MAX_HEADER_BYTES
    registry.max_payload_length = rules.max_bytes
    try:
        decoded = jwt.decode(token, key, algorithms=[header.alg], registry=registry)
    except JoseError as exc:
        return Failure("bad_signature", exc.error)
    except (ValueError, TypeError):
        return Failure("malformed", "JWT payload is not a JSON object")
    return check_claims(decoded.claims, rules, now=now)


def check_claims(claims: Mapping[str, Any], rules: TokenRules, *, now: int) -> Principal | Failure:
    """The registered claims (iss, aud, exp, nbf, iat) and the principal they name."""
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=rules.leeway,
        iss={"essential": True, "value": rules.issuer},
        aud={"essential": True, "values": sorted(rules.audiences)},
        exp={"essential": True},
    )
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError:
        return Failure("expired", "exp has passed")
    except MissingClaimError as exc:
        return Failure("bad_claims", f"missing claim {exc.description}")
    except JoseError as exc:
        return Failure("bad_claims", exc.description or exc.error)
    return principal_from_claims(claims, rules.issuer)


def principal_from_claims(claims: Mapping[str, Any], issuer: str) -> Principal | Failure:
    """``sub`` (or, for client-credentials tokens without one, the client id), scopes, exp."""
    client_id = _first_string(claims, "client_id", "azp")
    subject = claims.get("sub", client_id)
    if not isinstance(subject, str) or not subject:
        return Failure("bad_claims", "no sub (nor client_id) claim")
    exp = claims.get("exp")
    return Principal(
        issuer=issuer,
        subject=subject,
        client_id=client_id,
        scopes=scopes_of(claims),
        claims=claims,
        expiry=float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None,
    )


def _first_string(claims: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """RFC 9068 ``scope`` (space-separated), else ``scp`` (a list or a string: Okta, Entra)."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return frozenset(value)
    return frozenset()
