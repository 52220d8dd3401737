"""Real access tokens from a real authorization server (oidc-provider), validated by mcpd.

Both grants MCP clients use: client credentials (a service), and the authorization-code flow
with dynamic client registration, PKCE (S256) and a resource indicator, driven by following
the server's redirects (its test interaction logs in "alice" and grants what was asked).
mcpd is configured with the issuer only: ``jwks_uri`` is discovered from its metadata.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from auth.conftest import SERVICE_CLIENT
from support.authorization_server import AuthorizationServer, follow_to_redirect, pkce
from support.tokens import RESOURCE

from mcpd.auth.authenticator import Authenticator, Unauthenticated
from mcpd.auth.fetch import new_client
from mcpd.auth.settings import AuthSettings

# A loopback redirect, as native clients register; never contacted: the code is read from
# the redirect itself.
REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as http:
        yield http


def mcpd_settings(server: AuthorizationServer, **oauth: Any) -> AuthSettings:
    return AuthSettings.model_validate(
        {
            "mode": "oauth",
            "resource": RESOURCE,
            "oauth": {"issuer": server.issuer, "require_at_jwt_type": True, **oauth},
        }
    )


async def client_credentials_token(
    http: httpx.AsyncClient, server: AuthorizationServer, **form: str
) -> httpx.Response:
    metadata = (await http.get(f"{server.issuer}/.well-known/openid-configuration")).json()
    return await http.post(
        metadata["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": "probe:read", **form},
        auth=(SERVICE_CLIENT["client_id"], SERVICE_CLIENT["client_secret"]),
    )


async def test_client_credentials_token_is_accepted(
    oidc_provider: AuthorizationServer, client: httpx.AsyncClient
) -> None:
    answer = await client_credentials_token(client, oidc_provider, resource=RESOURCE)
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    auth = Authenticator(mcpd_settings(oidc_provider), client)
    principal = await auth.authenticate({"authorization": f"Bearer {token}"}, "127.0.0.1")
    assert principal.issuer == oidc_provider.issuer
    assert principal.subject == principal.client_id == "probe-service"
    assert principal.scopes == {"probe:read"}
    assert principal.claims["aud"] == RESOURCE


async def test_another_audience_is_refused(
    oidc_provider: AuthorizationServer, client: httpx.AsyncClient
) -> None:
    token = (await client_credentials_token(client, oidc_provider)).json()["access_token"]
    elsewhere = Authenticator(mcpd_settings(oidc_provider, audiences=["https://other/mcp"]), client)
    with pytest.raises(Unauthenticated) as caught:
        await elsewhere.authenticate({"authorization": f"Bearer {token}"}, None)
    assert caught.value.reason == "bad_claims"
    # The server itself refuses a resource it does not serve (RFC 8707 invalid_target).
    refused = await client_credentials_token(client, oidc_provider, resource="https://other/mcp")
    assert refused.json()["error"] == "invalid_target"


async def test_authorization_code_flow_with_registration_and_pkce(
    oidc_provider: AuthorizationServer, client: httpx.AsyncClient
) -> None:
    metadata = (await client.get(f"{oidc_provider.issuer}/.well-known/openid-configuration")).json()
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    registered = await client.post(
        metadata["registration_endpoint"],
        # What the official Python SDK client registers (its OAuthClientMetadata defaults).
        json={
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "application_type": "native",
            "client_name": "mcpd test client",
        },
    )
    assert registered.status_code == 201, registered.text
    client_id, secret = registered.json()["client_id"], registered.json()["client_secret"]
    assert registered.json()["token_endpoint_auth_method"] == "client_secret_basic"
    verifier, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "state": "xyz",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": RESOURCE,
        "scope": "probe:read probe:write",
    }
    async with httpx.AsyncClient() as browser:  # keeps the server's interaction cookies
        back = await follow_to_redirect(
            browser,
            f"{metadata['authorization_endpoint']}?{urllib.parse.urlencode(query)}",
            REDIRECT,
        )
    assert back["state"] == "xyz"
    assert back["iss"] == oidc_provider.issuer  # RFC 9207
    exchanged = await client.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": back["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "resource": RESOURCE,
        },
        auth=(client_id, secret),
    )
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.json()["access_token"]
    auth = Authenticator(mcpd_settings(oidc_provider), client)
    principal = await auth.authenticate({"authorization": f"Bearer {token}"}, None)
    assert (principal.subject, principal.client_id) == ("alice", client_id)
    assert principal.scopes == {"probe:read", "probe:write"}


async def test_pkce_is_required(
    oidc_provider: AuthorizationServer, client: httpx.AsyncClient
) -> None:
    metadata = (await client.get(f"{oidc_provider.issuer}/.well-known/openid-configuration")).json()
    registered = await client.post(
        metadata["registration_endpoint"],
        json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"},
    )
    query = {
        "response_type": "code",
        "client_id": registered.json()["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "probe:read",
    }
    async with httpx.AsyncClient() as browser:
        back = await follow_to_redirect(
            browser,
            f"{metadata['authorization_endpoint']}?{urllib.parse.urlencode(query)}",
            REDIRECT,
        )
    assert back["error"] == "invalid_request"
    assert "requires PKCE" in back["error_description"]
