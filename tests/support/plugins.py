"""Install plugin packages for tests with a real ``pip install``, into a directory of their own.

Putting that directory on ``PYTHONPATH`` (a daemon subprocess) or ``sys.path`` (in-process)
makes its dist-info entry points discoverable, exactly as for an installed plugin, without
touching the test virtualenv.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Build leftovers that must neither be copied into the build nor left behind in the source tree.
_IGNORED = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".*cache")


def install_plugins(target: Path, *package_dirs: Path) -> None:
    """``pip install --no-deps --no-build-isolation --target target`` every package dir.

    Each package is built from a temporary copy, so building leaves nothing in the source
    tree. ``--no-build-isolation`` uses the test environment's setuptools and wheel (no
    network); ``--no-deps`` because their dependency, mcpd, is the code under test.
    """
    with tempfile.TemporaryDirectory(prefix="mcpd-plugin-build-") as scratch:
        copies = []
        for package in package_dirs:
            copy = Path(scratch) / package.name
            shutil.copytree(package, copy, ignore=_IGNORED)
            copies.append(str(copy))
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        command += ["--no-build-isolation", "--no-index", "--disable-pip-version-check"]
        command += ["--target", str(target), *copies]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"pip install failed:\n{completed.stdout}\n{completed.stderr}")
