"""Which Host headers the endpoint accepts, judged from where the daemon really listens."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpd.config import ServerSettings
from mcpd.transport.hosts import host_policy


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        (("127.0.0.1:8765",), frozenset()),
        (("[::1]:8765", "localhost:1", "127.0.0.2:9"), frozenset()),
        (("unix:/run/mcpd.sock",), frozenset()),
        (("0.0.0.0:8765",), None),
        (("127.0.0.1:8765", "10.0.0.5:8765"), None),
    ],
)
def test_configured_addresses(listen: tuple[str, ...], expected: frozenset[str] | None) -> None:
    assert host_policy(ServerSettings(listen=listen)) == expected


def test_allowed_hosts_always_apply() -> None:
    settings = ServerSettings(listen=("0.0.0.0:8765",), allowed_hosts=("mcp.example.org",))
    assert host_policy(settings) == frozenset({"mcp.example.org"})


@pytest.fixture
def listener(request: pytest.FixtureRequest) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((request.param, 0))
    sock.listen()
    yield sock
    sock.close()


@pytest.mark.parametrize(
    ("listener", "expected"),
    [("127.0.0.1", frozenset()), ("0.0.0.0", None)],
    indirect=["listener"],
)
def test_inherited_sockets_are_judged_by_their_address(
    listener: socket.socket, expected: frozenset[str] | None
) -> None:
    # The config's listen is ignored for handed-in sockets, so it must not decide.
    settings = ServerSettings(listen=("127.0.0.1:8765",) if expected is None else ("0.0.0.0:1",))
    assert host_policy(settings, [f"fd://{listener.fileno()}"]) == expected


def test_an_inherited_unix_socket_is_local(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(tmp_path / "mcpd.sock"))
        sock.listen()
        settings = ServerSettings(listen=("0.0.0.0:1",))
        assert host_policy(settings, [f"fd://{sock.fileno()}"]) == frozenset()
