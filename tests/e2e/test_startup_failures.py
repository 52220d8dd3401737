"""A start the user can fix fails with one sentence and exit status 2: real ``mcpd serve`` runs.

Every case runs the real command as a subprocess and checks what a user sees: the last line
of stderr names the address (or file and key) and the cause, nothing else but the daemon's
own JSON log events is printed, and there is no traceback.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import WAIT, Daemon, write_config

from mcpd.startup import endpoint_urls

IN_USE = "the address is already in use (is another mcpd or another server running there?)"
# prctl(2) and capabilities(7): root loses the right to write where file modes forbid it.
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def serve(
    *args: str, env: dict[str, str] | None = None, as_mere_root: bool = False
) -> subprocess.CompletedProcess[str]:
    """``mcpd serve`` that is expected to fail at start (the bound turns a start into a failure)."""
    environ = {**os.environ, "CONFIGURATION_DIRECTORY": "/nonexistent-mcpd-test", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mcpd", "serve", *args],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
        timeout=WAIT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_drop_file_override if as_mere_root else None,
    )


def _drop_file_override() -> None:
    """In the child, before exec: root without the capability to ignore file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def said(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What stderr holds besides the daemon's JSON log events."""
    lines = []
    for line in result.stderr.splitlines():
        try:
            json.loads(line)
        except ValueError:
            lines.append(line)
    return lines


def assert_one_sentence(result: subprocess.CompletedProcess[str], sentence: str) -> None:
    assert result.returncode == 2, result.stderr
    assert said(result) == [f"mcpd: {sentence}"], result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another process listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_port_in_use(taken: int) -> None:
    result = serve("--listen", f"127.0.0.1:{taken}")
    assert_one_sentence(result, f"cannot listen on 127.0.0.1:{taken} (server.listen): {IN_USE}")


def test_unix_socket_in_a_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "mcpd.sock"
    result = serve("--listen", f"unix:{path}")
    assert_one_sentence(
        result,
        f"cannot listen on unix:{path} (server.listen): the directory {path.parent} does not exist",
    )


def test_metrics_listener_on_the_main_port_is_refused_before_binding(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "mcpd.toml",
        '[server]\nlisten = ["127.0.0.1:8765"]\n[metrics]\nlisten = ["localhost:8765"]\n',
    )
    sentence = (
        f"{config}: metrics.listen: 'localhost:8765' is also the server.listen address "
        "'127.0.0.1:8765'; give the metrics listener an address of its own, or leave "
        "metrics.listen empty to serve health and metrics beside the MCP endpoint"
    )
    assert_one_sentence(serve("--config", str(config)), sentence)
    check = subprocess.run(
        [sys.executable, "-m", "mcpd", "config", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=WAIT,
        env={**os.environ, "CONFIGURATION_DIRECTORY": "/nonexistent-mcpd-test"},
    )
    assert_one_sentence(check, sentence)  # the check refuses it with the start's words


def test_metrics_listener_on_a_taken_port(tmp_path: Path, taken: int) -> None:
    config = write_config(
        tmp_path / "mcpd.toml",
        f'[server]\nlisten = ["127.0.0.1:0"]\n[metrics]\nlisten = ["127.0.0.1:{taken}"]\n',
    )
    result = serve("--config", str(config))
    assert_one_sentence(result, f"cannot listen on 127.0.0.1:{taken} (metrics.listen): {IN_USE}")


def test_main_port_taken_while_the_metrics_listener_is_up(tmp_path: Path, taken: int) -> None:
    config = write_config(
        tmp_path / "mcpd.toml",
        f'[server]\nlisten = ["127.0.0.1:{taken}"]\n[metrics]\nlisten = ["127.0.0.1:0"]\n',
    )
    result = serve("--config", str(config))
    assert_one_sentence(result, f"cannot listen on 127.0.0.1:{taken} (server.listen): {IN_USE}")


def test_two_listeners_on_one_address(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "mcpd.toml", '[server]\nlisten = ["0.0.0.0:8765", "127.0.0.1:8765"]\n'
    )
    assert_one_sentence(
        serve("--config", str(config)),
        f"{config}: server.listen: '127.0.0.1:8765' overlaps '0.0.0.0:8765'; "
        "each listen address needs a socket of its own",
    )


def test_permission_denied(tmp_path: Path) -> None:
    """A socket in a directory this user may not write (root: without CAP_DAC_OVERRIDE)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    path = locked / "mcpd.sock"
    result = serve("--listen", f"unix:{path}", as_mere_root=os.geteuid() == 0)
    assert_one_sentence(
        result,
        f"cannot listen on unix:{path} (server.listen): permission denied "
        f"(this user may not create a socket in {locked})",
    )


def test_unknown_host_name(tmp_path: Path) -> None:
    # Not loopback, so anonymous callers must be allowed explicitly to reach the bind at all.
    config = write_config(tmp_path / "anon.toml", "[auth]\nallow_anonymous_remote = true\n")
    result = serve("--config", str(config), "--listen", "no-such-host.invalid:8765")
    assert result.returncode == 2
    [line] = said(result)
    assert line.startswith(
        "mcpd: cannot listen on no-such-host.invalid:8765 (server.listen): "
        "cannot resolve the host name ("
    )


def test_a_live_unix_socket_is_not_taken_over(tmp_path: Path) -> None:
    """hypercorn would delete a socket file another daemon still serves and bind it again."""
    path = tmp_path / "mcpd.sock"
    config = write_config(tmp_path / "first.toml", f'[server]\nlisten = ["unix:{path}"]\n')
    first = Daemon.start(config)
    try:
        result = serve("--listen", f"unix:{path}")
        assert_one_sentence(
            result,
            f"cannot listen on unix:{path} (server.listen): "
            "another process is listening on this socket",
        )
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(WAIT)
            client.connect(str(path))  # still the first daemon's socket
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        assert first.stop() == 0


def test_a_url_given_as_listen_address_says_what_fits() -> None:
    result = serve("--listen", "http://127.0.0.1:8765/mcp")
    assert_one_sentence(
        result,
        "--listen: 'http://127.0.0.1:8765/mcp' is a URL; a listen address is HOST:PORT "
        "(e.g. 127.0.0.1:8765), [IPv6]:PORT or unix:/path; for this URL, listen on "
        "'127.0.0.1:8765'",
    )


def test_listening_line_names_every_endpoint_url(tmp_path: Path) -> None:
    path = tmp_path / "mcpd.sock"
    config = write_config(
        tmp_path / "mcpd.toml", f'[server]\nlisten = ["127.0.0.1:0", "unix:{path}"]\n'
    )
    daemon = Daemon.start(config)
    try:
        listening = daemon.wait_for("daemon.listening")
        tcp, unix = listening["binds"]
        assert unix == f"http://unix:{path}"
        assert listening["path"] == "/mcp"
        assert listening["endpoints"] == [
            f"{tcp}/mcp",
            "http+unix://" + str(path).replace("/", "%2F") + "/mcp",
        ]
        assert listening["endpoints"] == endpoint_urls(listening["binds"], "/mcp")
        assert not daemon.events("daemon.beyond_loopback")  # loopback and a unix socket
    finally:
        assert daemon.stop() == 0


def test_a_plugin_table_no_plugin_reads_is_a_warning_at_start_and_in_check(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path / "mcpd.toml", '[server]\nlisten = ["127.0.0.1:0"]\n[plugin.exmaple]\nx = 1\n'
    )
    message = (
        "no installed plugin is named 'exmaple' (did you mean 'example'?); the table is ignored"
    )
    daemon = Daemon.start(config)
    try:
        warning = daemon.wait_for("config.ignored")
        assert warning["level"] == "warning"
        assert (warning["key"], warning["detail"]) == ("plugin.exmaple", message)
    finally:
        assert daemon.stop() == 0
    check = subprocess.run(
        [sys.executable, "-m", "mcpd", "config", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=WAIT,
        env={**os.environ, "CONFIGURATION_DIRECTORY": "/nonexistent-mcpd-test"},
    )
    assert check.returncode == 0
    assert check.stderr.splitlines() == [f"mcpd: warning: {config}: plugin.exmaple: {message}"]
    assert check.stdout.strip() == f"OK: <embedded defaults>, {config}"


def test_a_config_directory_this_user_may_not_read(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "mcpd.toml").write_text("[tools]\npage_size = 5\n")
    etc.chmod(0o000)
    try:
        result = serve(env={"CONFIGURATION_DIRECTORY": str(etc)}, as_mere_root=os.geteuid() == 0)
    finally:
        etc.chmod(0o755)
    assert_one_sentence(result, f"{etc / 'mcpd.toml'}: cannot read: Permission denied")
