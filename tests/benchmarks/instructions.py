"""Instructions per request, counted by valgrind's callgrind: repeatable where the shared VM's
throughput and CPU figures are not (an A/B of two source trees differs by a few percent at
most between runs). Slow: the server runs some 50 times slower under valgrind.

    python tests/benchmarks/instructions.py [--requests 500] [--tree DIR]... [--era legacy|modern]
        [--sdk] [--h2c]

Each tree (default: this checkout) runs mcpd on its defaults under callgrind; after a warm-up,
the counters are zeroed, ``--requests`` tools/call requests of ``echo`` go out on one
keep-alive connection (``--h2c``: one h2c connection, prior knowledge, ``h2_load.py``), and the
total is dumped. Prints instructions per request per tree.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

import h2_load  # noqa: E402
import load  # noqa: E402
from servers import (  # noqa: E402
    _FROM_TREE,
    free_port,
    legacy_headers,
    legacy_session,
    modern_headers,
    modern_meta,
    tool_call,
)
from support.plugins import install_plugins  # noqa: E402


def count(
    tree: Path | None,
    site: Path,
    work: Path,
    requests: int,
    era: str,
    *,
    sdk: bool = False,
    h2c: bool = False,
) -> float:
    port = free_port()
    config = work / f"mcpd-{port}.toml"
    config.write_text(f'[server]\nlisten = ["127.0.0.1:{port}"]\n')
    out = work / f"callgrind-{port}.out"
    if sdk:
        stateful = ["--stateful"] if era == "legacy" else []
        launch = [str(HERE / "sdk_app.py"), str(port), *stateful]
    elif tree is None:
        launch = ["-m", "mcpd", "serve", "--config", str(config)]
    else:
        launch = ["-c", _FROM_TREE, str(tree), "serve", "--config", str(config)]
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    argv += [sys.executable, *launch]
    env = {**os.environ, "PYTHONPATH": str(site)}
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        host = f"127.0.0.1:{port}"
        url = f"http://{host}/mcp"
        _wait_listening(url)
        if era == "legacy":
            with httpx.Client(timeout=120) as http:
                session = legacy_session(http, url)
            body, headers = tool_call("echo", {"text": "hi"}), legacy_headers(session)
        else:
            body, headers = tool_call("echo", {"text": "hi"}, modern_meta()), modern_headers()
        request = load.Requests("/mcp", body, headers, host)
        drive = partial(_drive_h2c, headers=headers) if h2c else _drive
        drive(port, request, 100)  # warm-up
        _control(server.pid, "-z")
        served = drive(port, request, requests)
        _control(server.pid, "-d")
        total = _dumped_total(out, server.pid)
    finally:
        server.terminate()
        server.wait(120)
    return total / served


def _wait_listening(url: str) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=5)  # any answer will do
            return
        except httpx.HTTPError:
            time.sleep(1)
    raise RuntimeError("mcpd did not start under valgrind")


def _drive(port: int, request: load.Requests, n: int) -> int:
    """``n`` requests, one at a time, on one keep-alive connection (closed loop, c = 1)."""
    done = 0
    while done < n:
        result = load.run("127.0.0.1", port, request, connections=1, warmup=0, seconds=1.0)
        done += result.requests
        if result.errors:
            raise RuntimeError("errors while counting")
    return done


def _drive_h2c(port: int, request: load.Requests, n: int, *, headers: dict[str, str]) -> int:
    """``n`` requests, one at a time, on one h2c connection per second of load."""
    done = 0
    while done < n:
        bodies = lambda: request().split(b"\r\n\r\n", 1)[1]  # noqa: E731
        result = h2_load.run(port, "/mcp", bodies, headers, connections=1, seconds=1.0)
        done += result.requests
        if result.errors:
            raise RuntimeError("errors while counting")
    return done


def _control(pid: int, flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)


def _dumped_total(out: Path, pid: int) -> float:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dumps = sorted(out.parent.glob(f"{out.name}.*"), key=lambda p: p.stat().st_mtime)
        for dump in reversed(dumps):
            match = re.search(r"^summary:\s+(\d+)", dump.read_text(errors="replace"), re.M)
            if match:
                return float(match.group(1))
        time.sleep(0.5)
    raise RuntimeError(f"no callgrind dump for {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--tree", type=Path, action="append", default=[])
    parser.add_argument("--era", choices=["legacy", "modern"], default="legacy")
    parser.add_argument("--sdk", action="store_true")
    parser.add_argument("--h2c", action="store_true", help="over h2c instead of HTTP/1.1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        site = work / "site"
        install_plugins(site, ROOT / "tests" / "fixtures" / "plugins" / "mcpd-fixture-tools")
        for tree in args.tree or [None]:
            per = count(tree, site, work, args.requests, args.era, h2c=args.h2c)
            over = "h2c" if args.h2c else "HTTP/1.1"
            print(
                f"{tree or 'this checkout'} ({args.era}, {over}): {per:,.0f} instructions/request"
            )
        if args.sdk:
            per = count(None, site, work, args.requests, args.era, sdk=True)
            print(f"official SDK ({args.era}): {per:,.0f} instructions per request")


if __name__ == "__main__":
    main()
