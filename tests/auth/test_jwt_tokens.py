"""JWT access tokens against a real JWKS served on loopback, through the real authenticator.

Tokens are signed with freshly generated RSA and EC keys. Where fetch intervals matter the
test takes pytest-trio's ``mock_clock``: trio time stands still unless the test jumps it,
while the JWKS server (a thread) answers in real time; an autojumping clock would instead
fire httpx's timeouts while the real socket waits.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing
from support.loopback_http import LoopbackServer
from support.tokens import (
    RESOURCE,
    Issuer,
    ec_key,
    hmac_token,
    oauth_settings,
    publish,
    rsa_key,
    unsigned_token,
)

from mcpd.auth.authenticator import Authenticator, Unauthenticated
from mcpd.auth.fetch import new_client
from mcpd.auth.principal import Principal

SECRET = "s" * 40


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client() as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def refused(auth: Authenticator, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(bearer(token), "127.0.0.1")
    return caught.value


@pytest.mark.parametrize(("kid", "alg"), [("r1", "RS256"), ("e1", "ES256")])
async def test_valid_token(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient, kid: str, alg: str
) -> None:
    auth = Authenticator(oauth_settings(as_server), client)
    token = issuer.token(issuer.keys[kid], alg, scope="probe:read probe:write")
    principal = await auth.authenticate(bearer(token), "127.0.0.1")
    assert isinstance(principal, Principal)
    assert (principal.issuer, principal.subject, principal.client_id) == (
        as_server.url,
        "alice",
        "client-1",
    )
    assert principal.scopes == {"probe:read", "probe:write"}
    assert principal.claims["aud"] == RESOURCE
    assert principal.expiry is not None
    assert principal.expiry > time.time()
    assert len(as_server.requests_to("/jwks")) == 1


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"exp": None}, "bad_claims"),
        ({"aud": "https://other.example/mcp"}, "bad_claims"),
        ({"aud": ["https://other.example/mcp", "https://third.example"]}, "bad_claims"),
        ({"iss": "http://127.0.0.1:1"}, "bad_claims"),
        ({"iss": None}, "bad_claims"),
        ({"nbf": int(time.time()) + 3600}, "bad_claims"),
        ({"iat": int(time.time()) + 3600}, "bad_claims"),
        ({"sub": None, "client_id": None}, "bad_claims"),
    ],
)
async def test_claims_refused(
    issuer: Issuer,
    as_server: LoopbackServer,
    client: httpx.AsyncClient,
    claims: dict[str, object],
    reason: str,
) -> None:
    auth = Authenticator(oauth_settings(as_server), client)
    refusal = await refused(auth, issuer.token(issuer.keys["r1"], "RS256", **claims))
    assert refusal.reason == reason
    assert refusal.status == 401
    [(name, value)] = refusal.headers
    assert name == "WWW-Authenticate"
    assert value.startswith('Bearer error="invalid_token", resource_metadata=')


async def test_leeway_accepts_small_skew(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    auth = Authenticator(oauth_settings(as_server, leeway_seconds=60), client)
    just_expired = issuer.token(issuer.keys["e1"], "ES256", exp=int(time.time()) - 20)
    assert (await auth.authenticate(bearer(just_expired), None)).subject == "alice"
    strict = Authenticator(oauth_settings(as_server, leeway_seconds=0), client)
    assert (await refused(strict, just_expired)).reason == "expired"


async def test_audience_list_accepts_any_configured(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    settings = oauth_settings(as_server, audiences=["api://mcpd", RESOURCE])
    auth = Authenticator(settings, client)
    token = issuer.token(issuer.keys["r1"], "RS256", aud=["api://mcpd", "https://else"])
    assert (await auth.authenticate(bearer(token), None)).subject == "alice"


@pytest.mark.parametrize(
    ("typ", "strict", "accepted"),
    [
        ("at+jwt", True, True),
        ("application/at+jwt", True, True),
        ("JWT", True, False),
        (None, True, False),
        ("JWT", False, True),
        (None, False, True),
        ("id_token", False, False),
        ("dpop+jwt", False, False),
    ],
)
async def test_typ_policy(
    issuer: Issuer,
    as_server: LoopbackServer,
    client: httpx.AsyncClient,
    typ: str | None,
    strict: bool,
    accepted: bool,
) -> None:
    auth = Authenticator(oauth_settings(as_server, require_at_jwt_type=strict), client)
    token = issuer.token(issuer.keys["r1"], "RS256", typ=typ)
    if accepted:
        assert (await auth.authenticate(bearer(token), None)).subject == "alice"
    else:
        assert (await refused(auth, token)).reason == "bad_claims"


async def test_alg_none_is_refused_without_a_fetch(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    auth = Authenticator(oauth_settings(as_server), client)
    refusal = await refused(auth, unsigned_token(issuer.claims()))
    assert refusal.reason == "malformed"  # an empty signature is not even a compact JWS
    with_signature = unsigned_token(issuer.claims()) + "c2ln"
    assert (await refused(auth, with_signature)).reason == "bad_algorithm"
    assert as_server.requests_to("/jwks") == []


async def test_hs256_with_the_public_key_as_secret_is_refused(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    """The classic confusion: HS256 'signed' with the RSA public key's PEM."""
    pem = issuer.keys["r1"].as_pem(private=False)
    forged = hmac_token(issuer.claims(), pem, kid="r1")
    auth = Authenticator(oauth_settings(as_server), client)
    assert (await refused(auth, forged)).reason == "bad_algorithm"
    # Even with HS256 allowed (and a shared secret), a JWKS key never verifies HS*.
    hs = oauth_settings(as_server, algorithms=["RS256", "HS256"], shared_secret=SECRET)
    assert (await refused(Authenticator(hs, client), forged)).reason == "bad_signature"
    assert as_server.requests_to("/jwks") == []


