"""Issue 12's check: restart the daemon under each client library, and call again on the same client.

    .venv/bin/python tests/interop/restart_matrix.py [--list] [--only NAME]... [--no-persist] [--json PATH]

For each client configuration (``--list`` names them): start mcpd with the fixture plugin under
``HeldSocket`` (the script plays systemd and holds the listening socket across the restart),
with a state directory so that handshake-era sessions are persisted; connect the client, list
the tools and call ``echo``; restart the daemon (SIGTERM, wait for its exit, start the next
one on the same held socket); then call ``echo`` again on the SAME client object. Nothing is
retried or reconnected by the script: what the library does by itself is what is measured.

Each Python library runs in its own virtualenv under ``--venvs`` (default /tmp/matrix/<venv>),
created and filled at the pinned versions below when missing; its half of the exchange is
``restart_matrix_drivers.py``. The TypeScript clients are the interop tests' pinned packages
(``ts/``; the SDK 1.x is the conformance harness's), driven by ``ts/restart_matrix.mjs``.

Prints a table and writes a JSON file with, per configuration, what the client saw before and
after the restart, every HTTP request it made after it (method, path, session id, status),
its warnings, and what the daemons said (sessions saved, restored, created anew).

This is a script, not a test module (pytest collects only ``test_*.py``): it installs
packages and takes minutes. Exit status 0 when every configuration ran (whatever its
outcome), 1 when one could not be run at all, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path.insert(0, str(TESTS))  # support.* and conformance.*, as pytest's pythonpath gives them

from conformance import runner  # noqa: E402
from support.daemon import Daemon  # noqa: E402
from support.plugins import install_plugins  # noqa: E402
from support.restarts import HeldSocket, restart_config  # noqa: E402

FIXTURE_PLUGIN = TESTS / "fixtures" / "plugins" / "mcpd-fixture-tools"
DRIVERS = HERE / "restart_matrix_drivers.py"
TS_DRIVER = HERE / "ts" / "restart_matrix.mjs"
DEFAULT_VENVS = Path("/tmp/matrix")
CONNECT_SECONDS = 90.0  # connect, list, first call; only turns a hang into a failure
AFTER_SECONDS = 60.0  # its call after the restart (its driver gives up on a step after 20 s)
CLOSE_SECONDS = 15.0  # its close; past this it is ended (and that is noted, not failed)
INSTALL_SECONDS = 900.0


@dataclass(frozen=True)
class Config:
    """One client configuration: a library, how it connects, and where it is installed."""

    name: str
    library: str  # the distribution (or npm package) whose version is reported
    transport: str  # "streamable-http", "sse" (2024-11-05 HTTP+SSE), "stateless" (2026-07-28)
    driver: str  # a restart_matrix_drivers.DRIVERS key, or "ts:<flavor>:<mode>"
    venv: str = ""  # Python only: the virtualenv's directory name
    requirements: tuple[str, ...] = ()  # Python only: what the virtualenv is made of
    issue: bool = True  # one of issue 12's 14 configurations
    note: str = ""

    @property
    def path(self) -> str:
        return "/sse" if self.transport == "sse" else "/mcp"


MCP1 = ("mcp==1.30.0",)
FASTMCP2 = ("fastmcp==2.14.7",)
FASTMCP4 = ("fastmcp==4.1.7",)
PYDANTIC_AI1 = ("pydantic-ai-slim[mcp]==1.107.10",)
PYDANTIC_AI2 = ("pydantic-ai-slim[mcp]==2.68.0",)
MCP_USE = ("mcp-use==1.7.1",)
# smolagents' MCP adapter (mcpadapt 0.1.19) imports names the SDK 2.x removed and the SDK's
# websocket client: with the SDK 2.x its import fails, so the SDK is held at 1.30 with [ws].
SMOLAGENTS = ("smolagents[mcp]==1.26.0", "mcp[ws]==1.30.0")

CONFIGS = (
    Config("mcp-http", "mcp", "streamable-http", "mcp-http", "mcp1", MCP1),
    Config("mcp-sse", "mcp", "sse", "mcp-sse", "mcp1", MCP1),
    Config("fastmcp2-http", "fastmcp", "streamable-http", "fastmcp-http", "fastmcp2", FASTMCP2),
    Config("fastmcp2-sse", "fastmcp", "sse", "fastmcp-sse", "fastmcp2", FASTMCP2),
    Config(
        "fastmcp4-http",
        "fastmcp",
        "streamable-http",
        "fastmcp-http",
        "fastmcp4",
        FASTMCP4,
        note='mode="legacy"',
    ),
    Config("fastmcp4-sse", "fastmcp", "sse", "fastmcp-sse", "fastmcp4", FASTMCP4),
    Config(
        "pydantic-ai1-sse",
        "pydantic-ai-slim",
        "sse",
        "pydantic-ai-sse",
        "pydantic-ai1",
        PYDANTIC_AI1,
    ),
    Config(
        "pydantic-ai1-http",
        "pydantic-ai-slim",
        "streamable-http",
        "pydantic-ai-http",
        "pydantic-ai1",
        PYDANTIC_AI1,
        issue=False,
        note="MCPServerStreamableHTTP",
    ),
    Config(
        "pydantic-ai2-sse",
        "pydantic-ai-slim",
        "sse",
        "pydantic-ai-sse",
        "pydantic-ai2",
        PYDANTIC_AI2,
        note="MCPToolset(url): FastMCP 4 client, SSE from the /sse URL",
    ),
    Config(
        "pydantic-ai2-http",
        "pydantic-ai-slim",
        "streamable-http",
        "pydantic-ai-http",
        "pydantic-ai2",
        PYDANTIC_AI2,
        issue=False,
        note='MCPToolset(url): FastMCP 4 client, mode "auto" (its default)',
    ),
    Config("mcp-use", "mcp-use", "streamable-http", "mcp-use-http", "mcp-use", MCP_USE),
    Config(
        "smolagents", "smolagents", "streamable-http", "smolagents-http", "smolagents", SMOLAGENTS
    ),
    Config("ts-sdk-http", "@modelcontextprotocol/sdk", "streamable-http", "ts:sdk:legacy"),
    Config("ts-sdk-sse", "@modelcontextprotocol/sdk", "sse", "ts:sdk:sse"),
    Config("ts-client-http", "@modelcontextprotocol/client", "streamable-http", "ts:client:legacy"),
    Config("ts-client-sse", "@modelcontextprotocol/client", "sse", "ts:client:sse"),
    Config(
        "ts-client-stateless",
        "@modelcontextprotocol/client",
        "stateless",
        "ts:client:stateless",
        issue=False,
        note="2026-07-28 pinned",
    ),
)


@dataclass
class Result:
    """What one configuration's run showed."""

    name: str
    library: str
    version: str
    transport: str
    issue: bool
    note: str
    before_ok: bool = False
    after_ok: bool = False
    error: str = ""
    same_session: bool | None = None  # the session id the client used after = before
    protocol: str = ""  # the protocol version the client spoke (its MCP-Protocol-Version)
    after_requests: str = ""  # what the client sent after the restart, and the answers
    daemon: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        return "passed" if self.before_ok and self.after_ok else "failed"


