"""RFC 9728 metadata (served over real HTTP) and the WWW-Authenticate challenges."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import httpx
import hypercorn.trio
import pytest
import trio
from hypercorn.config import Config

from mcpd.auth import challenge
from mcpd.auth.authenticator import Authenticator
from mcpd.auth.failures import Failure
from mcpd.auth.metadata import metadata_paths, metadata_url
from mcpd.auth.settings import AuthSettings
from mcpd.auth.wellknown import MetadataApp, metadata_routes

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
    app = MetadataApp(settings())
    assert metadata_routes(settings("keys"), "/mcp", app) == {}
    assert metadata_routes(settings("none"), "/mcp", app) == {}
    assert set(metadata_routes(settings("keys+oauth"), "/mcp", app)) == {
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    }


async def serve_routes(
    routes: dict[str, Any], requests: list[tuple[str, str]]
) -> list[httpx.Response]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await routes[scope["path"]](scope, receive, send)

    config = Config()
    config.bind = ["127.0.0.1:0"]
    # hypercorn's default "-" logs would rewire the process-wide "hypercorn.error" logger.
    config.accesslog = None
    config.errorlog = logging.getLogger("mcpd.tests.hypercorn")
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        [base] = await nursery.start(
            partial(hypercorn.trio.serve, app, config, shutdown_trigger=stop.wait)
        )
        try:
            async with httpx.AsyncClient(base_url=base) as client:
                return [
                    await client.request(
                        method, path, headers={"origin": "https://inspector.example"}
                    )
                    for method, path in requests
                ]
        finally:
            stop.set()


async def test_metadata_document_over_http() -> None:
    auth = settings(scopes_supported=["probe:read"])
    routes = metadata_routes(auth, "/mcp", MetadataApp(auth))
    root, path_form, preflight, post = await serve_routes(
        routes,
        [
            ("GET", "/.well-known/oauth-protected-resource"),
            ("GET", "/.well-known/oauth-protected-resource/mcp"),
            ("OPTIONS", "/.well-known/oauth-protected-resource/mcp"),
            ("POST", "/.well-known/oauth-protected-resource"),
        ],
    )
    expected = {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["probe:read"],
    }
    for response in (root, path_form):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.json() == expected
    assert preflight.status_code == 204
    assert "mcp-protocol-version" in preflight.headers["access-control-allow-headers"]
    assert post.status_code == 405
    assert post.json() == {"error": "method_not_allowed"}


def test_metadata_scopes_default_to_what_rules_and_plugins_need() -> None:
    auth = settings()
    app = MetadataApp(auth, {"probe:write", "probe:read"})
    assert b'"scopes_supported": ["probe:read", "probe:write"]' in app.body
    assert b"scopes_supported" not in MetadataApp(auth).body


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
