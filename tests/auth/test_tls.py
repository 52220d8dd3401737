"""Direct TLS: real handshakes against hypercorn serving mcpd's TlsConfig (trustme certs).

The certificate and key reach the config as a path and as secrets holding the PEM text; the
config check refuses half a pair and a key that does not belong to the certificate.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import hypercorn.trio
import pytest
import trio
import trustme

from mcpd.auth.tls import TlsConfig, hypercorn_config
from mcpd.config import ConfigError, load_settings


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def hello(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": scope["scheme"].encode()})


async def get_over_tls(config: Any, ca: trustme.CA, *, http2: bool = False) -> httpx.Response:
    config.bind = ["127.0.0.1:0"]
    # hypercorn's default "-" logs would rewire the process-wide "hypercorn.error" logger.
    config.accesslog = None
    config.errorlog = logging.getLogger("mcpd.tests.hypercorn")
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(hypercorn.trio.serve, hello, config, shutdown_trigger=stop.wait)
        )
        url = binds[0]
        assert url.startswith("https://")
        context = ssl.create_default_context()
        ca.configure_trust(context)
        try:
            async with httpx.AsyncClient(verify=context, http2=http2) as client:
                return await client.get(url + "/")
        finally:
            stop.set()


def env_config(tmp_path: Path, cert: str, key: str) -> Path:
    path = tmp_path / "mcpd.toml"
    path.write_text(f"[server]\ntls_certificate = {cert}\ntls_private_key = {key}\n")
    return path


async def test_pem_text_from_secrets(tmp_path: Path, ca: trustme.CA) -> None:
    served = ca.issue_cert("127.0.0.1")
    environ = {
        "MCPD_TLS_CERT": "".join(blob.bytes().decode() for blob in served.cert_chain_pems),
        "MCPD_TLS_KEY": served.private_key_pem.bytes().decode(),
    }
    config = env_config(tmp_path, '{ "$env" = "MCPD_TLS_CERT" }', '{ "$env" = "MCPD_TLS_KEY" }')
    before = set(os.listdir(tempfile.gettempdir()))
    server = load_settings(config, environ=environ).server
    assert "PRIVATE KEY" not in repr(server)  # a Secret: masked wherever settings are shown
    hyper = hypercorn_config(server.tls_certificate, server.tls_private_key)
    assert isinstance(hyper, TlsConfig)
    response = await get_over_tls(hyper, ca)
    assert (response.status_code, response.text) == (200, "https")
    # The PEM text went through an anonymous in-memory file: nothing left in the temp dir.
    assert {
        name for name in set(os.listdir(tempfile.gettempdir())) - before if "mcpd-tls" in name
    } == set()
    assert (hyper.certfile, hyper.keyfile) == (None, None)  # pointed at the material only to load


async def test_paths(tmp_path: Path, ca: trustme.CA) -> None:
    served = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    served.cert_chain_pems[0].write_to_path(str(cert))
    served.private_key_pem.write_to_path(str(key))
    server = load_settings(env_config(tmp_path, f'"{cert}"', f'"{key}"')).server
    response = await get_over_tls(
        hypercorn_config(server.tls_certificate, server.tls_private_key), ca, http2=True
    )
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"  # hypercorn's ALPN survived our context loading


def test_plain_http_without_tls_keys() -> None:
    server = load_settings().server
    assert not hypercorn_config(server.tls_certificate, server.tls_private_key).ssl_enabled


def test_config_check_refuses_a_mismatched_pair(tmp_path: Path, ca: trustme.CA) -> None:
    one, other = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    environ = {
        "C": one.cert_chain_pems[0].bytes().decode(),
        "K": other.private_key_pem.bytes().decode(),
    }
    config = env_config(tmp_path, '{ "$env" = "C" }', '{ "$env" = "K" }')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ=environ)
    message = str(caught.value)
    assert message.startswith(
        f"{config}: server.tls_private_key: the certificate and key do not load"
    )
    assert "BEGIN" not in message  # never the PEM text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[server]\ntls_certificate = "/etc/cert.pem"\n',
            "server.tls_private_key: tls_certificate is set",
        ),
        (
            '[server]\ntls_private_key = "/etc/key.pem"\n',
            "server.tls_certificate: tls_private_key is set",
        ),
        (
            '[server]\ntls_certificate = "cert.pem"\ntls_private_key = "/k"\n',
            "server.tls_certificate: expected an absolute path",
        ),
        (
            '[server]\ntls_certificate = "/nonexistent/c.pem"\ntls_private_key = "/nonexistent/k.pem"\n',
            "server.tls_certificate: cannot read /nonexistent/c.pem",
        ),
    ],
)
def test_config_check_refuses_incomplete_tls(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mcpd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_settings(path)