# ---------------------------------------------------------------------------- installing ---


def _venv_python(venvs: Path, config: Config) -> Path:
    return venvs / config.venv / "bin" / "python"


def _installed(python: Path, distributions: list[str]) -> dict[str, str | None]:
    code = (
        "import json, sys, importlib.metadata as m\n"
        "def v(d):\n"
        "    try: return m.version(d)\n"
        "    except m.PackageNotFoundError: return None\n"
        "print(json.dumps({d: v(d) for d in sys.argv[1:]}))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code, *distributions],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        return dict.fromkeys(distributions)
    found: dict[str, str | None] = json.loads(done.stdout)
    return found


def _pins(requirements: tuple[str, ...]) -> dict[str, str]:
    """``name[extra]==1.2`` -> {name: 1.2}."""
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        pins[name.split("[")[0]] = version
    return pins


def ensure_venv(venvs: Path, config: Config) -> str | None:
    """Create (or complete) the configuration's virtualenv at its pins; why not, or None."""
    python = _venv_python(venvs, config)
    pins = _pins(config.requirements)
    if python.exists() and _installed(python, list(pins)) == pins:
        return None
    log = venvs / f"{config.venv}.install.log"
    venvs.mkdir(parents=True, exist_ok=True)
    print(f"installing {' '.join(config.requirements)} into {python.parents[1]} ...", flush=True)
    steps = [] if python.exists() else [[sys.executable, "-m", "venv", str(python.parents[1])]]
    steps.append([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"])
    steps[-1] += config.requirements
    with log.open("w") as out:
        for step in steps:
            done = subprocess.run(
                step, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=INSTALL_SECONDS
            )
            if done.returncode != 0:
                return f"{' '.join(step)} failed ({done.returncode}); see {log}"
    found = _installed(python, list(pins))
    return None if found == pins else f"installed {found}, wanted {pins}; see {log}"


def python_version(venvs: Path, config: Config) -> str:
    """The library's version, with the official SDK's underneath it when it is another."""
    found = _installed(_venv_python(venvs, config), [config.library, "mcp", "fastmcp-slim"])
    text = str(found[config.library])
    if config.library != "mcp" and found["mcp"]:
        text += f" (mcp {found['mcp']}"
        text += f", fastmcp-slim {found['fastmcp-slim']})" if found["fastmcp-slim"] else ")"
    return text


@dataclass(frozen=True)
class TsInstall:
    """Node and, per flavor, a directory with the driver beside the pinned packages."""

    node: Path
    workdirs: dict[str, Path]

    def version(self, package: str, flavor: str) -> str:
        manifest = self.workdirs[flavor] / "node_modules" / package / "package.json"
        return str(json.loads(manifest.read_text())["version"])


def _interop_conftest() -> Any:
    """tests/interop/conftest.py as a module: its pinned TypeScript client installer."""
    spec = importlib.util.spec_from_file_location("interop_conftest", HERE / "conftest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def install_ts(root: Path) -> TsInstall:
    """The TypeScript SDK 1.x (the harness's, cached) and client 2.x (``ts/``'s lock)."""
    client_prefix = _interop_conftest().install_ts_client()
    harness = runner.Harness.install()
    sdk_modules = harness.script.parents[3]  # <prefix>/node_modules/<package>/dist/index.js
    workdirs = {}
    for flavor, modules in (("client", client_prefix / "node_modules"), ("sdk", sdk_modules)):
        workdir = root / f"ts-{flavor}"
        workdir.mkdir()
        shutil.copy2(TS_DRIVER, workdir / TS_DRIVER.name)
        (workdir / "node_modules").symlink_to(modules, target_is_directory=True)
        workdirs[flavor] = workdir
    return TsInstall(harness.node, workdirs)


# ------------------------------------------------------------------------------- running ---


class Driver:
    """One client process: its JSON phase lines as they come, its stderr in a file."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str]) -> None:
        self._log = log.open("w")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def phase(self, seconds: float) -> dict[str, Any]:
        """The next phase line, or a ``{"phase": "lost"}`` saying why there is none."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                return {"phase": "lost", "error": f"the client exited ({self.process.wait()})"}
            if line.startswith("{"):
                found: dict[str, Any] = json.loads(line)
                return found
        return {"phase": "lost", "error": f"no phase line within {seconds:g} s (the client hung)"}

    def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def end(self) -> None:
        """Wait (bounded) for the process, then end it (it is ours: by its PID)."""
        try:
            self.process.wait(timeout=CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _driver_command(config: Config, venvs: Path, ts: TsInstall | None, url: str) -> list[str]:
    if config.driver.startswith("ts:"):
        assert ts is not None
        _, flavor, mode = config.driver.split(":")
        return [str(ts.node), str(ts.workdirs[flavor] / TS_DRIVER.name), url, flavor, mode]
    return [str(_venv_python(venvs, config)), str(DRIVERS), config.driver, url]


def _daemon_events(daemon: Daemon, name: str, settle: float = 2.0) -> list[dict[str, Any]]:
    """``name`` events of a stopped daemon (its log reader may still be catching up)."""
    deadline = time.monotonic() + settle
    while not (found := daemon.events(name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _outcome(value: Any) -> tuple[bool, str]:
    """(ok, error) of an echo step: ok when it returned its own text."""
    if isinstance(value, dict) and "error" in value:
        return False, str(value["error"])
    return True, ""


class Run:
    """One configuration: its daemons on one held socket, its client process."""

    def __init__(self, config: Config, site: Path, work: Path, persist: bool) -> None:
        self.config = config
        self.site = site
        self.work = work
        (work / "markers").mkdir(parents=True)
        self.toml = restart_config(
            work / "mcpd.toml",
            work / "markers",
            port=0,
            state_dir=work / "state",
            server="" if persist else "persist_sessions = false\n",
            extra='\n[plugins]\nenable = ["fixture"]\n',
        )
        # The tests page tools by 4; here every library's first list must hold echo (some,
        # like smolagents' adapter, build their tools from the first page only).
        self.toml.write_text(self.toml.read_text().replace("page_size = 4", "page_size = 100"))
        self.held = HeldSocket()
        self.daemons: list[Daemon] = []

    def start(self) -> Daemon:
        self.daemons.append(self.held.start(self.toml, self.site))
        return self.daemons[-1]

    def restart(self) -> int:
        status = self.daemons[-1].stop()  # SIGTERM, then wait for the exit
        self.start()
        return status

    def close(self) -> list[int]:
        statuses = [daemon.stop() for daemon in self.daemons]
        self.held.close()
        return statuses


def _client_part(result: Result, driver: Driver, run: Run) -> None:
    connected = driver.phase(CONNECT_SECONDS)
    result.phases["connected"] = connected
    if connected["phase"] != "connected":
        result.error = f"before the restart: {connected.get('error')}"
        return
    result.before_ok, error = _outcome(connected["before"])
    if not result.before_ok:
        result.error = f"before the restart: {error}"
        return
    result.daemon["first_exit"] = run.restart()
    driver.say("restarted")
    done = driver.phase(AFTER_SECONDS)
    result.phases["done"] = done
    if done["phase"] != "done":
        result.error = f"after the restart: {done.get('error')}"
        return
    result.after_ok, result.error = _outcome(done["after"])
    result.after_requests = _requests(done.get("http", []))
    result.protocol = _protocol(result.transport, connected.get("http", []))
    result.same_session = _same_session(connected, done)
    result.phases["closed"] = driver.phase(CLOSE_SECONDS)


def _requests(http: list[dict[str, Any]]) -> str:
    """``POST /mcp (tools/call) -> 200, ...``: what was sent after the restart."""
    sent = []
    for request in http:
        rpc = f" ({request['rpc']})" if request.get("rpc") else ""
        query = "?" + request["query"].split("=")[0] + "=…" if request.get("query") else ""
        sent.append(f"{request['method']} {request['path']}{query}{rpc} -> {request['status']}")
    return ", ".join(sent) or "no request sent"


def _protocol(transport: str, http: list[dict[str, Any]]) -> str:
    versions = [request["protocol"] for request in http if request.get("protocol")]
    return versions[-1] if versions else ("2024-11-05" if transport == "sse" else "")


def _same_session(connected: dict[str, Any], done: dict[str, Any]) -> bool | None:
    """Whether the client went on with its session id (from the driver or its requests)."""

    def ids(phase: dict[str, Any]) -> set[str]:
        found = {r["session"] for r in phase.get("http", []) if r.get("session")}
        return found | ({phase["session"]} if phase.get("session") else set())

    before, after = ids(connected), ids(done)
    if not before and not after:
        return None  # no session: the 2024-11-05 transport's is its connection, 2026 has none
    return after == before


def _daemon_part(result: Result, run: Run) -> None:
    statuses = run.close()
    result.daemon["exits"] = statuses
    first, *rest = run.daemons
    saved = _daemon_events(first, "state.saved")
    result.daemon["saved"] = saved[0].get("sessions") if saved else None
    if rest:
        second = rest[0]
        restored = _daemon_events(second, "state.restored")
        result.daemon["restored"] = restored[0].get("sessions") if restored else None
        created = _daemon_events(second, "session.created", settle=0)
        result.daemon["created_after"] = [event.get("client") for event in created]
        calls = [e for e in second.events("audit") if e.get("method") == "tools/call"]
        result.daemon["calls_after"] = [e.get("outcome") for e in calls]


def run_config(
    config: Config,
    version: str,
    venvs: Path,
    ts: TsInstall | None,
    site: Path,
    work: Path,
    persist: bool = True,
) -> Result:
    result = Result(
        config.name, config.library, version, config.transport, config.issue, config.note
    )
    started = time.monotonic()
    run = Run(config, site, work, persist)
    try:
        run.start()
        url = run.held.url.removesuffix("/mcp") + config.path
        env = {**os.environ, "MCP_USE_ANONYMIZED_TELEMETRY": "false", "NO_COLOR": "1"}
        driver = Driver(_driver_command(config, venvs, ts, url), work / "client.log", env)
        try:
            _client_part(result, driver, run)
        finally:
            driver.end()
    finally:
        _daemon_part(result, run)
        for number, daemon in enumerate(run.daemons, 1):
            (work / f"daemon-{number}.log").write_text("".join(daemon.raw))
    result.seconds = round(time.monotonic() - started, 1)
    return result


# ------------------------------------------------------------------------------ reporting ---


def _cell(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(results: list[Result]) -> str:
    columns: list[tuple[str, int, Callable[[Result], str]]] = [
        ("configuration", 22, lambda r: r.name + ("" if r.issue else " +")),
        ("version", 44, lambda r: r.version),
        ("transport", 15, lambda r: r.transport),
        ("protocol", 10, lambda r: r.protocol),
        ("before", 6, lambda r: "ok" if r.before_ok else "FAIL"),
        ("after", 6, lambda r: "ok" if r.after_ok else ("FAIL" if r.before_ok else "-")),
        ("session", 7, _session_cell),
        ("error (and what the client sent after the restart)", 100, _error_cell),
    ]
    lines = ["  ".join(title.ljust(width) for title, width, _ in columns).rstrip()]
    lines.append("  ".join("-" * width for _, width, _ in columns))
    for result in results:
        cells = [_cell(get(result), width).ljust(width) for _, width, get in columns]
        lines.append("  ".join(cells).rstrip())
    lines.append("(+: not one of issue 12's 14; session: same id after the restart, or new)")
    return "\n".join(lines)


def _error_cell(result: Result) -> str:
    if result.outcome == "passed":
        return ""
    return f"[{result.after_requests}] {result.error}" if result.after_requests else result.error


def _session_cell(result: Result) -> str:
    if result.same_session is None:
        return "-"
    return "same" if result.same_session else "new"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the configurations and exit")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only NAME (repeatable)"
    )
    parser.add_argument(
        "--venvs", type=Path, default=DEFAULT_VENVS, help="where the virtualenvs are (made)"
    )
    parser.add_argument(
        "--no-persist",
        action="store_true",
        help="baseline: persist_sessions = false (sessions end with the process, as before issue 12)",
    )
    parser.add_argument("--json", type=Path, help="the JSON report (default: VENVS/results.json)")
    return parser.parse_args(argv)


def selected(names: list[str]) -> list[Config]:
    known = {config.name: config for config in CONFIGS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown configuration(s): {', '.join(unknown)} (see --list)")
    return [known[name] for name in names] if names else list(CONFIGS)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.list:
        for config in CONFIGS:
            where = f"venv {config.venv}: {' '.join(config.requirements)}"
            where = where if config.venv else f"tests/interop/ts (Node): {config.driver}"
            mark = "" if config.issue else " (not in issue 12's 14)"
            print(f"{config.name:20} {config.transport:15} {where}{mark}")
        return 0
    try:
        configs = selected(args.only)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    json_path = args.json or args.venvs / "results.json"
    results, problems = execute(configs, args.venvs, persist=not args.no_persist)
    print(table(results))
    for problem in problems:
        print(f"NOT RUN: {problem}")
    report: dict[str, Any] = {"persist_sessions": not args.no_persist}
    report["results"] = [asdict(r) | {"outcome": r.outcome} for r in results]
    report["not_run"] = problems
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"JSON: {json_path}")
    return 1 if problems else 0


def execute(
    configs: list[Config], venvs: Path, *, persist: bool = True
) -> tuple[list[Result], list[str]]:
    results: list[Result] = []
    problems: list[str] = []
    # Kept after the run: each configuration's client and daemon logs, for a failure's cause.
    root = venvs / "runs"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    site = root / "site"
    install_plugins(site, FIXTURE_PLUGIN)
    ts = install_ts(root) if any(c.driver.startswith("ts:") for c in configs) else None
    for config in configs:
        if config.venv and (problem := ensure_venv(venvs, config)):
            problems.append(f"{config.name}: {problem}")
            continue
        if ts is not None and config.driver.startswith("ts:"):
            version = ts.version(config.library, config.driver.split(":")[1])
        else:
            version = python_version(venvs, config)
        print(f"{config.name} ({version}, {config.transport}) ...", end=" ", flush=True)
        result = run_config(config, version, venvs, ts, site, root / config.name, persist)
        print(f"{result.outcome} ({result.seconds:g} s)", flush=True)
        results.append(result)
    return results, problems


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
