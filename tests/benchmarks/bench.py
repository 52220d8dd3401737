"""mcpd benchmark: throughput, latency and server CPU against a bare hypercorn-trio app,
memory per idle legacy session, and disconnect-to-finally cancellation latency.

    python tests/benchmarks/bench.py [--seconds 8] [--connections 16] [--json out.json]

Servers run pinned to CPU 0, the load generator to CPU 1 (the machines have two cores).
mcpd runs with its defaults (log level info, JSON lines to a pipe this script drains).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from load import Requests, Result, build_request, run  # noqa: E402
from support.plugins import install_plugins  # noqa: E402

SERVER_CPU, CLIENT_CPU = {0}, {1}
ACCEPT = "application/json, text/event-stream"
P = "io.modelcontextprotocol/"
TICK = os.sysconf("SC_CLK_TCK")


class Server:
    """A server subprocess pinned to the server CPU, its stderr drained by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str], ready: str) -> None:
        self.process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.sched_setaffinity(self.process.pid, SERVER_CPU)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._marker = ready
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(60):
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.lines[-20:]))

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if not self._ready.is_set():
                self.lines.append(line)
                if self._marker in line:
                    self._ready.set()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mcpd(
    site: Path, markers: Path, workdir: Path, server_extra: str = ""
) -> tuple[Server, int]:
    port = free_port()
    config = workdir / "mcpd.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}"]\n{server_extra}\n'
        f'[plugin.fixture]\nmarker_dir = "{markers}"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    server = Server(
        [sys.executable, "-m", "mcpd", "serve", "--config", str(config)], env, "daemon.listening"
    )
    return server, port


def measure(
    server: Server, port: int, request: Requests, connections: int, seconds: float
) -> dict[str, Any]:
    os.sched_setaffinity(0, CLIENT_CPU)
    run("127.0.0.1", port, request, connections=connections, warmup=0, seconds=1.0)
    before = server.cpu_seconds()
    result: Result = run(
        "127.0.0.1", port, request, connections=connections, warmup=0, seconds=seconds
    )
    cpu = server.cpu_seconds() - before
    return {
        "requests_per_s": round(result.rate, 1),
        "p50_ms": round(result.percentile(50) * 1000, 2),
        "p99_ms": round(result.percentile(99) * 1000, 2),
        "server_cpu_us_per_req": round(cpu / max(result.requests, 1) * 1e6, 1),
        "errors": result.errors,
        "reconnects": result.reconnects,
        "client_cpu_share": round(result.client_cpu / seconds, 2),
    }


def legacy_session(http: httpx.Client, url: str) -> str:
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    }
    headers = {"accept": ACCEPT, "content-type": "application/json"}
    answer = http.post(
        url,
        json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params},
        headers=headers,
    )
    session = answer.headers["mcp-session-id"]
    headers = {**headers, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return session


def echo_call(meta: dict[str, Any] | None = None) -> bytes:
    params: dict[str, Any] = {"name": "echo", "arguments": {"text": "hi"}}
    if meta is not None:
        params["_meta"] = meta
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    ).encode()


def modern_meta(**extra: Any) -> dict[str, Any]:
    return {P + "protocolVersion": "2026-07-28", P + "clientCapabilities": {}, **extra}


def modern_headers() -> dict[str, str]:
    return {
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "echo",
    }


def throughput(
    site: Path, markers: Path, work: Path, connections: int, seconds: float, rounds: int
) -> dict[str, Any]:
    """Each era against the bare app fed byte-identical requests (same headers and body).

    Both servers run at once (pinned to the same CPU, only one loaded at a time) and the
    measurements alternate, round after round, so drift on a shared machine hits both alike;
    each row is the round with the median rate.
    """
    server, port = start_mcpd(site, markers, work)
    bare, bare_port = start_bare("--unpatched")
    patched, patched_port = start_bare()
    try:
        with httpx.Client(timeout=30) as http:
            session = legacy_session(http, f"http://127.0.0.1:{port}/mcp")
        legacy = {
            "Accept": ACCEPT,
            "Content-Type": "application/json",
            "Mcp-Session-Id": session,
            "MCP-Protocol-Version": "2025-11-25",
        }
        requests = {
            "legacy session": lambda: Requests("/mcp", echo_call(), legacy),
            "modern": lambda: Requests("/mcp", echo_call(modern_meta()), modern_headers()),
        }
        samples: dict[str, list[dict[str, Any]]] = {}
        for _ in range(rounds):
            for era, make in requests.items():
                for name, target, target_port in (
                    ("mcpd", server, port),
                    ("bare", bare, bare_port),
                    ("bare with mcpd's hypercorn patches", patched, patched_port),
                ):
                    row = measure(target, target_port, make(), connections, seconds)
                    samples.setdefault(f"{name} {era}", []).append(row)
    finally:
        for process in (server, bare, patched):
            process.stop()
    figures = {key: _median_row(rows) for key, rows in samples.items()}
    for era in requests:
        figures[f"mcpd {era}"]["vs_bare"] = round(
            figures[f"mcpd {era}"]["requests_per_s"] / figures[f"bare {era}"]["requests_per_s"], 2
        )
    return figures


