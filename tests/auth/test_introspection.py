"""RFC 7662 introspection of opaque tokens against an endpoint on loopback.

``mock_clock`` (trio time stands still unless jumped) drives the cache lifetimes while the
endpoint, a thread, answers in real time.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from support.loopback_http import Answer, LoopbackServer, Received
from support.tokens import RESOURCE

from mcpd.auth.authenticator import Authenticator, Unauthenticated
from mcpd.auth.fetch import new_client
from mcpd.auth.settings import AuthSettings

TOKEN = "opaque-token-abc123"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as http:
        yield http


def settings(server: LoopbackServer, **introspection: Any) -> AuthSettings:
    return AuthSettings.model_validate(
        {
            "mode": "oauth",
            "resource": RESOURCE,
            "oauth": {"issuer": server.url, "jwks_uri": f"{server.url}/jwks"},
            "introspection": {
                "endpoint": f"{server.url}/introspect",
                "client_id": "mcpd rs",
                "client_secret": "s3cr&t",
                **introspection,
            },
        }
    )


def answering(server: LoopbackServer, answer: dict[str, Any]) -> None:
    def handle(request: Received) -> Answer:
        form = urllib.parse.parse_qs(request.body.decode())
        if form.get("token") != [TOKEN]:
            return Answer.json({"active": False})
        return Answer.json(answer)

    server.routes["/introspect"] = handle


def active(server: LoopbackServer, **extra: Any) -> dict[str, Any]:
    return {
        "active": True,
        "iss": server.url,
        "aud": RESOURCE,
        "sub": "carol",
        "client_id": "desktop",
        "scope": "probe:read",
        "exp": int(time.time()) + 600,
        **extra,
    }


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def reason(auth: Authenticator, token: str = TOKEN) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(bearer(token), None)
    return caught.value.reason


async def test_active_token_and_client_authentication(
    as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    answering(as_server, active(as_server))
    auth = Authenticator(settings(as_server), client)
    principal = await auth.authenticate(bearer(), None)
    assert (principal.subject, principal.client_id, principal.scopes) == (
        "carol",
        "desktop",
        frozenset({"probe:read"}),
    )
    [request] = as_server.requests_to("/introspect")
    assert request.method == "POST"
    form = urllib.parse.parse_qs(request.body.decode())
    assert form == {"token": [TOKEN], "token_type_hint": ["access_token"]}
    # RFC 6749 2.3.1: id and secret form-urlencoded, then HTTP Basic.
    expected = base64.b64encode(b"mcpd%20rs:s3cr%26t").decode()
    assert request.headers["authorization"] == f"Basic {expected}"


async def test_client_secret_post(as_server: LoopbackServer, client: httpx.AsyncClient) -> None:
    answering(as_server, active(as_server))
    auth = Authenticator(settings(as_server, auth_method="client_secret_post"), client)
    await auth.authenticate(bearer(), None)
    [request] = as_server.requests_to("/introspect")
    form = urllib.parse.parse_qs(request.body.decode())
    assert (form["client_id"], form["client_secret"]) == (["mcpd rs"], ["s3cr&t"])
    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"active": False}, "inactive"),
        ({"aud": "https://other.example/mcp"}, "inactive"),
        ({"aud": None}, "inactive"),  # require_audience
        ({"iss": "https://evil.example"}, "inactive"),
        ({"exp": int(time.time()) - 5}, "expired"),
        ({"nbf": int(time.time()) + 600}, "inactive"),
        ({"sub": None, "client_id": None}, "bad_claims"),
    ],
)
async def test_refusals(
    as_server: LoopbackServer, client: httpx.AsyncClient, change: dict[str, Any], expected: str
) -> None:
    answer = {k: v for k, v in {**active(as_server), **change}.items() if v is not None}
    answering(as_server, answer)
    assert await reason(Authenticator(settings(as_server), client)) == expected


async def test_audience_optional_when_configured(
    as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    answer = active(as_server)
    del answer["aud"]
    answering(as_server, answer)
    auth = Authenticator(settings(as_server, require_audience=False), client)
    assert (await auth.authenticate(bearer(), None)).subject == "carol"


async def test_cache_lives_no_longer_than_the_token_nor_the_max(
    as_server: LoopbackServer, client: httpx.AsyncClient, mock_clock: trio.testing.MockClock
) -> None:
    start = time.time() - trio.current_time()

    def wall() -> float:  # the wall clock moves with the mock clock
        return start + trio.current_time()

    answering(as_server, active(as_server, exp=int(wall()) + 600))
    auth = Authenticator(settings(as_server, cache_seconds=60), client, wall_clock=wall)
    for _ in range(5):
        await auth.authenticate(bearer(), None)
    assert len(as_server.requests_to("/introspect")) == 1
    mock_clock.jump(61)
    await auth.authenticate(bearer(), None)
    assert len(as_server.requests_to("/introspect")) == 2
    # A token that expires in 3 s is cached for 3 s even though the maximum is 60.
    mock_clock.jump(61)
    answering(as_server, active(as_server, exp=wall() + 3))
    await auth.authenticate(bearer(), None)
    mock_clock.jump(2)
    await auth.authenticate(bearer(), None)
    assert len(as_server.requests_to("/introspect")) == 3
    mock_clock.jump(1.5)
    assert await reason(auth) == "expired"  # asked again: the answer says exp has passed
    assert len(as_server.requests_to("/introspect")) == 4


async def test_refused_tokens_are_remembered_briefly(
    as_server: LoopbackServer, client: httpx.AsyncClient, mock_clock: trio.testing.MockClock
) -> None:
    answering(as_server, active(as_server))
    auth = Authenticator(settings(as_server), client)
    for _ in range(20):
        assert await reason(auth, "wrong-token") == "inactive"
    assert len(as_server.requests_to("/introspect")) == 1
    mock_clock.jump(11)
    assert await reason(auth, "wrong-token") == "inactive"
    assert len(as_server.requests_to("/introspect")) == 2


async def test_concurrent_requests_share_one_call(
    as_server: LoopbackServer, client: httpx.AsyncClient, mock_clock: trio.testing.MockClock
) -> None:
    answering(as_server, active(as_server))
    auth = Authenticator(settings(as_server), client)
    subjects: list[str] = []

    async def one() -> None:
        subjects.append((await auth.authenticate(bearer(), None)).subject)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(one)
    assert subjects == ["carol"] * 10
    assert len(as_server.requests_to("/introspect")) == 1


async def test_endpoint_down_is_temporary_and_not_cached(
    as_server: LoopbackServer, client: httpx.AsyncClient, mock_clock: trio.testing.MockClock
) -> None:
    auth = Authenticator(settings(as_server), client)  # no /introspect route: 404
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(bearer(), None)
    assert (caught.value.reason, caught.value.status) == ("unavailable", 503)
    answering(as_server, active(as_server))
    assert (await auth.authenticate(bearer(), None)).subject == "carol"


async def test_jwt_shaped_tokens_are_not_introspected(
    as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    answering(as_server, active(as_server))
    auth = Authenticator(settings(as_server), client)
    assert await reason(auth, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln") == "bad_algorithm"
    assert as_server.requests_to("/introspect") == []
