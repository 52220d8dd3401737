"""Registry scale: loading is linear in the number of tools, duplicates are still caught at any
size, and no log event grows with the registry.

Work is counted, not timed: ``sys.setprofile`` counts every Python call (generator resumes
included) made while a registry loads. The plugins are ``mcpd-fixture-scale``'s, in an
entry-point group of their own, serving as many tools as their settings ask for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, MutableMapping
from types import FrameType
from typing import Any

import pytest
from structlog.testing import capture_logs

from mcpd.plugin.loader import LOGGED_NAMES
from mcpd.plugin.registry import Registry, load_registry

pytestmark = pytest.mark.usefixtures("installed")
GROUP = "mcpd.scale"


def load(many: int, rival: int = 0, **extra: Any) -> Registry:
    settings = {"many": {"count": many, **extra}, "rival": {"count": rival}}
    return load_registry(enable=None, disable=(), plugin_settings=settings, group=GROUP)


def calls_during(work: Callable[[], object]) -> int:
    """How many Python-level calls ``work`` makes."""
    count = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        work()
    finally:
        sys.setprofile(None)
    return count


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs() as captured:
        yield captured


def test_loading_does_work_linear_in_the_number_of_tools() -> None:
    load(10)  # imports and caches out of the way
    small = calls_during(lambda: load(1_000))
    large = calls_during(lambda: load(4_000))
    # Four times the tools: about four times the calls (a quadratic check would be ~16x).
    assert large < 4.5 * small, (small, large)


def test_a_large_registry_loads_every_tool() -> None:
    registry = load(5_000)
    assert len(registry.tools) == 5_000
    assert registry.get("tool_04999") is not None
    assert {p.name: p.state for p in registry.plugins} == {"many": "loaded", "rival": "loaded"}


def test_a_duplicate_in_a_large_plugin_is_still_caught() -> None:
    registry = load(5_000, duplicate=True)
    many = {p.name: p for p in registry.plugins}["many"]
    assert many.state == "failed"
    assert many.error == "register_tools returned two tools named 'tool_00000'"
    assert len(registry.tools) == 0


def test_a_name_another_plugin_serves_is_still_caught() -> None:
    registry = load(5_000, rival=3)
    rival = {p.name: p for p in registry.plugins}["rival"]
    assert rival.state == "failed"
    assert rival.error == "tool 'tool_00000' is already served by plugin 'many'"
    assert len(registry.tools) == 5_000


def test_no_log_event_grows_with_the_registry(logs: list[MutableMapping[str, Any]]) -> None:
    load(5_000)
    (loaded,) = [e for e in logs if e["event"] == "plugin.loaded" and e["plugin"] == "many"]
    assert loaded["tools"] == 5_000
    assert loaded["tool_names"] == [f"tool_{n:05d}" for n in range(LOGGED_NAMES)]
    assert all(len(repr(entry)) < 2_000 for entry in logs)
