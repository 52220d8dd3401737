"""A restored session belongs to the principal that made it, and counts against its limits.

Real daemons with static keys made by ``mcpd auth new-key``, stopped with SIGTERM and started
again on the same address and state directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.client import Legacy
from support.daemon import Daemon
from support.keys import Keyed, key_table, new_key
from support.restarts import free_port, restart_config


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, str]]:
    return {"alice": new_key("alice"), "bob": new_key("bob")}


@pytest.fixture
def config(tmp_path: Path, markers: Path, keys: dict[str, tuple[str, str]]) -> Path:
    tables = "".join(key_table(name, hash_line) for name, (_, hash_line) in keys.items())
    return restart_config(
        tmp_path / "mcpd.toml",
        markers,
        port=free_port(),
        state_dir=tmp_path / "state",
        extra=f'[auth]\nmode = "keys"\n\n{tables}\n[limits]\nmax_sessions_per_principal = 1\n',
    )


@pytest.fixture
def first(config: Path, plugin_site: Path) -> Iterator[Daemon]:
    daemon = Daemon.start(config, pythonpath=plugin_site)
    yield daemon
    daemon.stop()


def restart(first: Daemon, config: Path, plugin_site: Path, sessions: int) -> Daemon:
    assert first.stop() == 0
    assert first.wait_for("state.saved")["sessions"] == sessions
    second = Daemon.start(config, pythonpath=plugin_site)
    assert second.wait_for("state.restored")["sessions"] == sessions
    return second


def test_a_restored_session_answers_only_its_own_principal(
    first: Daemon,
    config: Path,
    plugin_site: Path,
    http: httpx.Client,
    keys: dict[str, tuple[str, str]],
) -> None:
    alice = Keyed(http, first.url, keys["alice"][0]).initialize()
    bob = Keyed(http, first.url, keys["bob"][0]).initialize()
    second = restart(first, config, plugin_site, sessions=2)
    try:
        assert alice.call("echo", {"text": "mine"})["content"][0]["text"] == "mine"
        assert bob.call("echo", {"text": "mine too"})["content"][0]["text"] == "mine too"
        # Bob presenting Alice's session id: to him it does not exist, after a restart too.
        thief = Keyed(http, second.url, keys["bob"][0])
        thief.session_id, thief.version = alice.session_id, alice.version
        assert thief.request("ping").status_code == 404
        # No key at all: refused before any session is looked up.
        anonymous = Legacy(http, second.url)
        anonymous.session_id, anonymous.version = alice.session_id, alice.version
        assert anonymous.request("ping").status_code == 401
        # And Alice's session is still hers.
        assert alice.request("ping").status_code == 200
    finally:
        assert second.stop() == 0


def test_a_restored_session_counts_against_its_principals_limit(
    first: Daemon,
    config: Path,
    plugin_site: Path,
    http: httpx.Client,
    keys: dict[str, tuple[str, str]],
) -> None:
    alice = Keyed(http, first.url, keys["alice"][0]).initialize()
    second = restart(first, config, plugin_site, sessions=1)
    try:
        # max_sessions_per_principal = 1, and the restored session is Alice's one.
        refused = Keyed(http, second.url, keys["alice"][0]).request(
            "initialize",
            {"protocolVersion": alice.version, "capabilities": {}, "clientInfo": {"name": "t"}},
        )
        assert refused.status_code == 429
        assert http.delete(second.url, headers=alice.headers()).status_code == 200
        again = Keyed(http, second.url, keys["alice"][0]).initialize()
        assert again.call("echo", {"text": "new"})["content"][0]["text"] == "new"
    finally:
        assert second.stop() == 0
