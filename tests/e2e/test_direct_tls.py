"""The daemon serving TLS itself: ``[server] tls_certificate`` and ``tls_private_key``, here
a certificate file and a private key handed in as a secret (``$env``) holding the PEM text,
which never touches the disk. Both HTTP/1.1 (the lean path) and h2 (ALPN) are answered."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from support.daemon import WAIT, Daemon, write_config
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "tests" / "fixtures" / "plugins" / "mcpd-fixture-probe"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[Daemon]:
    work = tmp_path_factory.mktemp("tls")
    certificate = ca.issue_cert("127.0.0.1")
    chain = work / "chain.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in certificate.cert_chain_pems))
    site = work / "site"
    install_plugins(site, PROBE)
    config = write_config(
        work / "mcpd.toml",
        f"""
[server]
listen = ["127.0.0.1:0"]
tls_certificate = "{chain}"
tls_private_key = {{ "$env" = "MCPD_TEST_TLS_KEY" }}

[plugins]
enable = ["probe"]
""",
    )
    env = {"MCPD_TEST_TLS_KEY": certificate.private_key_pem.bytes().decode()}
    daemon = Daemon.start(config, pythonpath=site, env=env)
    yield daemon
    assert daemon.stop() == 0


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.mark.parametrize("http2", [False, True], ids=["http/1.1", "h2"])
def test_mcp_over_tls(tls_daemon: Daemon, ca: trustme.CA, http2: bool) -> None:
    assert tls_daemon.url.startswith("https://127.0.0.1:")
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t"},
        },
    }
    headers = {"accept": "application/json, text/event-stream"}
    with httpx.Client(verify=_trusting(ca), http2=http2, timeout=WAIT) as http:
        response = http.post(tls_daemon.url, json=body, headers=headers)
    assert response.status_code == 200
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.json()["result"]["protocolVersion"] == "2025-11-25"


def test_the_key_is_never_logged(tls_daemon: Daemon) -> None:
    assert tls_daemon.events("daemon.listening")
    assert all("PRIVATE KEY" not in line for line in tls_daemon.raw)
