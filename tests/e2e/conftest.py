"""Fixtures for end-to-end tests: real pip-installed plugins and a real daemon subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.daemon import Daemon, daemon_config
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "plugins"
GOOD = ("mcpd-fixture-tools",)
BROKEN = (
    "mcpd-fixture-broken-import",
    "mcpd-fixture-bad-hook",
    "mcpd-fixture-raising-hook",
    "mcpd-fixture-duplicate",
)


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fixture plugins and the example plugin, really pip-installed into one directory."""
    site = tmp_path_factory.mktemp("site")
    install_plugins(
        site, *(FIXTURES / name for name in GOOD + BROKEN), ROOT / "plugins" / "mcpd-example"
    )
    return site


@pytest.fixture(scope="session")
def markers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("markers")


@pytest.fixture(scope="session")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, plugin_site: Path, markers: Path
) -> Iterator[Daemon]:
    """One daemon shared by the protocol tests (they use distinct sessions and tags)."""
    config = daemon_config(tmp_path_factory.mktemp("cfg") / "mcpd.toml", markers)
    running = Daemon.start(config, pythonpath=plugin_site)
    yield running
    assert running.stop() == 0


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client
