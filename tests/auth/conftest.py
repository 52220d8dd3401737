"""Fixtures for the auth tests: a loopback authorization-server stub and a token issuer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conformance import runner
from support.authorization_server import AuthorizationServer, authorization_server
from support.loopback_http import LoopbackServer, loopback_server
from support.tokens import RESOURCE, Issuer, ec_key, publish, rsa_key


@pytest.fixture
def as_server() -> Iterator[LoopbackServer]:
    with loopback_server() as server:
        yield server


@pytest.fixture
def issuer(as_server: LoopbackServer) -> Issuer:
    """An issuer at the stub's URL with one RSA (kid r1) and one EC P-256 key (kid e1),
    its JWKS served at /jwks."""
    issuer = Issuer(issuer=as_server.url, audience=RESOURCE)
    issuer.add(rsa_key("r1"))
    issuer.add(ec_key("e1"))
    publish(as_server, issuer)
    return issuer


SERVICE_CLIENT = {"client_id": "probe-service", "client_secret": "probe-service-secret-0123456789"}


@pytest.fixture(scope="module", params=["ES256", "RS256"])
def oidc_provider(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthorizationServer]:
    """oidc-provider on loopback for ``RESOURCE``, JWT access tokens signed with the param."""
    problem: str | None = None
    try:
        with authorization_server(
            tmp_path_factory.mktemp("oidc-provider"),
            resource=RESOURCE,
            alg=request.param,
            clients=[SERVICE_CLIENT],
        ) as server:
            yield server
            return
    except runner.ConformanceError as exc:
        problem = str(exc)
    pytest.fail(
        f"oidc-provider could not be installed or run (npm is needed once, and Node >= "
        f"{runner.NODE_MIN_MAJOR} or npm to fetch it): {problem}",
        pytrace=False,
    )
