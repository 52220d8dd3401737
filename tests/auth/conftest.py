"""Fixtures for the auth tests: a loopback authorization-server stub and a token issuer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
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
