"""Makes the in-tree package importable when it is not pip-installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("mcpd_conformance") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
