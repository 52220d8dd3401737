"""The official SDK clients with a static API key header, in both eras, against a daemon with
``[auth] mode = "keys"`` (the key made by the real ``mcpd auth new-key``): the TypeScript SDK
client in its legacy and 2026-07-28 modes, and the Python SDK client in legacy, auto and
2026-07-28 modes. Without the key, both are refused (401, ``Bearer realm="mcpd"``, no OAuth
metadata: clients that see some drop their configured header)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from support.daemon import WAIT, Daemon, daemon_config
from support.keys import new_key
from support.plugins import install_plugins

FIXTURE_PLUGIN = Path(__file__).resolve().parents[1] / "fixtures" / "plugins" / "mcpd-fixture-tools"
pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def key() -> tuple[str, str]:
    return new_key("sdk-client")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, key: tuple[str, str]) -> Iterator[Daemon]:
    site = tmp_path_factory.mktemp("keyed-site")
    install_plugins(site, FIXTURE_PLUGIN)
    extra = (
        '\n[plugins]\nenable = ["fixture"]\n\n[auth]\nmode = "keys"\n\n'
        f'[[auth.keys]]\nprincipal = "sdk-client"\n{key[1]}\n'
    )
    config = daemon_config(
        tmp_path_factory.mktemp("keyed-cfg") / "mcpd.toml",
        tmp_path_factory.mktemp("keyed-markers"),
        extra=extra,
    )
    daemon = Daemon.start(config, pythonpath=site)
    yield daemon
    assert daemon.stop() == 0


def test_without_the_key_there_is_only_a_bare_challenge(keyed: Daemon) -> None:
    with httpx.Client(timeout=WAIT) as http:
        refused = http.post(keyed.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="mcpd"'
        base = keyed.binds[0]
        metadata = http.get(base + "/.well-known/oauth-protected-resource")
        assert metadata.status_code == 404  # keys only: no OAuth metadata


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_the_typescript_client_with_a_key(
    ts_client: Any, keyed: Daemon, key: tuple[str, str], mode: str
) -> None:
    seen = ts_client.run(keyed.url, mode, bearer=key[0])
    assert isinstance(seen, dict), seen
    assert seen["echo"]["content"][0]["text"] == "hi from ts", seen
    audited = keyed.wait_for("audit", lambda e: e.get("name") == "echo")
    assert audited["principal"] == '["keys","sdk-client"]'
    refused = ts_client.run(keyed.url, mode)  # no key: the client cannot connect
    assert isinstance(refused, dict), refused
    assert "error" in refused["connect"], refused


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
@pytest.mark.parametrize("mode", ["legacy", "auto", "2026-07-28"])
def test_the_python_client_with_a_key(keyed: Daemon, key: tuple[str, str], mode: str) -> None:
    async def session() -> Any:
        headers = {"Authorization": f"Bearer {key[0]}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=WAIT) as http,
            Client(streamable_http_client(keyed.url, http_client=http), mode=mode) as client,
        ):
            return await client.call_tool("echo", {"text": f"keyed {mode}"})

    result = anyio.run(session, backend="asyncio")
    assert result.content[0].text == f"keyed {mode}"
