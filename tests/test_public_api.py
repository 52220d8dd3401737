"""The names ``import mcpd`` gives plugin authors. Changing this set is a deliberate act."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import mcpd
import mcpd._version

PUBLIC = {
    "Audio",
    "ClientCapabilityMissing",
    "Completion",
    "Context",
    "Elicit",
    "Elicitation",
    "EmbeddedResource",
    "Image",
    "InputUnavailable",
    "ListRoots",
    "PromptMessage",
    "Principal",
    "RateLimited",
    "ResourceContents",
    "ResourceLink",
    "ResourceNotFound",
    "Sample",
    "ToolError",
    "__version__",
    "hookimpl",
    "list_changed",
    "prompt",
    "resource",
    "resource_updated",
    "tool",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(mcpd.__all__) == PUBLIC
    assert len(mcpd.__all__) == len(PUBLIC)


def test_nothing_else_public_leaks_from_the_package() -> None:
    for name in PUBLIC:
        getattr(mcpd, name)  # public names load lazily; load them all first
    visible = {
        name
        for name, value in vars(mcpd).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert visible == PUBLIC - {"__version__"}


def test_every_public_name_resolves_and_is_listed_by_dir() -> None:
    for name in PUBLIC:
        assert getattr(mcpd, name) is not None
    assert set(dir(mcpd)) >= PUBLIC


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        mcpd.no_such_name  # noqa: B018


def test_from_import_works() -> None:
    from mcpd import Context, tool

    assert tool is mcpd.tool
    assert Context is mcpd.Context


def test_importing_mcpd_alone_imports_no_framework() -> None:
    # Every `import mcpd.protocol...` runs mcpd/__init__.py: it must stay light.
    check = (
        "import sys, mcpd; "
        "heavy = [m for m in ('trio', 'structlog', 'pydantic', 'pluggy') if m in sys.modules]; "
        "print(','.join(heavy)); sys.exit(1 if heavy else 0)"
    )
    command = [sys.executable, "-c", check]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    assert result.returncode == 0, f"import mcpd imported {result.stdout}{result.stderr}"


def test_version_comes_from_the_version_module() -> None:
    assert mcpd.__version__ == mcpd._version.__version__


def test_public_callables_and_classes_are_documented_with_an_example() -> None:
    for name in PUBLIC - {"__version__", "hookimpl"}:
        doc = getattr(mcpd, name).__doc__ or ""
        assert "Example" in doc, f"mcpd.{name} needs a docstring with an example"


def test_hookimpl_is_pluggys_marker_for_the_mcpd_project() -> None:
    assert mcpd.hookimpl.project_name == "mcpd"