def start_bare(*flags: str) -> tuple[Server, int]:
    port = free_port()
    argv = [sys.executable, str(HERE / "bare_app.py"), str(port), *flags]
    return Server(argv, dict(os.environ), "Running on"), port


def _median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rows, key=lambda row: row["requests_per_s"])
    row = dict(ordered[len(ordered) // 2])
    row["all_rates"] = [r["requests_per_s"] for r in rows]
    return row


def session_memory(site: Path, markers: Path, work: Path) -> dict[str, Any]:
    server, port = start_mcpd(site, markers, work)
    url = f"http://127.0.0.1:{port}/mcp"
    per_session = []
    try:
        with httpx.Client(timeout=30) as http:
            for _ in range(50):  # warm-up: one-time allocations are not per-session cost
                legacy_session(http, url)
            for _ in range(2):
                before = server.rss_kib()
                for _ in range(1000):
                    legacy_session(http, url)
                per_session.append(round((server.rss_kib() - before) * 1024 / 1000))
    finally:
        server.stop()
    return {"bytes_per_idle_session": per_session}


def _wait_marker(path: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return path.stat().st_mtime_ns
        time.sleep(0.0005)
    raise RuntimeError(f"{path} never appeared")


def _one_cancel(port: int, body: bytes, headers: dict[str, str], marker: Path) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(build_request("/mcp", body, headers))
        seen = b""
        while b"notifications/progress" not in seen:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("stream ended before progress")
            seen += chunk
        closed_at = time.time_ns()
    return (_wait_marker(marker) - closed_at) / 1e6


def cancel_latency(site: Path, markers: Path, work: Path, trials: int) -> dict[str, Any]:
    # Legacy disconnects cancel at once only without stream resumption (its window keeps a
    # dropped request running for the client to come back).
    server, port = start_mcpd(site, markers, work, "resume_window_seconds = 0")
    out: dict[str, Any] = {}
    try:
        with httpx.Client(timeout=30) as http:
            session = legacy_session(http, f"http://127.0.0.1:{port}/mcp")
        legacy_headers = {
            "Accept": ACCEPT,
            "Content-Type": "application/json",
            "Mcp-Session-Id": session,
            "MCP-Protocol-Version": "2025-11-25",
        }
        for era in ("legacy", "modern"):
            samples = []
            for i in range(trials):
                tag = f"{era}-{i}-{time.monotonic_ns()}"
                params: dict[str, Any] = {"name": "slow", "arguments": {"seconds": 60, "tag": tag}}
                if era == "legacy":
                    params["_meta"] = {"progressToken": tag}
                    headers = legacy_headers
                else:
                    params["_meta"] = modern_meta(progressToken=tag)
                    headers = {**modern_headers(), "Mcp-Name": "slow"}
                body = json.dumps(
                    {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": params}
                ).encode()
                samples.append(_one_cancel(port, body, headers, markers / f"{tag}.json"))
            out[era] = {
                "p50_ms": round(statistics.median(samples), 2),
                "max_ms": round(max(samples), 2),
                "trials": trials,
            }
    finally:
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        site, markers = work / "site", work / "markers"
        markers.mkdir()
        install_plugins(site, ROOT / "tests" / "fixtures" / "plugins" / "mcpd-fixture-tools")
        report = {
            "conditions": {
                "connections": args.connections,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "server_cpu": sorted(SERVER_CPU),
                "client_cpu": sorted(CLIENT_CPU),
                "python": sys.version.split()[0],
            },
            "throughput": throughput(
                site, markers, work, args.connections, args.seconds, args.rounds
            ),
            "memory": session_memory(site, markers, work),
            "cancellation": cancel_latency(site, markers, work, args.trials),
        }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
