"""Fixtures for the plugin edge: the fixture plugins, really pip-installed once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "plugins"
EXAMPLE = ROOT / "plugins" / "mcpd-example"


@pytest.fixture(scope="session")
def plugin_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding every fixture plugin and the example plugin, pip-installed."""
    site = tmp_path_factory.mktemp("plugin-site")
    install_plugins(site, *sorted(FIXTURES.iterdir()), EXAMPLE)
    return site


@pytest.fixture
def forget_plugin_modules(plugin_packages: Path) -> Iterator[None]:
    """After the test, drop every module imported from the installed plugins' directory."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if module_file.startswith(str(plugin_packages)):
            del sys.modules[name]


@pytest.fixture
def installed(
    plugin_packages: Path, monkeypatch: pytest.MonkeyPatch, forget_plugin_modules: None
) -> Path:
    """Make the installed plugins discoverable in this process for one test.

    Afterwards the directory leaves ``sys.path`` and the plugin modules leave
    ``sys.modules``, so no other test sees them.
    """
    monkeypatch.syspath_prepend(str(plugin_packages))  # also invalidates importlib caches
    return plugin_packages
