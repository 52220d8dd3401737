"""Why a request was not authenticated: a small closed set, fit for a metric label.

``mcpd_auth_failures_total{reason}`` counts by ``Reason`` (never by principal: cardinality).
A ``Failure``'s ``detail`` is for logs; it never holds a token, key or claim value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

Reason = Literal[
    "missing",  # no credentials in the request
    "malformed",  # not a Bearer token, or not a well-formed key or JWT
    "invalid_key",  # a static key that matches no configured hash
    "expired",  # a key past its expiry, or a token past its exp
    "bad_signature",  # the JWT signature does not verify
    "bad_algorithm",  # an algorithm outside the allow-list (alg none, HS* without a secret...)
    "unknown_kid",  # the issuer's JWKS has no key for the token
    "bad_claims",  # iss, aud, nbf, iat, typ or a required claim is wrong or missing
    "inactive",  # introspection says the token is not active (or not for us)
    "unavailable",  # the JWKS or the introspection endpoint cannot be reached
]
REASONS: Final[tuple[str, ...]] = get_args(Reason)


@dataclass(frozen=True, slots=True)
class Failure:
    reason: Reason
    detail: str = ""

    @property
    def token_sent(self) -> bool:
        return self.reason != "missing"

    @property
    def temporary(self) -> bool:
        """The token may be fine: our upstream (JWKS, introspection) is not reachable."""
        return self.reason == "unavailable"
