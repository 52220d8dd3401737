"""Run the official MCP conformance suite against a running MCP server.

The suite is the npm package ``@modelcontextprotocol/conformance`` (the "harness"): a Node
program that plays an MCP client through one scenario after another and writes, per scenario,
a ``checks.json`` list of checks with status SUCCESS, FAILURE, WARNING or INFO. A scenario
passes when none of its checks is a FAILURE (the harness's own rule); a scenario that left no
result (the harness crashed or ran out of time) fails.

This module installs the pinned harness and a Node >= 22 into a cache, runs a selection of
server scenarios against a URL and returns structured results. It uses only the standard
library, so it also runs as a script against any server::

    python tests/conformance/runner.py http://127.0.0.1:8765/mcp
    python tests/conformance/runner.py URL --version 0.2.0-alpha.12 --requirements 2026-07-28
    python tests/conformance/runner.py URL --scenario ping --scenario tools-list
    python tests/conformance/runner.py --list [--version V] [--requirements REV]

Exit status: 0 when the suite ran (whatever the score), 2 when it could not run (no npm or
Node, install failed, bad arguments), 3 when nothing answers HTTP at the URL.

Environment: ``MCPD_CONFORMANCE_CACHE`` (install dir, default
``${XDG_CACHE_HOME:-~/.cache}/mcpd-conformance``), ``MCPD_CONFORMANCE_NODE`` (a Node >= 22
binary to use instead of looking for one).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# ---------------------------------------------------------------------------------- pins ---
# Every pinned version lives here and nowhere else.
HARNESS_LATEST = "0.1.16"  # the harness's npm "latest": the 2025-06-18 / 2025-11-25 scenarios
HARNESS_PRERELEASE = "0.2.0-alpha.12"  # adds the 2026-07-28 wire and frozen requirement sets
# The harness's MCP client. The harness declares only a caret range, so without this pin a
# new SDK release could change the score without any change on our side.
CLIENT_SDK = "1.32.2"
# The harness imports fs.globSync: Node >= 22. When the system Node is older, this build is
# installed from the npm package node-linux-<arch>, which carries the binary itself.
NODE_VERSION = "22.23.3"
NODE_MIN_MAJOR = 22
# ---------------------------------------------------------------------------------------------

HARNESS_PACKAGE = "@modelcontextprotocol/conformance"
SDK_PACKAGE = "@modelcontextprotocol/sdk"

BATCH_TIMEOUT = 120.0  # seconds for one harness process over the whole selection
SCENARIO_TIMEOUT = 30.0  # seconds for a scenario re-run on its own
MAX_TIMEOUTS = 3  # after this many timeouts in a row the rest fail without running (0: never)
INSTALL_TIMEOUT = 600.0
REACHABLE_TIMEOUT = 5.0

# A result directory is "server-<scenario>-<ISO timestamp with ':' and '.' as '-'>".
_RESULT_DIR = re.compile(r"^server-(?P<name>.+)-\d{4}-\d{2}-\d{2}T[0-9-]+Z$")


class ConformanceError(RuntimeError):
    """The suite could not run (as opposed to: it ran and scenarios failed)."""


class Unreachable(ConformanceError):
    """Nothing answers HTTP at the server URL."""


# ------------------------------------------------------------------------------- results ---
@dataclass(frozen=True)
class Check:
    id: str
    name: str
    status: str  # SUCCESS, FAILURE, WARNING or INFO
    message: str  # the harness's error message, else the check's description

    def __str__(self) -> str:
        return f"{self.status} {self.id}: {self.message}"


@dataclass(frozen=True)
class Scenario:
    name: str
    checks: tuple[Check, ...] = ()
    error: str | None = None  # why the scenario left no result; it then fails
    path: Path | None = None  # its checks.json

    @property
    def passed(self) -> bool:
        return self.error is None and not self.failures

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == "FAILURE"]

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.status == "WARNING"]

    def count(self, status: str) -> int:
        return sum(check.status == status for check in self.checks)


@dataclass
class Report:
    harness: str
    url: str
    selection: str  # human-readable: "suite all", "requirements 2026-07-28", ...
    out_dir: Path
    scenarios: dict[str, Scenario]  # the selection, in the harness's order
    unscored: dict[str, Scenario] = field(default_factory=dict)  # run but not in the selection
    seconds: float = 0.0

    @property
    def passed(self) -> list[str]:
        return [name for name, result in self.scenarios.items() if result.passed]

    @property
    def failed(self) -> list[str]:
        return [name for name, result in self.scenarios.items() if not result.passed]

    def summary(self) -> str:
        return f"{len(self.passed)} passed, {len(self.failed)} failed"

    def lines(self) -> list[str]:
        """A readable per-scenario report whose last line is ``N passed, M failed``."""
        out = [
            f"harness:   {HARNESS_PACKAGE}@{self.harness} (client SDK {CLIENT_SDK})",
            f"server:    {self.url}",
            f"selection: {self.selection} ({len(self.scenarios)} scenarios)",
            "",
        ]
        out += [_scenario_line(result) for result in self.scenarios.values()]
        if self.unscored:
            out += ["", "run but not scored for this selection:"]
            out += ["  " + _scenario_line(result) for result in self.unscored.values()]
        totals = {
            s: sum(r.count(s) for r in self.scenarios.values())
            for s in ("SUCCESS", "FAILURE", "WARNING")
        }
        out += [
            "",
            f"checks: {totals['SUCCESS']} ok, {totals['FAILURE']} failed, "
            f"{totals['WARNING']} warnings; {self.seconds:.1f} s; raw results: {self.out_dir}",
            self.summary(),
        ]
        return out


def _scenario_line(result: Scenario) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    line = f"{verdict}  {result.name:<46} {result.count('SUCCESS'):3} ok {len(result.failures):3} failed"
    if result.warnings:
        line += f" {len(result.warnings):3} warn"
    if result.error is not None:
        return f"{line}  -- {result.error}"
    notes = result.failures or result.warnings
    return line + "".join(f"\n      {_one_line(str(check), 200)}" for check in notes)


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_checks(path: Path) -> tuple[Check, ...]:
    raw = json.loads(path.read_text())
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of checks")
    return tuple(
        Check(
            id=str(item.get("id", "")),
            name=str(item.get("name", "")),
            status=str(item.get("status", "")),
            message=str(item.get("errorMessage") or item.get("description") or ""),
        )
        for item in raw
        if isinstance(item, dict)
    )


def collect_results(directory: Path) -> dict[str, Path]:
    """Scenario name -> checks.json, for every result the harness wrote under ``directory``."""
    found: dict[str, Path] = {}
    for checks in sorted(directory.glob("*/checks.json")):
        match = _RESULT_DIR.match(checks.parent.name)
        if match:
            found[match["name"]] = checks
    return found


def _scenario_from(name: str, path: Path) -> Scenario:
    try:
        return Scenario(name, read_checks(path), path=path)
    except (OSError, ValueError) as exc:
        return Scenario(name, error=f"unreadable result: {exc}", path=path)


# ------------------------------------------------------------------------------- install ---
def cache_root() -> Path:
    explicit = os.environ.get("MCPD_CONFORMANCE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcpd-conformance"


@contextlib.contextmanager
def _cache_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache, so parallel runs never install over each other."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _package_version(prefix: Path, package: str) -> str | None:
    try:
        data = json.loads((prefix / "node_modules" / package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else None


def _npm_install(
    dest: Path,
    specs: Sequence[str],
    overrides: dict[str, str],
    problem: Callable[[Path], str | None],
) -> None:
    """Make ``dest`` an npm prefix holding ``specs``, unless ``problem(dest)`` finds none.

    The install goes into a temporary directory next to ``dest`` that then replaces it, all
    under the cache lock: a run never sees a half-installed tree, and two runs that both find
    the cache cold install it only once.
    """
    if problem(dest) is None:
        return
    with _cache_lock(dest.parent):
        if problem(dest) is None:  # another process installed it while we waited
            return
        npm = shutil.which("npm")
        if npm is None:
            raise ConformanceError(
                f"npm not found: it is needed once to install {' '.join(specs)} into {dest}"
            )
        scratch = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            scratch.chmod(0o755)
            manifest = {"name": "mcpd-conformance-cache", "private": True, "overrides": overrides}
            (scratch / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
            command = [npm, "install", "--prefix", str(scratch), "--no-audit", "--no-fund"]
            command += ["--ignore-scripts", "--save-exact", "--loglevel=error", *specs]
            print(f"conformance: installing {' '.join(specs)} into {dest}", file=sys.stderr)
            try:
                done = subprocess.run(
                    command,
                    cwd=scratch,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise ConformanceError(
                    f"npm install {' '.join(specs)} took over {INSTALL_TIMEOUT:g} s"
                ) from None
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
                raise ConformanceError(f"npm install {' '.join(specs)} failed:\n{tail}")
            wrong = problem(scratch)
            if wrong is not None:
                raise ConformanceError(f"npm install {' '.join(specs)}: {wrong}")
            if dest.exists():
                shutil.rmtree(dest)
            scratch.rename(dest)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def node_major(binary: str | Path) -> int:
    """The major version of a Node binary, or 0 when it does not run."""
    try:
        done = subprocess.run(
            [str(binary), "-p", "process.versions.node"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return int(done.stdout.strip().split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0


def find_node(root: Path | None = None) -> Path:
    """A Node >= 22: ``MCPD_CONFORMANCE_NODE``, else ``node`` on PATH, else the pinned npm build."""
    explicit = os.environ.get("MCPD_CONFORMANCE_NODE")
    if explicit:
        if node_major(explicit) < NODE_MIN_MAJOR:
            raise ConformanceError(
                f"MCPD_CONFORMANCE_NODE={explicit} is not Node >= {NODE_MIN_MAJOR}"
            )
        return Path(explicit)
    system = shutil.which("node")
    if system is not None and node_major(system) >= NODE_MIN_MAJOR:
        return Path(system)
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    if not sys.platform.startswith("linux") or arch is None:
        raise ConformanceError(
            f"no Node >= {NODE_MIN_MAJOR} on PATH and no npm build of Node for "
            f"{sys.platform}/{platform.machine()}; set MCPD_CONFORMANCE_NODE"
        )
    package = f"node-linux-{arch}"
    dest = (root or cache_root()) / f"node-{NODE_VERSION}-linux-{arch}"
    binary = dest / "node_modules" / package / "bin" / "node"

    def problem(prefix: Path) -> str | None:
        if _package_version(prefix, package) != NODE_VERSION:
            return f"{package}@{NODE_VERSION} is not installed"
        return None

    _npm_install(dest, [f"{package}@{NODE_VERSION}"], {}, problem)
    if node_major(binary) < NODE_MIN_MAJOR:
        raise ConformanceError(f"{binary} does not run as Node >= {NODE_MIN_MAJOR}")
    return binary


def _harness_problem(version: str) -> Callable[[Path], str | None]:
    def problem(prefix: Path) -> str | None:
        if _package_version(prefix, HARNESS_PACKAGE) != version:
            return f"{HARNESS_PACKAGE}@{version} is not installed"
        sdk = _package_version(prefix, SDK_PACKAGE)
        nested = prefix / "node_modules" / HARNESS_PACKAGE / "node_modules" / SDK_PACKAGE
        if sdk != CLIENT_SDK or nested.exists():
            return f"the harness does not use {SDK_PACKAGE}@{CLIENT_SDK} (found {sdk})"
        return None

    return problem


# ------------------------------------------------------------------------------- running ---
def check_reachable(url: str, timeout: float = REACHABLE_TIMEOUT) -> None:
    """Raise :class:`Unreachable` unless something answers HTTP at ``url`` (any status)."""
    if not url.startswith(("http://", "https://")):
        raise ConformanceError(f"the URL must start with http:// or https:// (got {url!r})")
    request = urllib.request.Request(
        url, headers={"accept": "application/json, text/event-stream"}, method="GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass  # an HTTP status, whatever it is, means a server is there
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"nothing answers at {url}: {exc}") from None


def _run_bounded(command: Sequence[str], timeout: float, log: Path) -> int | None:
    """Run ``command`` with output to ``log``; its exit status, or None if it timed out.

    It runs in a process group of its own, so a timeout kills whatever it started too.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return _one_line(lines[-1], 200)
    return ""


