"""Loading real, pip-installed plugins: the good ones load, each broken one is isolated."""

from __future__ import annotations

from collections.abc import Collection, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from mcpd.plugin.registry import PluginRecord, Registry, load_registry
from mcpd.plugin.testing import call_tool

FIXTURE_TOOLS = {
    "echo",
    "echo_sync",
    "add",
    "slow",
    "blocking",
    "forever",
    "fail",
    "crash",
    "chatty",
    "picture",
    "settings_echo",
    "touch",
    "announce",
    "ask_name",
    "ask_model",
    "ask_roots",
    "ask_three",
    "ask_twice",
    "wait_for_answer",
    "isolated_pid",
    "isolated_spin",
    "isolated_spin_briefly",
    "isolated_progress",
    "isolated_lock",
    "isolated_exit",
    "isolated_fail",
    "block_loop",
}
EXAMPLE_TOOLS = {
    "hash_text",
    "text_stats",
    "unified_diff",
    "json_format",
    "json_query",
    "time_now",
    "countdown",
}
# entry point -> (distribution, what the recorded error must mention)
BROKEN = {
    "broken_import": ("mcpd-fixture-broken-import", "ModuleNotFoundError"),
    "bad_hook": ("mcpd-fixture-bad-hook", "register_tool"),
    "raising_hook": ("mcpd-fixture-raising-hook", "no api_key"),
    "zz_duplicate": ("mcpd-fixture-duplicate", "'echo' is already served by plugin 'fixture'"),
    "bad_signature": ("mcpd-fixture-misbehaving", "must be passable by keyword"),
    "bad_tool_name": ("mcpd-fixture-misbehaving", "invalid tool name 'has spaces!'"),
    "no_hookimpl": ("mcpd-fixture-misbehaving", "@mcpd.hookimpl"),
    "not_a_tool": ("mcpd-fixture-misbehaving", "returned a function, not an @mcpd.tool"),
    "unknown_argument": ("mcpd-fixture-misbehaving", "config"),
    "hook_wrapper": ("mcpd-fixture-misbehaving", "must not be a hook wrapper"),
    "not_a_module": ("mcpd-fixture-misbehaving", "entry point must name a module"),
    "same_name_twice": ("mcpd-fixture-misbehaving", "two tools named 'twin'"),
    "exit_at_import": ("mcpd-fixture-misbehaving", "SystemExit: this plugin gives up at import"),
    "base_in_hook": ("mcpd-fixture-misbehaving", "Fatal: the hook gave up"),
}


def load(
    enable: Collection[str] | None = None,
    disable: Collection[str] = (),
    settings: dict[str, dict[str, Any]] | None = None,
) -> Registry:
    return load_registry(enable=enable, disable=disable, plugin_settings=settings or {})


def records(registry: Registry) -> dict[str, PluginRecord]:
    return {record.name: record for record in registry.plugins}


@pytest.fixture
def logs(installed: Path) -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs() as captured:
        yield captured


@pytest.mark.usefixtures("installed")
def test_good_plugins_load_and_their_tools_are_attributed() -> None:
    registry = load()
    plugins = records(registry)
    assert plugins["fixture"].state == "loaded"
    assert plugins["fixture"].distribution == "mcpd-fixture-tools"
    assert plugins["fixture"].version == "1.0.0"
    assert set(plugins["fixture"].tools) == FIXTURE_TOOLS
    assert plugins["example"].state == "loaded"
    assert set(plugins["example"].tools) == EXAMPLE_TOOLS
    assert set(registry.tools) >= FIXTURE_TOOLS | EXAMPLE_TOOLS


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_plugin_is_recorded_with_its_distribution(name: str) -> None:
    distribution, reason = BROKEN[name]
    record = records(load())[name]
    assert record.state == "failed"
    assert record.distribution == distribution
    assert record.error is not None
    assert reason in record.error
    assert record.tools == ()


@pytest.mark.usefixtures("installed")
def test_a_rejected_plugin_contributes_none_of_its_tools() -> None:
    registry = load()
    assert "duplicate_only" not in registry.tools
    assert "never_listed" not in registry.tools
    assert "forgotten" not in registry.tools


