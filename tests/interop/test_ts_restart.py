"""Restarts the official TypeScript clients do not notice: ``ts/restart.mjs`` keeps one Node
process (one ``fetch`` pool) connected while the daemon restarts under it.

Both official packages: the SDK 1.x (``@modelcontextprotocol/sdk``, the conformance harness's
pinned client) and the client 2.x (``@modelcontextprotocol/client``, pinned by ``ts/``). The
restart is socket-activated: the test holds the listening socket as systemd does (or
``systemd-socket-activate`` binds it), so connections made meanwhile wait for the next daemon.

- ``legacy``: the session goes on (same id): tools, resources, a list change on its resumed
  GET stream; a client connecting afterwards in the same process works too.
- ``cut``: a call streaming progress at the stop ends with the terminal error; the next call,
  made at once on the same client, succeeds (no pooled connection ended under it).
- ``stateless``: 2026-07-28 requests across the restart.
- ``sse``: the 2024-11-05 transport, whose session is its connection and ends with it; the
  first new client afterwards connects cleanly (no "other side closed" from a pooled socket).
- ``pool``: several clients calling in a loop across the restart: no call fails.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from conformance import runner
from support.daemon import WAIT, Daemon, calls_served
from support.plugins import install_plugins
from support.restarts import HeldSocket, SocketActivate, restart_config

pytestmark = pytest.mark.interop

TS = Path(__file__).resolve().parent / "ts"
FIXTURE_PLUGIN = Path(__file__).resolve().parents[1] / "fixtures" / "plugins" / "mcpd-fixture-tools"
RUN_TIMEOUT = 120.0  # one restart.mjs run; only turns a hang into a failure
SHUT_DOWN = "the daemon shut down before the request completed"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("restart-site")
    install_plugins(path, FIXTURE_PLUGIN)
    return path


def _workdir(base: Path, node_modules: Path) -> Path:
    """``restart.mjs`` beside a link to installed packages (Node resolves imports there)."""
    base.mkdir()
    shutil.copy2(TS / "restart.mjs", base / "restart.mjs")
    (base / "node_modules").symlink_to(node_modules, target_is_directory=True)
    return base


@pytest.fixture(scope="module")
def workdirs(ts_client: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Per flavor, a directory to run ``restart.mjs`` in."""
    root = tmp_path_factory.mktemp("ts-restart")
    try:
        harness = runner.Harness.install()
    except runner.ConformanceError as exc:
        pytest.fail(f"the conformance harness (TypeScript SDK 1.x) is not installed: {exc}")
    sdk_modules = harness.script.parents[3]  # <prefix>/node_modules/<package>/dist/index.js
    return {
        "client": _workdir(root / "client", ts_client.workdir / "node_modules"),
        "sdk": _workdir(root / "sdk", sdk_modules),
    }