@dataclass(frozen=True)
class Harness:
    """An installed harness and the Node that runs it."""

    version: str
    node: Path
    script: Path

    @classmethod
    def install(cls, version: str = HARNESS_LATEST, root: Path | None = None) -> Harness:
        """Install (once, cached) the harness ``version`` with the pinned SDK, and find Node."""
        root = root or cache_root()
        prefix = root / version
        _npm_install(
            prefix,
            [f"{HARNESS_PACKAGE}@{version}"],
            {SDK_PACKAGE: CLIENT_SDK},
            _harness_problem(version),
        )
        script = prefix / "node_modules" / HARNESS_PACKAGE / "dist" / "index.js"
        if not script.is_file():
            raise ConformanceError(f"the harness is installed but {script} is missing")
        return cls(version, find_node(root), script)

    def command(self, *args: str) -> list[str]:
        return [str(self.node), str(self.script), *args]

    def list_scenarios(
        self, *, requirements: str | None = None, spec_version: str | None = None
    ) -> list[str]:
        """The server scenarios of a selection, in the harness's order, as it lists them."""
        args = ["list", "--server", *_selection_args(requirements, spec_version)]
        try:
            done = subprocess.run(
                self.command(*args),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ConformanceError(f"harness {' '.join(args)} did not finish in 60 s") from None
        if done.returncode != 0:
            raise ConformanceError(
                f"harness {self.version} {' '.join(args)} failed: {(done.stdout + done.stderr).strip()}"
            )
        return parse_server_list(done.stdout)

    def run(
        self,
        url: str,
        *,
        requirements: str | None = None,
        spec_version: str | None = None,
        scenarios: Sequence[str] = (),
        out_dir: Path | None = None,
        batch_timeout: float = BATCH_TIMEOUT,
        scenario_timeout: float = SCENARIO_TIMEOUT,
        max_timeouts: int = MAX_TIMEOUTS,
    ) -> Report:
        """Run a selection against ``url``: by default every server scenario it lists.

        One harness process runs the whole selection. Any scenario that left no result is then
        re-run on its own under ``scenario_timeout``; after ``max_timeouts`` timeouts in a row
        the rest fail without running, so a hung server costs a bounded time. Naming
        ``scenarios`` runs just those, each on its own.
        """
        if requirements and spec_version:
            raise ConformanceError("give a requirement set or a spec version, not both")
        check_reachable(url)
        listed = self.list_scenarios(requirements=requirements, spec_version=spec_version)
        if not listed:
            raise ConformanceError(
                f"the harness lists no server scenarios for {requirements or spec_version}"
            )
        unknown = [name for name in scenarios if name not in listed]
        if unknown:
            raise ConformanceError(f"not server scenarios of this selection: {', '.join(unknown)}")
        wanted = list(scenarios) or listed
        out = out_dir or Path(tempfile.mkdtemp(prefix="mcpd-conformance-"))
        out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()

        found: dict[str, Path] = {}
        if not scenarios:
            batch = out / "batch"
            command = self.command("server", "--url", url, "-o", str(batch))
            command += _selection_args(requirements, spec_version, batch=True)
            _run_bounded(command, batch_timeout, out / "batch.log")
            found = collect_results(batch)

        errors: dict[str, str] = {}
        wire = requirements or spec_version
        in_a_row = 0
        for name in wanted:
            if name in found:
                continue
            if max_timeouts and in_a_row >= max_timeouts:
                errors[name] = f"not run: {in_a_row} scenarios in a row timed out before it"
                continue
            single = out / "single" / name.replace("/", "_")
            command = self.command("server", "--url", url, "--scenario", name, "-o", str(single))
            command += ["--spec-version", wire] if wire else []
            status = _run_bounded(command, scenario_timeout, single / "harness.log")
            in_a_row = in_a_row + 1 if status is None else 0
            result = collect_results(single).get(name)
            if result is not None:
                found[name] = result
            elif status is None:
                errors[name] = f"no result: timed out after {scenario_timeout:g} s"
            else:
                last = _last_line(single / "harness.log")
                errors[name] = f"no result (harness exit {status}): {last}"

        results = {
            name: _scenario_from(name, found[name])
            if name in found
            else Scenario(name, error=errors[name])
            for name in wanted
        }
        unscored = {
            name: _scenario_from(name, path) for name, path in found.items() if name not in results
        }
        return Report(
            harness=self.version,
            url=url,
            selection=describe_selection(requirements, spec_version, scenarios),
            out_dir=out,
            scenarios=results,
            unscored=unscored,
            seconds=time.monotonic() - started,
        )


def _selection_args(
    requirements: str | None, spec_version: str | None, *, batch: bool = False
) -> list[str]:
    if requirements:  # the 0.2 harness: exactly the scenarios a revision requires, at its wire
        return ["--requirements", requirements]
    args = ["--suite", "all"] if batch else []
    return args + (["--spec-version", spec_version] if spec_version else [])


def describe_selection(
    requirements: str | None = None, spec_version: str | None = None, scenarios: Sequence[str] = ()
) -> str:
    if requirements:
        text = f"requirements {requirements}"
    elif spec_version:
        text = f"suite all, spec {spec_version}"
    else:
        text = "suite all"
    return f"{text}, only {', '.join(scenarios)}" if scenarios else text


def parse_server_list(text: str) -> list[str]:
    """Scenario names from the "Server scenarios" block of ``conformance list`` output.

    Entries are ``  - name`` lines, optionally followed by ``[spec versions]``; the block ends
    at the first line that is not one.
    """
    names: list[str] = []
    inside = False
    for line in text.splitlines():
        if not inside:
            inside = line.startswith("Server scenarios")
            continue
        if not line.startswith("  - "):
            break
        names.append(line[4:].split()[0])
    return names


# ---------------------------------------------------------------------------------- script ---
def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="runner.py",
        description="Run the MCP conformance suite's server scenarios against a running server.",
    )
    parser.add_argument(
        "url", nargs="?", help="the server's Streamable HTTP endpoint (use 127.0.0.1)"
    )
    parser.add_argument(
        "--version", default=HARNESS_LATEST, help=f"harness version (default {HARNESS_LATEST})"
    )
    parser.add_argument(
        "--requirements", metavar="REV", help="0.2 harness: the scenarios revision REV requires"
    )
    parser.add_argument("--spec-version", metavar="REV", help="only the scenarios tagged for REV")
    parser.add_argument(
        "--scenario", metavar="NAME", nargs="+", action="extend", default=[], help="run only these"
    )
    parser.add_argument(
        "--out", type=Path, help="directory for raw results (default: a new temp dir)"
    )
    parser.add_argument("--batch-timeout", type=float, default=BATCH_TIMEOUT, metavar="S")
    parser.add_argument(
        "--timeout", type=float, default=SCENARIO_TIMEOUT, metavar="S", help="per scenario re-run"
    )
    parser.add_argument("--max-timeouts", type=int, default=MAX_TIMEOUTS, metavar="N")
    parser.add_argument(
        "--list", action="store_true", help="list the selection's scenarios and exit"
    )
    parser.add_argument(
        "--install", action="store_true", help="install the harness and Node, then exit"
    )
    args = parser.parse_args(argv)
    if not (args.url or args.list or args.install):
        parser.error("a URL is needed (or --list / --install)")
    if args.requirements and args.spec_version:
        parser.error("give --requirements or --spec-version, not both")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        harness = Harness.install(args.version)
        if args.install:
            print(f"harness: {harness.script}\nnode:    {harness.node}")
            return 0
        if args.list:
            names = harness.list_scenarios(
                requirements=args.requirements, spec_version=args.spec_version
            )
            print("\n".join(names))
            return 0
        report = harness.run(
            args.url,
            requirements=args.requirements,
            spec_version=args.spec_version,
            scenarios=args.scenario,
            out_dir=args.out,
            batch_timeout=args.batch_timeout,
            scenario_timeout=args.timeout,
            max_timeouts=args.max_timeouts,
        )
    except Unreachable as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 3
    except ConformanceError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