@pytest.mark.usefixtures("installed")
async def test_the_first_plugin_keeps_a_duplicated_name() -> None:
    echo = load().get("echo")
    assert echo is not None
    assert (await call_tool(echo, {"text": "quiet"}))["content"][0]["text"] == "quiet"


def test_failures_and_successes_are_logged(logs: list[MutableMapping[str, Any]]) -> None:
    load()
    failed = {entry["plugin"]: entry for entry in logs if entry["event"] == "plugin.load_failed"}
    assert set(BROKEN) <= set(failed)
    for name, (distribution, _) in BROKEN.items():
        assert failed[name]["distribution"] == distribution
        assert failed[name]["log_level"] == "error"
        assert failed[name]["error"]
        assert "exc_info" not in failed[name]  # no tracebacks (their locals may hold secrets)
    loaded = [entry for entry in logs if entry["event"] == "plugin.loaded"]
    assert {"fixture", "example"} <= {entry["plugin"] for entry in loaded}


@pytest.mark.usefixtures("installed")
def test_failure_points_at_the_plugins_own_line() -> None:
    error = records(load())["raising_hook"].error or ""
    assert "mcpd_fixture_raising_hook.py:13" in error


@pytest.mark.usefixtures("installed")
def test_disable_by_entry_point_or_distribution_name() -> None:
    registry = load(disable=["fixture", "mcpd_fixture_misbehaving"])
    plugins = records(registry)
    assert plugins["fixture"].state == "disabled"
    assert plugins["bad_signature"].state == "disabled"
    assert plugins["not_a_tool"].state == "disabled"
    assert plugins["example"].state == "loaded"


@pytest.mark.usefixtures("installed")
def test_disabling_the_first_owner_lets_the_next_plugin_serve_the_name() -> None:
    registry = load(disable=["fixture"])
    assert records(registry)["zz_duplicate"].state == "loaded"
    assert {"echo", "duplicate_only"} <= set(registry.tools)


@pytest.mark.usefixtures("installed")
def test_enable_is_an_allow_list() -> None:
    registry = load(enable=["example", "mcpd-fixture-tools"])
    states = {name: record.state for name, record in records(registry).items()}
    assert states["example"] == states["fixture"] == "loaded"
    assert {state for name, state in states.items() if name not in ("example", "fixture")} == {
        "disabled"
    }
    assert set(registry.tools) == FIXTURE_TOOLS | EXAMPLE_TOOLS


@pytest.mark.usefixtures("installed")
def test_disable_wins_over_enable() -> None:
    registry = load(enable=["fixture"], disable=["fixture"])
    assert records(registry)["fixture"].state == "disabled"
    assert registry.tools == {}


@pytest.mark.usefixtures("installed")
async def test_each_plugin_gets_its_own_settings_table() -> None:
    settings = {"fixture": {"marker_dir": "/nowhere", "answer": 42}, "example": {}}
    settings_echo = load(settings=settings).get("settings_echo")
    assert settings_echo is not None
    result = await call_tool(settings_echo)
    assert result["structuredContent"] == {"marker_dir": "/nowhere", "answer": 42}


@pytest.mark.usefixtures("installed")
def test_bad_settings_fail_only_that_plugin() -> None:
    plugins = records(load(settings={"example": {"max_input_bytes": -1}}))
    assert plugins["example"].state == "failed"
    assert "max_input_bytes" in (plugins["example"].error or "")
    assert plugins["fixture"].state == "loaded"


@pytest.mark.usefixtures("installed")
def test_loading_is_repeatable_and_deterministic() -> None:
    first, second = load(), load()
    assert list(first.tools) == list(second.tools) == sorted(first.tools)
    assert [r.name for r in first.plugins] == sorted(r.name for r in first.plugins)
    assert first.plugins == second.plugins


@pytest.mark.usefixtures("forget_plugin_modules")
def test_plugins_installed_after_start_are_found_on_the_next_load(
    monkeypatch: pytest.MonkeyPatch, plugin_packages: Path
) -> None:
    before = load()
    assert "fixture" not in records(before)
    monkeypatch.syspath_prepend(str(plugin_packages))
    assert records(load())["fixture"].state == "loaded"


def test_an_unknown_group_loads_nothing() -> None:
    registry = load_registry(
        enable=None, disable=(), plugin_settings={}, group="mcpd-tests-no-such-group"
    )
    assert registry.plugins == ()
    assert registry.tools == {}
