"""The plugin author's guide keeps up with the code: every hook and public name is in it."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import mcpd
from mcpd.plugin import hookspecs

GUIDE = Path(__file__).resolve().parents[2] / "plugins" / "README.md"


def hook_names() -> list[str]:
    return [
        name
        for name, value in vars(hookspecs).items()
        if inspect.isfunction(value) and hasattr(value, "mcpd_spec")
    ]


def test_there_is_at_least_one_hook() -> None:
    assert "register_tools" in hook_names()


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_has_a_one_line_docstring(name: str) -> None:
    doc = getattr(hookspecs, name).__doc__ or ""
    assert doc.strip()
    assert "\n" not in doc.strip()


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_in_the_guide(name: str) -> None:
    assert f"`{name}(" in GUIDE.read_text()


@pytest.mark.parametrize("name", sorted(set(mcpd.__all__) - {"__version__"}))
def test_every_public_name_is_in_the_guide(name: str) -> None:
    assert f"mcpd.{name}" in GUIDE.read_text() or f"`{name}`" in GUIDE.read_text()