async def test_hs256_with_the_configured_secret(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    settings = oauth_settings(as_server, algorithms=["HS256"], shared_secret=SECRET)
    auth = Authenticator(settings, client)
    principal = await auth.authenticate(bearer(hmac_token(issuer.claims(), SECRET.encode())), None)
    assert principal.subject == "alice"
    assert (await refused(auth, hmac_token(issuer.claims(), b"x" * 40))).reason == "bad_signature"


async def test_algorithm_outside_the_allow_list(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    auth = Authenticator(oauth_settings(as_server, algorithms=["ES256"]), client)
    assert (await refused(auth, issuer.token(issuer.keys["r1"], "RS256"))).reason == "bad_algorithm"


async def test_key_must_fit_the_algorithm(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    """A P-384 key published under a kid cannot verify an ES256 token claiming that kid."""
    issuer.add(ec_key("p384", "P-384"))
    auth = Authenticator(oauth_settings(as_server), client)
    token = issuer.token(issuer.keys["p384"], "ES384", header={"kid": "p384"})
    assert (await auth.authenticate(bearer(token), None)).subject == "alice"
    lying = issuer.token(issuer.keys["e1"], "ES256", header={"kid": "p384"})
    assert (await refused(auth, lying)).reason == "unknown_kid"


async def test_tampered_payload(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    header, _, signature = issuer.token(issuer.keys["r1"], "RS256").split(".")
    other = issuer.token(issuer.keys["r1"], "RS256", sub="mallory").split(".")[1]
    auth = Authenticator(oauth_settings(as_server), client)
    assert (await refused(auth, f"{header}.{other}.{signature}")).reason == "bad_signature"


async def test_rotation_new_kid_fetches_once(
    issuer: Issuer,
    as_server: LoopbackServer,
    client: httpx.AsyncClient,
    mock_clock: trio.testing.MockClock,
) -> None:
    auth = Authenticator(oauth_settings(as_server), client)
    await auth.authenticate(bearer(issuer.token(issuer.keys["r1"], "RS256")), None)
    mock_clock.jump(31)  # past the minimum refetch interval
    issuer.add(rsa_key("r2"))  # the issuer rotates: a new key appears in its JWKS
    publish(as_server, issuer)
    for _ in range(5):
        token = issuer.token(issuer.keys["r2"], "RS256")
        assert (await auth.authenticate(bearer(token), None)).subject == "alice"
    assert len(as_server.requests_to("/jwks")) == 2
    del issuer.keys["r1"]  # the old key is retired: known until the cache is refreshed
    mock_clock.jump(601)
    assert (await refused(auth, issuer.token(rsa_key("r1"), "RS256"))).reason == "unknown_kid"
    assert len(as_server.requests_to("/jwks")) == 3


async def test_unknown_kid_flood_costs_one_fetch_per_interval(
    issuer: Issuer,
    as_server: LoopbackServer,
    client: httpx.AsyncClient,
    mock_clock: trio.testing.MockClock,
) -> None:
    auth = Authenticator(oauth_settings(as_server), client)
    await auth.authenticate(bearer(issuer.token(issuer.keys["e1"], "ES256")), None)
    assert len(as_server.requests_to("/jwks")) == 1
    stranger = ec_key("x")
    mock_clock.jump(31)
    for index in range(200):
        forged = issuer.token(stranger, "ES256", header={"kid": f"bogus-{index}"})
        assert (await refused(auth, forged)).reason == "unknown_kid"
    assert len(as_server.requests_to("/jwks")) == 2  # one refetch for 200 unknown kids
    mock_clock.jump(31)
    same = issuer.token(stranger, "ES256", header={"kid": "bogus-0"})
    for _ in range(50):
        assert (await refused(auth, same)).reason == "unknown_kid"
    assert len(as_server.requests_to("/jwks")) == 2  # remembered as unknown: no fetch at all
    new = issuer.token(stranger, "ES256", header={"kid": "fresh"})
    assert (await refused(auth, new)).reason == "unknown_kid"
    assert len(as_server.requests_to("/jwks")) == 3  # a new kid, past the interval: one fetch


async def test_concurrent_requests_share_one_fetch(
    issuer: Issuer,
    as_server: LoopbackServer,
    client: httpx.AsyncClient,
    mock_clock: trio.testing.MockClock,
) -> None:
    auth = Authenticator(oauth_settings(as_server), client)
    token = issuer.token(issuer.keys["r1"], "RS256")
    subjects: list[str] = []

    async def one() -> None:
        subjects.append((await auth.authenticate(bearer(token), None)).subject)

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(one)
    assert subjects == ["alice"] * 20
    assert len(as_server.requests_to("/jwks")) == 1


async def test_jwks_down_is_temporary_and_throttled(
    issuer: Issuer,
    as_server: LoopbackServer,
    client: httpx.AsyncClient,
    mock_clock: trio.testing.MockClock,
) -> None:
    del as_server.routes["/jwks"]  # the JWKS answers 404
    auth = Authenticator(oauth_settings(as_server), client)
    token = issuer.token(issuer.keys["r1"], "RS256")
    for _ in range(10):
        refusal = await refused(auth, token)
        assert (refusal.reason, refusal.status) == ("unavailable", 503)
        assert dict(refusal.headers)["Retry-After"] == "30"
    assert len(as_server.requests_to("/jwks")) == 1
    publish(as_server, issuer)
    mock_clock.jump(31)
    assert (await auth.authenticate(bearer(token), None)).subject == "alice"
    # Later outages keep the keys already known.
    del as_server.routes["/jwks"]
    mock_clock.jump(601)
    assert (await auth.authenticate(bearer(token), None)).subject == "alice"
    assert len(as_server.requests_to("/jwks")) == 3


async def test_jwks_uri_discovered_from_issuer_metadata(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    as_server.serve_json(
        "/.well-known/openid-configuration",
        {"issuer": as_server.url, "jwks_uri": f"{as_server.url}/jwks"},
    )
    auth = Authenticator(oauth_settings(as_server, jwks_uri=None), client)
    token = issuer.token(issuer.keys["e1"], "ES256")
    assert (await auth.authenticate(bearer(token), None)).subject == "alice"
    paths = [request.path for request in as_server.received]
    assert paths == [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/jwks",
    ]


async def test_discovery_refuses_metadata_of_another_issuer(
    issuer: Issuer,
    as_server: LoopbackServer,
    client: httpx.AsyncClient,
    mock_clock: trio.testing.MockClock,
) -> None:
    as_server.serve_json(
        "/.well-known/oauth-authorization-server",
        {"issuer": "https://evil.example", "jwks_uri": f"{as_server.url}/jwks"},
    )
    auth = Authenticator(oauth_settings(as_server, jwks_uri=None), client)
    refusal = await refused(auth, issuer.token(issuer.keys["e1"], "ES256"))
    assert refusal.reason == "unavailable"
    assert as_server.requests_to("/jwks") == []


async def test_oversized_jwks_is_refused(
    issuer: Issuer, as_server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    as_server.serve_json("/jwks", {"keys": [], "padding": "x" * (2 * 1024 * 1024)})
    auth = Authenticator(oauth_settings(as_server), client)
    assert (await refused(auth, issuer.token(issuer.keys["e1"], "ES256"))).reason == "unavailable"


async def test_reload_keeps_the_jwks_cache_while_the_issuer_is_unchanged(
    issuer: Issuer,
    as_server: LoopbackServer,
    client: httpx.AsyncClient,
    mock_clock: trio.testing.MockClock,
) -> None:
    auth = Authenticator(oauth_settings(as_server), client)
    token = issuer.token(issuer.keys["r1"], "RS256")
    await auth.authenticate(bearer(token), None)
    settings = oauth_settings(as_server).model_copy(update={"scopes_supported": ("probe:read",)})
    reloaded = auth.reconfigured(settings)
    assert (await reloaded.authenticate(bearer(token), None)).subject == "alice"
    assert len(as_server.requests_to("/jwks")) == 1  # no refetch on SIGHUP
    moved = auth.reconfigured(oauth_settings(as_server, audiences=["api://new"]))
    assert (await refused(moved, token)).reason == "bad_claims"
    assert len(as_server.requests_to("/jwks")) == 2  # new issuer settings: a cache of its own


async def test_accepted_tokens_are_remembered_no_longer_than_exp_or_the_key(
    issuer: Issuer,
    as_server: LoopbackServer,
    client: httpx.AsyncClient,
    mock_clock: trio.testing.MockClock,
) -> None:
    start = time.time() - trio.current_time()

    def wall() -> float:  # the wall clock moves with the mock clock
        return start + trio.current_time()

    auth = Authenticator(oauth_settings(as_server, leeway_seconds=0), client, wall_clock=wall)
    short = issuer.token(issuer.keys["e1"], "ES256", exp=int(wall()) + 5)
    assert (await auth.authenticate(bearer(short), None)).subject == "alice"
    mock_clock.jump(4)
    assert (await auth.authenticate(bearer(short), None)).subject == "alice"
    mock_clock.jump(2)
    assert (await refused(auth, short)).reason == "expired"  # remembered, but not past exp
    # A key the issuer withdraws: tokens it signed stop working once the JWKS is refreshed,
    # cache or no cache.
    token = issuer.token(issuer.keys["r1"], "RS256", exp=int(wall()) + 3600)
    assert (await auth.authenticate(bearer(token), None)).subject == "alice"
    del issuer.keys["r1"]
    mock_clock.jump(300)
    assert (await auth.authenticate(bearer(token), None)).subject == "alice"
    mock_clock.jump(301)
    assert (await refused(auth, token)).reason == "unknown_kid"
