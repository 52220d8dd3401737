"""Shared fixtures; also makes the in-tree package importable when it is not pip-installed."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("mcpd_example") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mcpd_example import settings


@pytest.fixture(autouse=True)
def default_settings() -> Iterator[None]:
    """Every test starts from the default settings, whatever the previous one configured."""
    settings.configure({})
    yield
    settings.configure({})
