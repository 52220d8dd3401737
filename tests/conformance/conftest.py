"""Fixtures for the conformance tests.

The fixture plugin (``plugins/mcpd-conformance``, the tools, resources and prompts the
scenarios call by name) is really pip-installed, a real daemon serves it on a loopback port,
and each harness selection runs once per session; the tests then read its report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest
from conformance.runner import ConformanceError, Harness, Report, describe_selection
from support.daemon import Daemon, write_config
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "mcpd-conformance"
PLUGIN_NAME = "conformance"  # its entry point name


@cache
def harness(version: str) -> Harness:
    """The installed harness (installed on first use; raises ConformanceError if it cannot be)."""
    return Harness.install(version)


class Runs:
    """Each (harness version, requirement set) run once against the daemon, on first demand."""

    def __init__(self, url: str, out: Path) -> None:
        self.url = url
        self.out = out
        self.reports: dict[tuple[str, str | None], Report | ConformanceError] = {}

    def report(self, version: str, requirements: str | None) -> Report:
        key = (version, requirements)
        if key not in self.reports:
            out = self.out / f"{version}-{requirements or 'all'}"
            try:
                self.reports[key] = harness(version).run(
                    self.url, requirements=requirements, out_dir=out
                )
            except ConformanceError as exc:
                self.reports[key] = exc
        result = self.reports[key]
        if isinstance(result, ConformanceError):
            pytest.fail(
                f"the conformance suite {version} ({describe_selection(requirements)}) "
                f"could not run: {result}",
                pytrace=False,
            )
        return result


_RUNS = pytest.StashKey[Runs]()


@pytest.fixture(scope="session")
def conformance_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon serving just the conformance fixture plugin, really pip-installed."""
    if not (PLUGIN / "pyproject.toml").is_file():
        pytest.fail(f"{PLUGIN} is missing: the conformance tests need the fixture plugin")
    site = tmp_path_factory.mktemp("conformance-site")
    install_plugins(site, PLUGIN)
    # The embedded defaults, except: an ephemeral loopback port (the dns-rebinding scenario
    # needs a loopback URL), a short shutdown grace, and only the fixture plugin, so that the
    # run does not depend on which other plugins the environment happens to have installed.
    config = write_config(
        tmp_path_factory.mktemp("conformance-cfg") / "mcpd.toml",
        f"""
[server]
listen = ["127.0.0.1:0"]
shutdown_grace_seconds = 2

[plugins]
enable = ["{PLUGIN_NAME}"]
""",
    )
    daemon = Daemon.start(config, pythonpath=site)
    yield daemon
    status = daemon.stop()
    assert status == 0, f"the daemon exited with {status}:\n{''.join(daemon.raw[-40:])}"


@pytest.fixture(scope="session")
def conformance_report(
    request: pytest.FixtureRequest,
    conformance_daemon: Daemon,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, str | None], Report]:
    """``conformance_report(harness_version, requirements)``: that run's report, run once."""
    runs = Runs(conformance_daemon.url, tmp_path_factory.mktemp("conformance-results"))
    request.config.stash[_RUNS] = runs
    return runs.report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    runs = terminalreporter.config.stash.get(_RUNS, None)
    if runs is None or not runs.reports:
        return
    terminalreporter.section("MCP conformance suite")
    for (version, requirements), report in runs.reports.items():
        what = f"{version} {describe_selection(requirements)}"
        if isinstance(report, ConformanceError):
            terminalreporter.write_line(f"{what}: could not run: {report}")
        else:
            terminalreporter.write_line(
                f"{what}: {report.summary()} ({report.seconds:.1f} s; {report.out_dir})"
            )
