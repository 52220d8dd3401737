"""Fixtures for interoperability tests with official SDK clients in other languages.

The TypeScript SDK client is pinned by ``ts/package.json`` and ``ts/package-lock.json``. It is
installed once into the conformance runner's cache (same lock, same temp-dir-then-rename
install, same Node >= 22), at exactly the versions the lockfile names, and ``ts/client.mjs``
runs on it against a real daemon serving the fixture plugin. Without npm or Node the tests
fail, saying why: they never skip.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conformance import runner
from support.daemon import Daemon, daemon_config
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
TS = Path(__file__).resolve().parent / "ts"
FIXTURE_PLUGIN = ROOT / "tests" / "fixtures" / "plugins" / "mcpd-fixture-tools"
CLIENT_PACKAGE = "@modelcontextprotocol/client"
SSE_PATH = "/sse"  # the daemon's default HTTP+SSE endpoint
RUN_TIMEOUT = 120.0  # seconds for one client.mjs run; only turns a hang into a failure


def locked_packages(lockfile: Path = TS / "package-lock.json") -> dict[str, str]:
    """Every package the lockfile installs, name -> exact version (all at the top level)."""
    lock = json.loads(lockfile.read_text())
    packages: dict[str, str] = {}
    for path, entry in lock["packages"].items():
        if not path:
            continue  # the root project itself
        name = path.removeprefix("node_modules/")
        if "node_modules/" in name:
            raise runner.ConformanceError(
                f"{lockfile}: {path} is nested; only a flat lockfile can be pinned as overrides"
            )
        packages[name] = entry["version"]
    return packages


def install_ts_client(root: Path | None = None) -> Path:
    """An npm prefix holding the pinned TypeScript SDK client (installed once, cached).

    The runner's installer pins transitive packages through ``overrides``: giving it every
    version the lockfile names installs exactly the locked tree, which is then checked.
    """
    pins = locked_packages()
    direct = json.loads((TS / "package.json").read_text())["dependencies"]
    digest = hashlib.sha256(json.dumps(pins, sort_keys=True).encode()).hexdigest()[:12]
    dest = (root or runner.cache_root()) / f"ts-client-{pins[CLIENT_PACKAGE]}-{digest}"

    def problem(prefix: Path) -> str | None:
        for name, version in pins.items():
            found = runner._package_version(prefix, name)
            if found != version:
                return f"{name}@{version} is not installed (found {found})"
        return None

    runner._npm_install(
        dest, [f"{name}@{version}" for name, version in direct.items()], pins, problem
    )
    return dest


@dataclass(frozen=True)
class TsClient:
    """``ts/client.mjs`` beside the installed packages, and the Node that runs it."""

    node: Path
    workdir: Path
    logs: Path

    def run(self, url: str, mode: str, bearer: str | None = None) -> dict[str, Any] | str:
        """Run the client in ``mode`` against ``url`` (sending ``bearer`` as a static key):
        the JSON object it printed, or why not."""
        log = self.logs / f"{mode}{'-keyed' if bearer else ''}.log"
        command = [str(self.node), str(self.workdir / "client.mjs"), url, mode]
        command += [bearer] if bearer else []
        status = runner._run_bounded(command, RUN_TIMEOUT, log)
        output = log.read_text(errors="replace")
        if status is None:
            return f"the TypeScript client ({mode}) did not finish in {RUN_TIMEOUT:g} s:\n{output}"
        printed = [line for line in output.splitlines() if line.startswith("{")]
        if status not in (0, 1) or not printed:
            return f"the TypeScript client ({mode}) exited with {status}:\n{output}"
        result: dict[str, Any] = json.loads(printed[-1])
        return result


@cache
def _installed() -> tuple[Path, Path]:
    """(npm prefix, Node binary); raises ConformanceError when they cannot be had."""
    prefix = install_ts_client()
    return prefix, runner.find_node()


@pytest.fixture(scope="session")
def ts_client(tmp_path_factory: pytest.TempPathFactory) -> TsClient:
    problem: str | None = None
    try:
        prefix, node = _installed()
    except runner.ConformanceError as exc:
        problem = str(exc)  # failed below, outside the handler, without the chained traceback
    if problem is not None:
        pytest.fail(
            f"the pinned TypeScript SDK client could not be installed or run (these tests need "
            f"npm once, and Node >= {runner.NODE_MIN_MAJOR} or npm to fetch it): {problem}",
            pytrace=False,
        )
    # Node resolves the script's imports from a node_modules beside it: put a copy of the
    # script next to a link to the cached packages.
    workdir = tmp_path_factory.mktemp("ts-client")
    shutil.copy2(TS / "client.mjs", workdir / "client.mjs")
    (workdir / "node_modules").symlink_to(prefix / "node_modules", target_is_directory=True)
    return TsClient(node, workdir, tmp_path_factory.mktemp("ts-client-logs"))


@pytest.fixture(scope="session")
def interop_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon serving just the fixture plugin (really pip-installed), tools paged by 4."""
    site = tmp_path_factory.mktemp("interop-site")
    install_plugins(site, FIXTURE_PLUGIN)
    config = daemon_config(
        tmp_path_factory.mktemp("interop-cfg") / "mcpd.toml",
        tmp_path_factory.mktemp("interop-markers"),
        extra='\n[plugins]\nenable = ["fixture"]\n',
    )
    daemon = Daemon.start(config, pythonpath=site)
    yield daemon
    status = daemon.stop()
    assert status == 0, f"the daemon exited with {status}:\n{''.join(daemon.raw[-40:])}"


@pytest.fixture(scope="session")
def ts_run(ts_client: TsClient, interop_daemon: Daemon) -> Callable[[str], dict[str, Any]]:
    """``ts_run(mode)``: what the TypeScript client saw in that mode (each mode runs once)."""
    runs: dict[str, dict[str, Any] | str] = {}

    def run(mode: str) -> dict[str, Any]:
        if mode not in runs:
            base = interop_daemon.binds[0]
            url = base + SSE_PATH if mode == "sse" else interop_daemon.url
            runs[mode] = ts_client.run(url, mode)
        result = runs[mode]
        if isinstance(result, str):
            pytest.fail(result, pytrace=False)
        return result

    return run
