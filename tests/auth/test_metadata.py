"""RFC 9728 metadata (its routes over real HTTP: ``tests/transport/test_operator.py``) and the
WWW-Authenticate challenges."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mcpd.auth import challenge
from mcpd.auth.authenticator import Authenticator
from mcpd.auth.failures import Failure
from mcpd.auth.metadata import metadata_paths, metadata_url
from mcpd.auth.settings import AuthSettings
from mcpd.auth.wellknown import MetadataDocument, metadata_routes

RESOURCE = "https://mcp.example.com/mcp"
ISSUER = "https://idp.example.com"


def settings(mode: str = "oauth", **extra: Any) -> AuthSettings:
    table: dict[str, Any] = {"mode": mode, **extra}
    if mode in ("oauth", "keys+oauth"):
        table.setdefault("resource", RESOURCE)
        table.setdefault("oauth", {"issuer": ISSUER})
    return AuthSettings.model_validate(table)


def test_metadata_locations() -> None:
    assert (
        metadata_url(RESOURCE) == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    )
    assert metadata_url("https://mcp.example.com") == (
        "https://mcp.example.com/.well-known/oauth-protected-resource"
    )
    assert metadata_paths(RESOURCE, "/mcp") == [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ]
    # Behind a proxy that strips a prefix, both the public and the local path forms are served.
    assert metadata_paths("https://h.example/tools/mcp", "/mcp") == [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/tools/mcp",
        "/.well-known/oauth-protected-resource/mcp",
    ]


def test_no_metadata_in_keys_only_mode_or_mode_none() -> None:
    assert metadata_routes(settings("keys"), "/mcp") == []
    assert metadata_routes(settings("none"), "/mcp") == []
    assert set(metadata_routes(settings("keys+oauth"), "/mcp")) == {
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    }


def test_metadata_scopes_default_to_what_rules_and_plugins_need() -> None:
    auth = settings()
    document = MetadataDocument(auth, {"probe:write", "probe:read"})
    assert b'"scopes_supported": ["probe:read", "probe:write"]' in document.body
    assert b"scopes_supported" not in MetadataDocument(auth).body


@pytest.mark.parametrize(
    ("mode", "failure", "expected"),
    [
        (
            "oauth",
            Failure("missing"),
            'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="probe:read"',
        ),
        (
            "oauth",
            Failure("expired"),
            'Bearer error="invalid_token", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="probe:read"',
        ),
        ("keys", Failure("missing"), 'Bearer realm="mcpd"'),
        ("keys", Failure("invalid_key"), 'Bearer realm="mcpd"'),
        (
            "keys+oauth",
            Failure("invalid_key"),
            'Bearer error="invalid_token", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="probe:read"',
        ),
    ],
)
def test_401_challenges(mode: str, failure: Failure, expected: str) -> None:
    auth = Authenticator(settings(mode, scopes_supported=["probe:read"]), httpx.AsyncClient())
    refusal = auth.refusal(failure)
    assert refusal.status == 401
    assert refusal.headers == [("WWW-Authenticate", expected)]
    error = "invalid_token" if failure.token_sent else "unauthorized"
    assert httpx.Response(401, content=refusal.body).json()["error"] == error


def test_401_without_scopes_supported_names_no_scope() -> None:
    [(_, value)] = challenge.unauthorized(settings(), token_sent=False)
    assert "scope=" not in value
    [(_, value)] = challenge.unauthorized(settings(), token_sent=False, scopes=["a", "b"])
    assert value.endswith('scope="a b"')


def test_403_names_every_needed_scope() -> None:
    auth = Authenticator(settings(), httpx.AsyncClient())
    status, headers, body = auth.forbidden(frozenset({"probe:write", "probe:read"}))
    assert status == 403
    assert headers == [
        (
            "WWW-Authenticate",
            'Bearer error="insufficient_scope", scope="probe:read probe:write", '
            'resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"',
        )
    ]
    assert httpx.Response(403, content=body).json()["scope"] == "probe:read probe:write"
    keys = Authenticator(settings("keys"))
    assert keys.forbidden(frozenset({"x"}))[1] == [
        ("WWW-Authenticate", 'Bearer realm="mcpd", error="insufficient_scope", scope="x"')
    ]
