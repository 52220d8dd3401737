"""The protocol core stays sans-IO: importing it pulls in no I/O framework."""

import subprocess
import sys
from pathlib import Path

import mcpd.protocol

FORBIDDEN = ("trio", "quart", "quart_trio", "hypercorn", "structlog", "h11", "h2")


def test_core_imports_no_io_framework() -> None:
    modules = sorted(p.stem for p in Path(mcpd.protocol.__file__).parent.glob("*.py"))
    imports = "; ".join(f"import mcpd.protocol.{m}" for m in modules)
    check = (
        f"import sys; {imports}; "
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"protocol core imported: {result.stdout} {result.stderr}"
    assert len(modules) >= 8
