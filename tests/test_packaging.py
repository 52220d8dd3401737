"""The distribution installs under its own name, mcpd-daemon, and everything here depends on it.

``mcpd`` on the package index is an unrelated project with the same import name; a plugin
depending on it would pull that in and replace the daemon. The import package and the
command stay ``mcpd``.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mcpd._version import __version__

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "mcpd-daemon"
BUILD_LEFTOVERS = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*cache",
    "node_modules",
)
PLUGIN_PROJECTS = sorted(
    [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("tests/fixtures/plugins/*/pyproject.toml")]
)


def test_the_project_is_named_mcpd_daemon() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    assert project["scripts"] == {"mcpd": "mcpd.cli:main"}
    assert project["license"] == "MIT"


@pytest.mark.parametrize("pyproject", PLUGIN_PROJECTS, ids=lambda path: path.parent.name)
def test_every_plugin_depends_on_mcpd_daemon_never_on_mcpd(pyproject: Path) -> None:
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    names = {canonicalize_name(Requirement(spec).name) for spec in dependencies}
    assert DISTRIBUTION in names
    assert "mcpd" not in names


def test_the_built_wheel_carries_name_license_and_command(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so that building leaves nothing in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    command += ["--no-build-isolation", "--no-index", "--wheel-dir", str(tmp_path), str(source)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("mcpd_daemon-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"mcpd_daemon-{__version__}.dist-info"
        metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        license_text = archive.read(f"{info}/licenses/LICENSE").decode()
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert "mcpd = mcpd.cli:main" in entry_points
    assert "mcpd/__init__.py" in names
    assert "mcpd/defaults.toml" in names
    assert license_text == (ROOT / "LICENSE").read_text()
    assert "Copyright (c) 2026 the mcpd authors" in license_text
    assert license_text.startswith("MIT License")
