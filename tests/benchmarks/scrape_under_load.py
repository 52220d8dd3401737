"""How /metrics and /readyz answer while the MCP endpoint is loaded: the operator app's share.

    python tests/benchmarks/scrape_under_load.py [--seconds 8] [--connections 16] [--tree DIR]...

For each tree (default: this checkout), mcpd on its defaults (pinned to the server CPU) takes
``tools/call`` of ``echo`` on a legacy session from wrk (or load.py) at ``--connections``,
while this process scrapes ``/metrics`` and ``/readyz`` every 50 ms on a connection of its
own. Prints the scrape latencies idle and under load, and the MCP rate with and without the
scraping. Not a test: figures for the notes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

import load  # noqa: E402
import wrk_load  # noqa: E402
from servers import legacy_headers, legacy_session, port_of, start_mcpd, tool_call  # noqa: E402
from support.plugins import install_plugins  # noqa: E402


def scrape(base: str, seconds: float) -> list[float]:
    """Milliseconds per GET of /metrics and /readyz, one every 50 ms for ``seconds``."""
    took: list[float] = []
    with httpx.Client(timeout=30) as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for path in ("/metrics", "/readyz"):
                started = time.perf_counter()
                response = http.get(base + path)
                took.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            time.sleep(0.05)
    return took


def drive(port: int, session: str, connections: int, seconds: float) -> float:
    body, headers = tool_call("echo", {"text": "hi"}), legacy_headers(session)
    if wrk_load.available():
        return wrk_load.run(
            port, "/mcp", body, headers, connections=connections, seconds=seconds
        ).rate
    request = load.Requests("/mcp", body, headers, f"127.0.0.1:{port}")
    return load.run(
        "127.0.0.1", port, request, connections=connections, warmup=0.5, seconds=seconds
    ).rate


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered):.2f} / p99 {p99:.2f} / max {ordered[-1]:.2f} ms"


def measure(tree: Path | None, site: Path, work: Path, seconds: float, connections: int) -> None:
    server = start_mcpd(site, work, work, code=tree)
    try:
        port = port_of(server)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=30) as http:
            session = legacy_session(http, base + "/mcp")
        idle = scrape(base, seconds / 2)
        alone = drive(port, session, connections, seconds)
        busy: list[float] = []
        scraper = threading.Thread(target=lambda: busy.extend(scrape(base, seconds)))
        scraper.start()
        loaded = drive(port, session, connections, seconds)
        scraper.join()
        name = tree or "this checkout"
        print(f"{name}: scrapes idle {summary(idle)}; under load {summary(busy)} ({len(busy)})")
        print(f"{name}: MCP req/s at c={connections}: {alone:,.0f} alone, {loaded:,.0f} scraped")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--tree", type=Path, action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        site = work / "site"
        install_plugins(site, ROOT / "tests" / "fixtures" / "plugins" / "mcpd-fixture-tools")
        for tree in args.tree or [None]:
            measure(tree, site, work, args.seconds, args.connections)


if __name__ == "__main__":
    main()
