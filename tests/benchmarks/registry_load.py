"""How long loading a plugin with many tools takes, split into its module import and the rest.

    python tests/benchmarks/registry_load.py [--tools 10000] [--rounds 3]

It writes a real plugin distribution (a module of ``--tools`` ``@mcpd.tool`` functions and a
dist-info with its entry point) into a scratch directory, then, in a fresh interpreter per
round, imports the module (what any plugin's import costs: schemas are built then) and loads
it the way the daemon does (``load_registry``: entry points, hooks, checks, the registry).
It prints one line per round and the median of each part.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODULE = "mcpd_many_tools"

_ROUND = """
import json, sys, time
sys.path.insert(0, {site!r})
started = time.perf_counter()
import {module}
imported = time.perf_counter()
from mcpd.plugin.registry import load_registry
registry = load_registry(enable=["many"], disable=(), plugin_settings={{}})
loaded = time.perf_counter()
assert len(registry.tools) == {tools}, len(registry.tools)
print(json.dumps({{"import": imported - started, "load": loaded - imported}}))
"""


def write_plugin(site: Path, tools: int) -> None:
    lines = ["import mcpd", ""]
    for n in range(tools):
        lines += ["@mcpd.tool", f"def tool_{n:05d}(text: str, times: int = 1) -> str:"]
        lines += [f'    """Tool number {n}."""', "    return text * times", ""]
    lines += ["@mcpd.hookimpl", "def register_tools():"]
    lines += [
        "    return [value for value in globals().values() if isinstance(value, mcpd.plugin.tool.Tool)]"
    ]
    (site / f"{MODULE}.py").write_text("\n".join(lines) + "\n")
    info = site / "mcpd_many_tools-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mcpd-many-tools\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[mcpd]\nmany = {MODULE}\n")


def one_round(site: Path, tools: int) -> dict[str, float]:
    code = _ROUND.format(site=str(site), module=MODULE, tools=tools)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mcpd-many-") as scratch:
        site = Path(scratch)
        write_plugin(site, options.tools)
        rounds = []
        for number in range(options.rounds):
            result = one_round(site, options.tools)
            rounds.append(result)
            print(f"round {number + 1}: import {result['import']:.2f}s, load {result['load']:.2f}s")
    for part in ("import", "load"):
        print(f"median {part}: {statistics.median(r[part] for r in rounds):.2f}s")


if __name__ == "__main__":
    main()
