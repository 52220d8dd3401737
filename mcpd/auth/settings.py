"""The ``[auth]`` config table: pydantic models, validated by ``mcpd.config`` after layering.

``[auth]`` holds nested values (``[[auth.keys]]``, ``[auth.oauth]``, ``[[auth.rules]]``), so
it is a model table: each top-level key (``mode``, ``keys``, ``oauth``...) comes whole from
the highest layer that sets it, and the merged table is validated here. Secrets (``{ "$env" =
"..." }`` and friends) arrive resolved as ``Secret`` strings and stay ``Secret`` (masked).

Everything here is pure data; nothing does I/O.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from mcpd.listen_addresses import is_loopback_host
from mcpd.secret_values import Secret

Mode = Literal["none", "keys", "oauth", "keys+oauth"]

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), so a scope never needs
# quoting inside a WWW-Authenticate quoted-string.
SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
KEY_HASH: Final = re.compile(r"sha256:[0-9a-f]{64}")
# Asymmetric algorithms only by default: an HMAC key would have to be shared with the issuer,
# and accepting HS* beside public keys invites the classic key-confusion attack.
ASYMMETRIC_ALGORITHMS: Final = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")


def _keep_secret(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """pydantic turns ``str`` subclasses into plain ``str``: keep a ``Secret`` masked."""
    return value if isinstance(value, Secret) else handler(value)


def _scope(value: str) -> str:
    if not SCOPE_TOKEN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a scope token (printable ASCII, no spaces, quotes or backslashes)"
        )
    return value


SecretText = Annotated[str, WrapValidator(_keep_secret)]
Scope = Annotated[str, AfterValidator(_scope)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def check_url(value: str, what: str, *, query: bool = True) -> str:
    """An absolute ``https`` URL (``http`` only to a loopback host), no fragment."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http(s) URL, got {value!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"{what} must use https (plain http only to a loopback host): {value!r}")
    if parts.fragment or value.endswith("#"):
        raise ValueError(f"{what} must not have a fragment: {value!r}")
    if not query and (parts.query or "?" in value):
        raise ValueError(f"{what} must not have a query: {value!r}")
    return value


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySettings(_Table):
    """One ``[[auth.keys]]`` entry: a static API key, stored as its hash."""

    principal: str
    hash: str
    scopes: tuple[Scope, ...] = ()
    expires: dt.datetime | None = None  # a TOML date or date-time; naive means UTC

    @field_validator("principal")
    @classmethod
    def _principal(cls, value: str) -> str:
        if not re.fullmatch(r"[\x21-\x7E]{1,128}", value):
            raise ValueError("expected 1-128 printable ASCII characters without spaces")
        return value

    @field_validator("hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not KEY_HASH.fullmatch(value):
            raise ValueError(
                "expected 'sha256:' and 64 lower-case hex digits, as `mcpd auth new-key` prints"
            )
        return value

    @field_validator("expires", mode="before")
    @classmethod
    def _expires(cls, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return f"{value}T00:00:00+00:00"  # a date: the key expires as that day begins (UTC)
        return value

    @field_validator("expires")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class OAuthSettings(_Table):
    """``[auth.oauth]``: the authorization server whose JWT access tokens are accepted."""

    issuer: str
    jwks_uri: str = ""  # empty: discovered from the issuer's metadata
    audiences: tuple[str, ...] = ()  # empty: the [auth] resource URL
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    shared_secret: SecretText = ""  # enables HS256/384/512 (only with this secret, never JWKS)
    leeway_seconds: Annotated[float, Field(ge=0, le=600, allow_inf_nan=False)] = 60.0
    require_at_jwt_type: bool = False  # RFC 9068 "typ": "at+jwt" required when true
    jwks_cache_seconds: PositiveSeconds = 600.0
    jwks_min_refetch_seconds: Seconds = 30.0
    unknown_kid_cache_seconds: Seconds = 300.0
    http_timeout_seconds: PositiveSeconds = 10.0

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return check_url(value, "issuer", query=False)

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_uri(cls, value: str) -> str:
        return check_url(value, "jwks_uri") if value else value

    @field_validator("audiences")
    @classmethod
    def _audiences(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not audience for audience in value):
            raise ValueError("audiences must not be empty strings")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = (*ASYMMETRIC_ALGORITHMS, *HMAC_ALGORITHMS)
        unknown = [alg for alg in value if alg not in known]
        if unknown or not value:
            raise ValueError(f"expected a non-empty list of {', '.join(known)}; got {unknown}")
        return value

    @model_validator(mode="after")
    def _hmac_needs_secret(self) -> OAuthSettings:
        hmac = [alg for alg in self.algorithms if alg in HMAC_ALGORITHMS]
        if hmac and len(self.shared_secret) < 32:
            raise ValueError(
                f"algorithms {hmac} need shared_secret (at least 32 characters, as a secret)"
            )
        return self


class IntrospectionSettings(_Table):
    """``[auth.introspection]``: RFC 7662 token introspection for opaque (non-JWT) tokens."""

    endpoint: str
    client_id: str
    client_secret: SecretText
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    cache_seconds: Seconds = 300.0  # never longer than the token's own exp
    max_cached_tokens: Annotated[int, Field(ge=0)] = 10_000
    require_audience: bool = True  # an answer without "aud" is refused
    http_timeout_seconds: PositiveSeconds = 10.0

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return check_url(value, "endpoint")


class RuleSettings(_Table):
    """One ``[[auth.rules]]`` entry: name globs and what they require."""

    tools: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()  # globs over resource URIs / URI templates and names
    prompts: tuple[str, ...] = ()
    scopes: tuple[Scope, ...] | None = None  # set: replaces the plugin's own scopes
    principals: tuple[str, ...] | None = None  # set: only these may see and use the items

    @model_validator(mode="after")
    def _complete(self) -> RuleSettings:
        if not (self.tools or self.resources or self.prompts):
            raise ValueError("a rule needs at least one of tools, resources, prompts")
        if self.scopes is None and self.principals is None:
            raise ValueError("a rule needs scopes, principals or both")
        return self


class AuthSettings(_Table):
    """The whole ``[auth]`` table."""

    mode: Mode = "none"
    resource: str = ""  # the public URL of the MCP endpoint (RFC 9728 "resource")
    allow_anonymous_remote: bool = False
    realm: Annotated[str, Field(pattern=r"^[\x20\x21\x23-\x5B\x5D-\x7E]*$")] = "mcpd"
    scopes_supported: tuple[Scope, ...] = ()
    # Scope hierarchy: a granted scope implies these (transitively), e.g. write implies read.
    implied_scopes: Mapping[Scope, tuple[Scope, ...]] = Field(default_factory=dict)
    max_token_bytes: Annotated[int, Field(ge=256, le=1_048_576)] = 16_384
    keys: tuple[KeySettings, ...] = ()
    oauth: OAuthSettings | None = None
    introspection: IntrospectionSettings | None = None
    rules: tuple[RuleSettings, ...] = ()

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: str) -> str:
        return check_url(value, "resource", query=False) if value else value

    @model_validator(mode="after")
    def _consistent(self) -> AuthSettings:
        if self.mode in ("oauth", "keys+oauth"):
            if not self.resource:
                raise ValueError(f'mode = "{self.mode}" needs resource (the public MCP URL)')
            if self.oauth is None:
                raise ValueError(f'mode = "{self.mode}" needs an [auth.oauth] table')
        if self.mode == "none" and self.rules:
            raise ValueError(
                'mode = "none" makes every caller anonymous: [[auth.rules]] need keys or oauth'
            )
        hashes = [key.hash for key in self.keys]
        if len(set(hashes)) != len(hashes):
            raise ValueError("two [[auth.keys]] entries have the same hash")
        return self

    @property
    def oauth_enabled(self) -> bool:
        return self.mode in ("oauth", "keys+oauth")

    @property
    def keys_enabled(self) -> bool:
        return self.mode in ("keys", "keys+oauth")

    @property
    def audiences(self) -> tuple[str, ...]:
        """The accepted ``aud`` values: the configured list, else the resource URL."""
        if self.oauth is not None and self.oauth.audiences:
            return self.oauth.audiences
        return (self.resource,)
