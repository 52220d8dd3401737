"""What a start refuses or warns about, checked without a daemon: listener clashes, findings,
the beyond-loopback warning and its auth seam, endpoint URLs, and how failures are worded."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from mcpd.checks import Finding, auth_enabled, exposure
from mcpd.config import ConfigError, Settings, load_config
from mcpd.listen_addresses import is_local_bind
from mcpd.startup import StartupError, endpoint_urls, user_failure
from mcpd.transport.binding import ListenError, describe

ENV = {"CONFIGURATION_DIRECTORY": "/nonexistent-mcpd-test"}


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "mcpd.toml"
    path.write_text(text)
    return load_config(path, environ=ENV).settings


@pytest.mark.parametrize(
    ("server", "metrics"),
    [
        (["127.0.0.1:0", "127.0.0.1:0"], []),  # the kernel picks a port for each
        (["127.0.0.1:8765", "127.0.0.1:8766"], []),
        (["127.0.0.1:8765", "[::1]:8765"], []),  # two families, two sockets
        (["127.0.0.1:8765", "unix:/run/a.sock"], ["unix:/run/b.sock"]),
        (["127.0.0.1:8765"], ["127.0.0.1:9465"]),
        (["127.0.0.2:8765", "127.0.0.1:8765"], []),
    ],
)
def test_listeners_that_can_all_be_bound(
    tmp_path: Path, server: list[str], metrics: list[str]
) -> None:
    settings = load(tmp_path, f"[server]\nlisten = {server!r}\n[metrics]\nlisten = {metrics!r}\n")
    assert list(settings.server.listen) == server


@pytest.mark.parametrize(
    ("server", "metrics", "complaint"),
    [
        (["127.0.0.1:8765", "127.0.0.1:8765"], [], "server.listen: '127.0.0.1:8765' repeats"),
        (["localhost:8765", "127.0.0.1:8765"], [], "'127.0.0.1:8765' overlaps 'localhost:8765'"),
        (["0.0.0.0:8765", "10.0.0.1:8765"], [], "'10.0.0.1:8765' overlaps '0.0.0.0:8765'"),
        (["[::]:8765", "127.0.0.1:8765"], [], "'127.0.0.1:8765' overlaps '[::]:8765'"),
        (["[::1]:8765", "[0:0:0:0:0:0:0:1]:8765"], [], "overlaps '[::1]:8765'"),
        (["unix:/run/a.sock", "unix:/run/a.sock"], [], "'unix:/run/a.sock' repeats"),
        (["127.0.0.1:8765"], ["127.0.0.1:9465", "127.0.0.1:9465"], "metrics.listen: "),
        (["127.0.0.1:8765"], ["0.0.0.0:8765"], "is also the server.listen address"),
        (["unix:/run/a.sock"], ["unix:/run/a.sock"], "is also the server.listen address"),
    ],
)
def test_listener_clashes_are_config_errors(
    tmp_path: Path, server: list[str], metrics: list[str], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=r"^.*mcpd\.toml: ") as raised:
        load(tmp_path, f"[server]\nlisten = {server!r}\n[metrics]\nlisten = {metrics!r}\n")
    assert complaint in str(raised.value)


def test_a_clash_is_blamed_on_the_layer_that_made_it(tmp_path: Path) -> None:
    path = tmp_path / "mcpd.toml"
    path.write_text('[metrics]\nlisten = ["127.0.0.1:9000"]\n')
    with pytest.raises(ConfigError, match=rf"^{path}: metrics\.listen: '127\.0\.0\.1:9000'"):
        load_config(path, listen=["127.0.0.1:9000"], environ=ENV)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:8765", True),
        ("127.8.9.10:1", True),
        ("[::1]:8765", True),
        ("localhost:8765", True),
        ("unix:/run/mcpd.sock", True),
        ("http://127.0.0.1:8765", True),  # as hypercorn reports a bind
        ("http://unix:/run/mcpd.sock", True),
        ("http://[::1]:8765", True),
        ("0.0.0.0:8765", False),
        ("[::]:8765", False),
        ("http://192.168.1.5:8765", False),
        ("mcp.example.org:443", False),
    ],
)
def test_is_loopback_address(address: str, loopback: bool) -> None:
    assert is_local_bind(address) is loopback


def with_auth(mode: str) -> SimpleNamespace:
    """Settings as they will look once an [auth] table exists (the seam reads only this)."""
    return SimpleNamespace(auth=SimpleNamespace(mode=mode))


def test_exposure_warns_until_authentication_is_on() -> None:
    settings = Settings()
    assert exposure(settings, ["http://127.0.0.1:8765", "http://unix:/run/m.sock"]) is None
    warning = exposure(settings, ["http://127.0.0.1:8765", "http://0.0.0.0:8765"])
    assert warning is not None
    assert warning.severity == "warning"
    assert warning.key == "server.listen"
    assert warning.message.startswith("listening beyond loopback (http://0.0.0.0:8765) without")
    assert not auth_enabled(settings)
    assert auth_enabled(with_auth("keys"))
    assert not auth_enabled(with_auth("none"))
    assert exposure(with_auth("oauth"), ["0.0.0.0:8765"]) is None
    assert exposure(with_auth("none"), ["0.0.0.0:8765"]) is not None


def test_a_finding_reads_origin_key_message() -> None:
    assert str(Finding("error", "boom", "plugin.x", "/etc/mcpd/mcpd.toml")) == (
        "/etc/mcpd/mcpd.toml: plugin.x: boom"
    )
    assert str(Finding("error", "boom")) == "boom"


def test_endpoint_urls() -> None:
    binds = ["http://127.0.0.1:8765", "http://[::1]:9000", "http://unix:/run/mcpd/mcpd.sock"]
    assert endpoint_urls(binds, "/mcp") == [
        "http://127.0.0.1:8765/mcp",
        "http://[::1]:9000/mcp",
        "http+unix://%2Frun%2Fmcpd%2Fmcpd.sock/mcp",
    ]


def test_user_failure_is_found_inside_trios_exception_groups() -> None:
    listen = ListenError("127.0.0.1:1", "server.listen", "permission denied")

    async def fails() -> None:
        async with trio.open_nursery() as outer:
            outer.start_soon(trio.sleep_forever)
            async with trio.open_nursery() as inner:
                inner.start_soon(trio.sleep_forever)
                raise listen

    with pytest.raises(BaseExceptionGroup) as raised:
        trio.run(fails)
    assert user_failure(raised.value) is listen
    assert str(listen) == "cannot listen on 127.0.0.1:1 (server.listen): permission denied"
    assert isinstance(listen, StartupError)
    config = ConfigError("mcpd.toml: server.path: expected a URL path")
    assert user_failure(config) is config
    bug = ExceptionGroup("two", [listen, KeyError("a bug")])
    assert user_failure(bug) is None  # anything else in there keeps its traceback
    assert user_failure(RuntimeError("a bug")) is None


@pytest.mark.parametrize(
    ("error", "bind", "cause"),
    [
        (OSError(errno.EACCES, "Permission denied"), "127.0.0.1:80", "ports below 1024 need"),
        (OSError(errno.EACCES, "Permission denied"), "127.0.0.1:8080", "refused this user"),
        (OSError(errno.EPERM, "Not permitted"), "unix:/run/x/m.sock", "socket in /run/x"),
        (OSError(errno.EADDRINUSE, "in use"), "unix:/tmp/file", "/tmp/file already exists"),
        (OSError(errno.ENOTDIR, "Not a dir"), "unix:/etc/passwd/m.sock", "is not a directory"),
        (OSError("AF_UNIX path too long"), "unix:/" + "x" * 200, "at most 107 bytes"),
        (OSError(errno.EADDRNOTAVAIL, "x"), "192.0.2.1:1", "no network interface"),
        (OSError(errno.EAFNOSUPPORT, "x"), "[::1]:1", "does not support that address family"),
        (socket.gaierror(-2, "Name or service not known"), "x.invalid:1", "cannot resolve"),
        (OSError(errno.EMFILE, "Too many open files"), "127.0.0.1:1", "too many open files"),
    ],
)
def test_bind_errors_in_words(error: OSError, bind: str, cause: str) -> None:
    assert cause in describe(error, bind)
