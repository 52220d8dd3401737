"""mcpd against the official Python MCP SDK, side by side: throughput, latency and server CPU
per request at several connection counts, a 1 MiB result, SSE answers and h2c; then memory per
session, disconnect-to-finally latency and the cost of 1,000 pending calls.

    python tests/benchmarks/bench.py [--seconds 5] [--rounds 3] [--connections 1,16,64]
        [--load auto|wrk|python] [--only throughput,large,sse,h2c,footprint] [--json out.json]

Servers run pinned to CPU 0, the load generator to CPU 1 (the machines have two cores). mcpd
runs with its defaults (log level info, JSON lines to a pipe this script drains). See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

import footprint  # noqa: E402
import h2_load  # noqa: E402
import load  # noqa: E402
import wrk_load  # noqa: E402
from servers import (  # noqa: E402
    CLIENT_CPU,
    SERVER_CPU,
    Server,
    legacy_headers,
    legacy_session,
    modern_headers,
    modern_meta,
    port_of,
    start_mcpd,
    start_script,
    tool_call,
)
from support.plugins import install_plugins  # noqa: E402

MIB = 2**20
FASTEST_SDK = "sdk 2026-07-28 (stateless, JSON)"


class Case:
    """One server fed one kind of request."""

    def __init__(self, name: str, server: Server, body: bytes, headers: dict[str, str]) -> None:
        self.name, self.server, self.body, self.headers = name, server, body, headers


def drive(case: Case, connections: int, seconds: float, generator: str) -> load.Result:
    port = port_of(case.server)
    if generator == "wrk":
        return wrk_load.run(
            port, "/mcp", case.body, case.headers, connections=connections, seconds=seconds
        )
    host = f"127.0.0.1:{port}"
    if generator == "h2c":
        requests = load.Requests("/mcp", case.body, case.headers, host)
        bodies = _bodies_of(requests)
        return h2_load.run(
            port, "/mcp", bodies, case.headers, connections=connections, seconds=seconds
        )
    requests = load.Requests("/mcp", case.body, case.headers, host)
    return load.run("127.0.0.1", port, requests, connections=connections, warmup=0, seconds=seconds)


def _bodies_of(requests: load.Requests) -> Callable[[], bytes]:
    return lambda: requests().split(b"\r\n\r\n", 1)[1]


def measure(case: Case, connections: int, seconds: float, generator: str) -> dict[str, Any]:
    os.sched_setaffinity(0, CLIENT_CPU)
    drive(case, connections, min(1.0, seconds), generator)  # warm-up
    before = case.server.cpu_seconds()
    result = drive(case, connections, seconds, generator)
    cpu = case.server.cpu_seconds() - before
    return {
        "requests_per_s": round(result.rate, 1),
        "p50_ms": round(result.percentile(50) * 1000, 2),
        "p99_ms": round(result.percentile(99) * 1000, 2),
        "p99.9_ms": round(result.percentile(99.9) * 1000, 2),
        "max_ms": round(result.percentile(100) * 1000, 2),
        "server_cpu_us_per_req": round(cpu / max(result.requests, 1) * 1e6, 1),
        "server_cpu_share": round(cpu / seconds, 2),
        "errors": result.errors,
        "reconnects": result.reconnects,
    }


def rounds(
    cases: list[Case], connections: list[int], args: argparse.Namespace, generator: str
) -> dict[str, Any]:
    """Every case at every connection count, interleaved round after round; medians."""
    samples: dict[str, list[dict[str, Any]]] = {}
    for number in range(1, args.rounds + 1):
        for c in connections:
            for case in cases:
                row = measure(case, c, args.seconds, generator)
                samples.setdefault(f"{case.name} c={c}", []).append(row)
                _say(f"round {number} c={c:<3} {case.name:<40} {_brief(row)}")
    return {key: _median_row(rows) for key, rows in samples.items()}


def _brief(row: dict[str, Any]) -> str:
    return (
        f"{row['requests_per_s']:>8.0f} req/s  p50 {row['p50_ms']:>6.2f}  p99 {row['p99_ms']:>6.2f}"
        f"  p99.9 {row['p99.9_ms']:>6.2f}  max {row['max_ms']:>6.2f} ms"
        f"  cpu {row['server_cpu_us_per_req']:>6.0f} us/req ({row['server_cpu_share']:.2f} core)"
        f"  errors {row['errors']}"
    )


def _median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rows, key=lambda row: row["requests_per_s"])
    row = dict(ordered[len(ordered) // 2])
    row["all_rates"] = [r["requests_per_s"] for r in rows]
    row["all_cpu_us_per_req"] = [r["server_cpu_us_per_req"] for r in rows]
    row["median_cpu_us_per_req"] = statistics.median(row["all_cpu_us_per_req"])
    return row


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def ratios(figures: dict[str, Any], against: str, names: list[str], conns: list[int]) -> dict:
    """Rate and CPU per request of each named case relative to ``against``, per c."""
    out: dict[str, Any] = {}
    for c in conns:
        base = figures.get(f"{against} c={c}")
        if base is None:
            continue
        for name in names:
            row = figures.get(f"{name} c={c}")
            if row is not None:
                out[f"{name} c={c}"] = {
                    "rate_ratio": round(row["requests_per_s"] / base["requests_per_s"], 2),
                    "cpu_ratio": round(
                        row["median_cpu_us_per_req"] / base["median_cpu_us_per_req"], 2
                    ),
                }
    return out


# -- the sections -----------------------------------------------------------------------------


class Servers:
    """Every server the sections need, started once."""

    def __init__(
        self, stack: ExitStack, site: Path, markers: Path, work: Path, baseline: Path | None
    ) -> None:
        def keep(server: Server) -> Server:
            stack.callback(server.stop)
            return server

        self.mcpd = keep(start_mcpd(site, markers, work))
        self.sdk = keep(start_script("sdk_app.py", ready="Uvicorn running"))
        self.sdk_stateful = keep(start_script("sdk_app.py", "--stateful", ready="Uvicorn running"))
        self.bare = keep(start_script("bare_app.py", "--unpatched"))
        self.bare_lean = keep(start_script("bare_app.py"))
        self._keep = keep
        self.baseline = None
        if baseline is not None:
            self.baseline = keep(start_mcpd(site, markers, work, code=baseline))
        with httpx.Client(timeout=30) as http:
            self.session = legacy_session(http, f"http://127.0.0.1:{port_of(self.mcpd)}/mcp")
            if self.baseline is not None:
                url = f"http://127.0.0.1:{port_of(self.baseline)}/mcp"
                self.baseline_session = legacy_session(http, url)
            sdk_url = f"http://127.0.0.1:{port_of(self.sdk_stateful)}/mcp"
            self.sdk_session = legacy_session(http, sdk_url)

    def start(self, *argv: str, ready: str = "Uvicorn running") -> Server:
        return self._keep(start_script(*argv, ready=ready))


def throughput(servers: Servers, args: argparse.Namespace, generator: str) -> dict[str, Any]:
    echo = {"text": "hi"}
    legacy = tool_call("echo", echo)
    modern = tool_call("echo", echo, modern_meta())
    cases = [
        Case("mcpd legacy session", servers.mcpd, legacy, legacy_headers(servers.session)),
        Case("mcpd 2026-07-28", servers.mcpd, modern, modern_headers()),
        Case(FASTEST_SDK, servers.sdk, modern, modern_headers()),
        Case(
            "sdk legacy session (stateful, JSON)",
            servers.sdk_stateful,
            legacy,
            legacy_headers(servers.sdk_session),
        ),
        Case("bare app, stock hypercorn-trio", servers.bare, modern, modern_headers()),
        Case("bare app, mcpd's hypercorn", servers.bare_lean, modern, modern_headers()),
    ]
    if servers.baseline is not None:
        session = legacy_headers(servers.baseline_session)
        cases += [
            Case("baseline mcpd legacy session", servers.baseline, legacy, session),
            Case("baseline mcpd 2026-07-28", servers.baseline, modern, modern_headers()),
        ]
    figures = rounds(cases, args.connections, args, generator)
    mcpd = ["mcpd legacy session", "mcpd 2026-07-28"]
    mcpd += ["baseline " + name for name in mcpd] if servers.baseline is not None else []
    return {
        "figures": figures,
        "vs_sdk_fastest": ratios(figures, FASTEST_SDK, mcpd, args.connections),
        "vs_sdk_stateful": ratios(
            figures, "sdk legacy session (stateful, JSON)", mcpd, args.connections
        ),
    }


def large(servers: Servers, args: argparse.Namespace, generator: str) -> dict[str, Any]:
    size = {"size": MIB}
    cases = [
        Case("mcpd legacy 1 MiB", servers.mcpd, tool_call("blob", size), _h(servers)),
        Case(
            "mcpd 2026-07-28 1 MiB",
            servers.mcpd,
            tool_call("blob", size, modern_meta()),
            modern_headers("blob"),
        ),
        Case(
            "sdk 2026-07-28 1 MiB",
            servers.sdk,
            tool_call("blob", size, modern_meta()),
            modern_headers("blob"),
        ),
    ]
    figures = rounds(cases, [16], args, generator)
    names = ["mcpd legacy 1 MiB", "mcpd 2026-07-28 1 MiB"]
    return {"figures": figures, "vs_sdk": ratios(figures, "sdk 2026-07-28 1 MiB", names, [16])}


def _h(servers: Servers) -> dict[str, str]:
    return legacy_headers(servers.session)


def sse(servers: Servers, args: argparse.Namespace, generator: str) -> dict[str, Any]:
    """Answers that stream a progress notification first: SSE responses on both servers."""
    sdk_sse = servers.start("sdk_app.py", "--sse")
    call = tool_call("progress_echo", {"text": "hi"}, {"progressToken": "p"})
    cases = [
        Case("mcpd legacy SSE answer", servers.mcpd, call, _h(servers)),
        Case("sdk legacy SSE answer (stateless)", sdk_sse, call, legacy_headers(None)),
    ]
    figures = rounds(cases, [16], args, generator)
    names = ["mcpd legacy SSE answer"]
    return {
        "figures": figures,
        "vs_sdk": ratios(figures, "sdk legacy SSE answer (stateless)", names, [16]),
    }


def h2c(servers: Servers, args: argparse.Namespace) -> dict[str, Any]:
    """mcpd over h2c (prior knowledge) against itself over HTTP/1.1 (the SDK's uvicorn has no
    h2); both driven by Python generators, so only server CPU per request compares."""
    call = tool_call("echo", {"text": "hi"})
    cases = [("mcpd", Case("mcpd legacy session", servers.mcpd, call, _h(servers)))]
    if servers.baseline is not None:  # --baseline: the same rows for that tree, interleaved
        headers = legacy_headers(servers.baseline_session)
        cases.append(("baseline mcpd", Case("baseline", servers.baseline, call, headers)))
    samples: dict[str, list[dict[str, Any]]] = {}
    for number in range(1, args.rounds + 1):
        for name, case in cases:
            for generator in ("h2c", "python"):
                row = measure(case, 16, args.seconds, generator)
                samples.setdefault(f"{name} legacy {generator}", []).append(row)
                label = f"{name} legacy over {generator}"
                _say(f"round {number} c=16  {label:<39} {_brief(row)}")
    return {key: _median_row(rows) for key, rows in samples.items()}


def generator_check(args: argparse.Namespace, generator: str) -> dict[str, Any]:
    """The load generator against a responder far faster than any server here."""
    fast = start_script("fast_responder.py")
    try:
        case = Case("fast responder", fast, tool_call("echo", {"text": "hi"}), modern_headers())
        out = {}
        for c in args.connections:
            row = measure(case, c, min(args.seconds, 3.0), generator)
            out[f"c={c}"] = row["requests_per_s"]
            _say(f"generator check ({generator}) c={c}: {row['requests_per_s']:.0f} req/s")
        return out
    finally:
        fast.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--only", default="throughput,large,sse,h2c,footprint")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--baseline", type=Path, help="also run mcpd from this source tree (e.g. an older commit)"
    )
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    only = set(args.only.split(","))
    generator = args.load if args.load != "auto" else ("wrk" if wrk_load.available() else "python")
    report: dict[str, Any] = {
        "conditions": {
            "connections": args.connections,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "load_generator": generator,
            "server_cpu": sorted(SERVER_CPU),
            "client_cpu": sorted(CLIENT_CPU),
            "python": sys.version.split()[0],
            "load_average": os.getloadavg(),
        },
        "generator_check": generator_check(args, generator),
    }
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        site, markers = work / "site", work / "markers"
        markers.mkdir()
        install_plugins(
            site,
            ROOT / "tests" / "fixtures" / "plugins" / "mcpd-fixture-tools",
            HERE / "mcpd-bench-tools",
        )
        servers = Servers(stack, site, markers, work, args.baseline)
        if "throughput" in only:
            report["throughput"] = throughput(servers, args, generator)
        if "large" in only:
            report["large_result"] = large(servers, args, generator)
        if "sse" in only:
            report["sse_answers"] = sse(servers, args, generator)
        if "h2c" in only:
            report["h2c"] = h2c(servers, args)
        stack.close()
        if "footprint" in only:
            report["footprint"] = footprint.run_all(site, markers, work, args.trials)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
