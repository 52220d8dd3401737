"""The official MCP conformance suite against a real daemon serving the fixture plugin.

Three selections, each run once per session (see conftest.py): the latest harness's full
server suite, and the prerelease harness's frozen requirement sets for 2025-11-25 and for the
2026-07-28 wire. There is one test per scenario, named after it; the scenario names come from
the harness's own listing of the selection, and a test per selection pins how many there are,
so a harness that silently dropped scenarios would not pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pytest
from conformance.runner import (
    HARNESS_LATEST,
    HARNESS_PRERELEASE,
    ConformanceError,
    Harness,
    Report,
    describe_selection,
)

pytestmark = pytest.mark.conformance


@dataclass(frozen=True)
class Selection:
    harness: str
    requirements: str | None  # a frozen requirement set (0.2 harness); None: --suite all
    expected: int  # how many server scenarios the harness lists for it

    @property
    def id(self) -> str:
        return f"{self.harness}-{self.requirements or 'all'}"

    def __str__(self) -> str:
        return f"harness {self.harness}, {describe_selection(self.requirements)}"


SELECTIONS = (
    Selection(HARNESS_LATEST, None, 32),  # 30 active + 2 pending scenarios
    Selection(HARNESS_PRERELEASE, "2025-11-25", 30),
    Selection(HARNESS_PRERELEASE, "2026-07-28", 37),
)


@cache
def listing(selection: Selection) -> list[str] | str:
    """The selection's scenario names as the harness lists them, or why they cannot be had."""
    try:
        return Harness.install(selection.harness).list_scenarios(
            requirements=selection.requirements
        )
    except ConformanceError as exc:
        return str(exc)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One ``test_scenario`` per scenario the harness lists; ``test_selection`` per selection.

    Listing needs the harness, so the first collection installs it (cached afterwards). If it
    cannot be installed, a single test per selection stands in and fails with the reason.
    """
    if "scenario" in metafunc.fixturenames:
        params = []
        for selection in SELECTIONS:
            names = listing(selection)
            if isinstance(names, str):
                params.append(pytest.param(selection, None, id=f"{selection.id}:unavailable"))
            else:
                params += [
                    pytest.param(selection, name, id=f"{selection.id}:{name}") for name in names
                ]
        metafunc.parametrize(("selection", "scenario"), params)
    elif "selection" in metafunc.fixturenames:
        metafunc.parametrize("selection", SELECTIONS, ids=[s.id for s in SELECTIONS])


def _listed(selection: Selection) -> list[str]:
    names = listing(selection)
    if isinstance(names, str):
        pytest.fail(f"cannot list the scenarios of {selection}: {names}", pytrace=False)
    return names


def test_selection(selection: Selection) -> None:
    names = _listed(selection)
    assert len(names) == selection.expected, (
        f"{selection}: the harness lists {len(names)} server scenarios, expected "
        f"{selection.expected}: {names}"
    )
    assert len(set(names)) == len(names), f"{selection}: duplicate scenario names"


def test_scenario(
    selection: Selection,
    scenario: str | None,
    conformance_report: Callable[[str, str | None], Report],
) -> None:
    if scenario is None:
        _listed(selection)  # fails with the reason the harness is unavailable
        return
    report = conformance_report(selection.harness, selection.requirements)
    result = report.scenarios.get(scenario)
    assert result is not None, f"{scenario} is missing from the report of {selection}"
    if result.passed:
        return
    lines = [f"{scenario} failed ({selection}):"]
    if result.error is not None:
        lines.append(f"  {result.error}")
    lines += [f"  {check.id}: {check.message}" for check in result.failures]
    lines.append(f"raw results: {result.path or report.out_dir}")
    pytest.fail("\n".join(lines), pytrace=False)
