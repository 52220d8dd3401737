"""The servers the benchmarks run, each a subprocess pinned to the server CPU: mcpd on its
defaults, the bare ASGI app (stock or patched hypercorn), the official Python SDK's server,
and a trivially fast responder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
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
        # Off the server's CPU: a reader woken there for each log line would take its time.
        os.sched_setaffinity(0, CLIENT_CPU)
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


# Runs mcpd from another source tree (``--baseline``), ahead of the editable install's finder.
_FROM_TREE = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path"
    " if not type(f).__module__.startswith('__editable__')]; sys.path.insert(0, sys.argv.pop(1));"
    " from mcpd.cli import main; sys.argv[0] = 'mcpd'; sys.exit(main())"
)


def start_mcpd(
    site: Path,
    markers: Path,
    workdir: Path,
    server_extra: str = "",
    code: Path | None = None,
    tables: str = "",
) -> Server:
    """mcpd on its defaults; ``code``: a source tree to run instead of this checkout;
    ``tables``: more config tables."""
    port = free_port()
    config = workdir / f"mcpd-{port}.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}"]\n{server_extra}\n'
        f'[plugin.fixture]\nmarker_dir = "{markers}"\n{tables}'
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    launch = ["-m", "mcpd"] if code is None else ["-c", _FROM_TREE, str(code)]
    argv = [sys.executable, *launch, "serve", "--config", str(config)]
    server = Server(argv, env, "daemon.listening")
    server.port = port  # type: ignore[attr-defined]
    return server


def start_script(script: str, *flags: str, ready: str = "Running on") -> Server:
    port = free_port()
    argv = [sys.executable, str(HERE / script), str(port), *flags]
    server = Server(argv, dict(os.environ), ready)
    server.port = port  # type: ignore[attr-defined]
    return server


def port_of(server: Server) -> int:
    return int(server.port)  # type: ignore[attr-defined]


def legacy_session(http: httpx.Client, url: str) -> str:
    """initialize + notifications/initialized; the session id."""
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


def legacy_headers(session: str | None) -> dict[str, str]:
    headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if session is not None:
        headers["Mcp-Session-Id"] = session
    headers["MCP-Protocol-Version"] = "2025-11-25"
    return headers


def modern_headers(tool: str = "echo") -> dict[str, str]:
    return {
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }


def modern_meta(**extra: Any) -> dict[str, Any]:
    return {P + "protocolVersion": "2026-07-28", P + "clientCapabilities": {}, **extra}


def tool_call(name: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None) -> bytes:
    """A tools/call body with id 1 (the load generators give each request a fresh id)."""
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if meta is not None:
        params["_meta"] = meta
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    ).encode()