class Run:
    """One ``restart.mjs`` process: its JSON lines, and the line it waits for."""

    def __init__(self, node: Path, workdir: Path, url: str, flavor: str, mode: str) -> None:
        self.process = subprocess.Popen(
            [str(node), str(workdir / "restart.mjs"), url, flavor, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def phase(self, name: str) -> dict[str, Any]:
        while True:
            try:
                line = self._lines.get(timeout=RUN_TIMEOUT)
            except queue.Empty:
                self.process.kill()
                raise AssertionError(f"no {name!r} phase within {RUN_TIMEOUT:g} s") from None
            if line is None:
                stderr = self.process.stderr.read() if self.process.stderr else ""
                raise AssertionError(f"restart.mjs ended before {name!r}: {stderr}")
            if line.startswith("{"):
                found: dict[str, Any] = orjson.loads(line)
                assert found["phase"] == name, found
                return found

    def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self) -> int:
        try:
            return self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("restart.mjs did not exit") from None


@pytest.fixture
def held() -> Iterator[HeldSocket]:
    socket = HeldSocket()
    yield socket
    socket.close()


def restart_with(
    flavor: str,
    mode: str,
    *,
    ts_client: Any,
    workdirs: dict[str, Path],
    site: Path,
    tmp_path: Path,
    activation: HeldSocket | SocketActivate,
) -> tuple[dict[str, Any], dict[str, Any], list[Daemon]]:
    """Run ``restart.mjs``, restarting the daemon when it says it is connected."""
    config = restart_config(
        tmp_path / "mcpd.toml",
        tmp_path,
        port=0,
        state_dir=tmp_path / "state",
        extra='\n[plugins]\nenable = ["fixture"]\n',
    )

    def start() -> Daemon:
        return activation.start(config, site)

    daemons = [start()]
    url = activation.url.replace("/mcp", "/sse") if mode == "sse" else activation.url
    run = Run(ts_client.node, workdirs[flavor], url, flavor, mode)
    try:
        connected = run.phase("connected")
        assert daemons[0].stop() == 0
        daemons.append(start())
        run.say("restarted")
        done = run.phase("done")
        assert run.finish() == 0
    finally:
        for daemon in daemons:
            daemon.stop()
    return connected, done, daemons


FLAVORS = ["sdk", "client"]


@pytest.fixture
def restart(
    ts_client: Any, workdirs: dict[str, Path], site: Path, tmp_path: Path, held: HeldSocket
) -> Any:
    def run(
        flavor: str, mode: str, activation: HeldSocket | SocketActivate | None = None
    ) -> tuple[dict[str, Any], dict[str, Any], list[Daemon]]:
        return restart_with(
            flavor,
            mode,
            ts_client=ts_client,
            workdirs=workdirs,
            site=site,
            tmp_path=tmp_path,
            activation=activation or held,
        )

    return run


@pytest.mark.parametrize("activation", ["held-socket", "systemd-socket-activate"])
@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_session_goes_on_across_the_restart(restart: Any, flavor: str, activation: str) -> None:
    connected, done, (_first, second) = restart(
        flavor, "legacy", SocketActivate() if activation == "systemd-socket-activate" else None
    )
    assert connected["before"] == "before"
    assert done["after"] == "after"
    assert done["read"] == "hello from the fixture"
    assert done["announce"]["content"][0]["text"] == "announced tools"
    assert done["toolsChanged"] is True  # on the GET stream the client resumed
    assert done["sessionIdAfter"] == connected["sessionId"]
    assert done["fresh"] == "fresh"
    assert done["transportErrors"] == []
    assert second.wait_for("state.restored")["sessions"] == 1
    # The old client made no new session: only the fresh one did.
    created = [e.get("client") for e in second.events("session.created")]
    assert created == ["mcpd-restart-legacy-fresh"]


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_call_cut_by_the_stop_fails_alone(restart: Any, flavor: str) -> None:
    connected, done, (first, _second) = restart(flavor, "cut")
    assert SHUT_DOWN in done["cut"]["error"]
    assert done["next"] == "next"  # made at once, on the same client
    assert done["after"] == "after"
    assert done["sessionIdAfter"] == connected["sessionId"]
    assert done["fresh"] == "fresh"
    assert first.wait_for("state.requests_lost")["calls"][0]["tool"] == "slow"
    # The SDK 1.x resumes the cut call's stream (its error is no "result") and is told that
    # the stream is gone (410); that is all that goes wrong.
    assert all("Gone" in error for error in done["transportErrors"]), done["transportErrors"]


def test_stateless_requests_across_the_restart(restart: Any) -> None:
    connected, done, _ = restart("client", "stateless")
    assert connected["sessionId"] is None
    assert (connected["before"], done["after"], done["fresh"]) == ("before", "after", "fresh")
    assert done["read"] == "hello from the fixture"
    assert done["transportErrors"] == []


@pytest.mark.parametrize("flavor", FLAVORS)
def test_an_sse_session_goes_on_on_its_kept_connection(restart: Any, flavor: str) -> None:
    """2024-11-05: the session is its connection, which the fd store (the test plays
    systemd) keeps across the restart: the same client calls on, unaware."""
    connected, done, (first, second) = restart(flavor, "sse")
    assert connected["before"] == "before"
    assert done["after"] == "after"
    assert done["transportErrors"] == []
    assert first.wait_for("http_sse.connections_kept")["kept"] == 1
    assert second.wait_for("state.restored")["sse_connections"] == 1
    assert done["fresh"] == "fresh"  # a new client beside it connects as usual


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_new_sse_client_after_the_restart_connects_cleanly(restart: Any, flavor: str) -> None:
    """Without an fd store (systemd-socket-activate has none) the connection ends at the
    stop: the old client's session is gone, and a new client connects cleanly."""
    connected, done, (_, second) = restart(flavor, "sse", SocketActivate())
    assert connected["before"] == "before"
    assert "error" in done["after"]
    assert second.wait_for("state.restored")["sessions"] == 0
    assert done["fresh"] == "fresh"  # no "other side closed" from a pooled dead socket


@pytest.mark.parametrize("flavor", FLAVORS)
def test_pooled_clients_calling_across_the_restart_lose_nothing(restart: Any, flavor: str) -> None:
    connected, done, (first, second) = restart(flavor, "pool")
    assert done["failures"] == []
    assert done["calls"] >= connected["clients"] * 10
    assert done["transportErrors"] == []
    assert second.wait_for("state.restored")["sessions"] == connected["clients"]
    assert sum(calls_served((first, second), done["calls"])) == done["calls"]
