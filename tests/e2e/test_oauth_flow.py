"""The whole OAuth 2.1 flow, as an MCP client does it, against a real daemon and a real
authorization server (oidc-provider on Node): the official Python SDK client gets a 401,
finds the protected-resource metadata from its challenge, discovers the authorization server,
registers itself, runs the authorization-code flow with PKCE and a resource indicator, and
calls a tool with the token; the tool sees the user, and what needs a scope the token lacks
stays hidden.

Both ends need a fixed URL (the token's audience is the MCP endpoint's URL, which the client
checks against the metadata's ``resource``), so the daemon gets a port picked up front.
"""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from conformance import runner
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from support.authorization_server import AuthorizationServer, authorization_server
from support.daemon import WAIT, Daemon, write_config
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "tests" / "fixtures" / "plugins" / "mcpd-fixture-probe"
REDIRECT = "http://127.0.0.1:9/callback"  # never contacted: the code is read off the redirect


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint_url() -> str:
    return f"http://127.0.0.1:{free_port()}/mcp"


@pytest.fixture(scope="module")
def issuer(
    tmp_path_factory: pytest.TempPathFactory, endpoint_url: str
) -> Iterator[AuthorizationServer]:
    try:
        with authorization_server(
            tmp_path_factory.mktemp("oidc"),
            resource=endpoint_url,
            alg="ES256",
            scopes=["probe:read", "probe:write", "probe:admin"],
        ) as server:
            yield server
            return
    except runner.ConformanceError as exc:
        problem = str(exc)
    pytest.fail(f"oidc-provider could not be installed or run: {problem}", pytrace=False)


@pytest.fixture(scope="module")
def protected(
    tmp_path_factory: pytest.TempPathFactory, endpoint_url: str, issuer: AuthorizationServer
) -> Iterator[Daemon]:
    site = tmp_path_factory.mktemp("oauth-site")
    install_plugins(site, PROBE)
    port = urllib.parse.urlsplit(endpoint_url).port
    config = write_config(
        tmp_path_factory.mktemp("oauth-cfg") / "mcpd.toml",
        f"""
[server]
listen = ["127.0.0.1:{port}"]
shutdown_grace_seconds = 1

[plugins]
enable = ["probe"]

[auth]
mode = "oauth"
resource = "{endpoint_url}"
scopes_supported = ["probe:read"]

[auth.oauth]
issuer = "{issuer.issuer}"
""",
    )
    daemon = Daemon.start(config, pythonpath=site)
    yield daemon
    assert daemon.stop() == 0


class Memory:
    """The SDK's token storage, in memory (what a real client keeps on disk)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """Plays the user's browser: follows the authorization server's redirects (its test
    interaction logs in "alice" and consents) to the client's redirect URI."""

    def __init__(self) -> None:
        self.back: dict[str, str] = {}
        self.visits: list[str] = []

    async def open(self, url: str) -> None:
        self.visits.append(url)
        async with httpx.AsyncClient() as browser:  # keeps the interaction's cookies
            for _ in range(10):
                response = await browser.get(url)
                location = response.headers.get("location")
                assert response.status_code in (302, 303), response.text
                assert location is not None
                url = urllib.parse.urljoin(url, location)
                if url.startswith(REDIRECT):
                    self.back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
                    return
        raise AssertionError("the authorization server never redirected back")

    async def returned(self) -> AuthorizationCodeResult:
        assert "code" in self.back, f"the authorization server answered {self.back}"
        return AuthorizationCodeResult(
            code=self.back["code"], state=self.back.get("state"), iss=self.back.get("iss")
        )


def provider(url: str, browser: Browser, storage: Memory) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        redirect_uris=[REDIRECT],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        client_name="mcpd oauth flow test",
    )
    return OAuthClientProvider(
        server_url=url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=browser.open,
        callback_handler=browser.returned,
    )


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_the_sdk_client_signs_in_and_calls_a_tool(
    protected: Daemon, issuer: AuthorizationServer, mode: str
) -> None:
    browser, storage = Browser(), Memory()

    async def session() -> dict[str, Any]:
        auth = provider(protected.url, browser, storage)
        async with (
            httpx2.AsyncClient(auth=auth, timeout=WAIT) as http,
            Client(streamable_http_client(protected.url, http_client=http), mode=mode) as client,
        ):
            me = await client.call_tool("whoami", {})
            tools = [tool.name for tool in (await client.list_tools()).tools]
            return {"me": me.structured_content, "tools": tools}

    seen = anyio.run(session, backend="asyncio")
    assert seen["me"]["subject"] == "alice"
    assert seen["me"]["issuer"] == issuer.issuer
    assert "probe:read" in seen["me"]["scopes"]
    assert "probe_admin" not in seen["tools"]  # hidden without probe:admin
    assert storage.client is not None  # it registered itself (dynamic client registration)
    authorize = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.visits[0]).query)
    assert authorize["code_challenge_method"] == ["S256"]
    assert authorize["resource"] == [protected.url]
    assert browser.back["iss"] == issuer.issuer


def test_the_metadata_names_the_endpoint_and_its_issuer(
    protected: Daemon, issuer: AuthorizationServer
) -> None:
    base = protected.binds[0]
    with httpx.Client(timeout=WAIT) as http:
        challenge = http.post(protected.url, json={}).headers["www-authenticate"]
        assert f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"' in challenge
        for path in (
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource",
        ):
            metadata = http.get(base + path)
            assert metadata.status_code == 200
            assert metadata.headers["access-control-allow-origin"] == "*"
            document = metadata.json()
            assert document["resource"] == protected.url
            assert document["authorization_servers"] == [issuer.issuer]
            assert "probe:read" in document["scopes_supported"]
