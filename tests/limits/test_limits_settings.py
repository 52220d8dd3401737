"""The [limits] table: defaults as documented, errors naming the dotted key, config layers."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from mcpd.config import ConfigError, load_config, load_settings
from mcpd.config_show import render_json
from mcpd.limits.settings import LimitsSettings, ToolRule

ROOT = Path(__file__).resolve().parents[2]


def json_as_toml(table: dict[str, object]) -> str:
    """A ``[limits]`` table as TOML: inline values, ``tools`` as [[limits.tools]] when a list
    of tables (the tests' tables hold nothing TOML cannot write this way)."""
    lines = ["[limits]"]
    rules = table.get("tools")
    for key, value in table.items():
        if key == "tools" and isinstance(rules, list) and all(isinstance(r, dict) for r in rules):
            continue
        lines.append(f"{key} = {_toml(value)}")
    if isinstance(rules, list) and all(isinstance(r, dict) for r in rules):
        for rule in rules:
            lines.append("[[limits.tools]]")
            lines += [f"{k} = {_toml(v)}" for k, v in rule.items()]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == float("inf"):
        return "inf"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def test_embedded_defaults_equal_the_model_defaults() -> None:
    defaults = tomllib.loads((ROOT / "mcpd" / "defaults.toml").read_text())["limits"]
    assert LimitsSettings.model_validate(defaults) == LimitsSettings()
    assert load_settings(environ={}).limits == LimitsSettings()
    assert set(defaults) == set(LimitsSettings.model_fields)


def test_every_key_is_documented_in_the_example_config() -> None:
    example = (ROOT / "etc" / "mcpd.toml").read_text()
    assert "[limits]" in example
    assert "[[limits.tools]]" in example
    for key in [*LimitsSettings.model_fields, *ToolRule.model_fields]:
        assert f"# {key} = " in example, key


def test_the_commented_example_rule_parses() -> None:
    example = (ROOT / "etc" / "mcpd.toml").read_text()
    start = example.index("# [[limits.tools]]")
    lines = example[start:].split("\n\n", 1)[0].splitlines()
    toml = "\n".join(line.removeprefix("# ") for line in lines).replace("[[limits.tools]]", "")
    rule = ToolRule.model_validate(tomllib.loads(toml))
    assert rule.matches("search_web")
    assert rule.matches("fetch")
    assert not rule.matches("fetcher")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"requests_per_second": -1}, "f: limits.requests_per_second: Input should be greater"),
        ({"burst": True}, "f: limits.burst: Input should be a valid integer, got True"),
        ({"burst": 0}, "f: limits.burst: Input should be greater than or equal to 1"),
        ({"queue_timeout_seconds": "5"}, "f: limits.queue_timeout_seconds: Input should be a"),
        ({"handshake_burst": 2.5}, "f: limits.handshake_burst: Input should be a valid integer"),
        ({"brust": 5}, "f: limits.brust: unknown key (did you mean 'burst'?); known keys:"),
        ({"error_code": -32002}, "f: limits.error_code: is a code MCP or mcpd already uses"),
        ({"error_code": -32603}, "f: limits.error_code: must be in the JSON-RPC server-error"),
        ({"tools": {"tools": ["a"]}}, "f: limits.tools: expected [[limits.tools]] tables"),
        ({"tools": [{"rate": 1}]}, "f: limits.tools[0].tools: required key is missing"),
        ({"tools": [{"tools": "a*"}]}, "f: limits.tools[0].tools: expected a list of tool-name"),
        ({"tools": [{"tools": []}]}, "f: limits.tools[0].tools: Tuple should have at least 1"),
        ({"tools": [{"tools": ["a"]}, {"tools": [3]}]}, "f: limits.tools[1].tools[0]: Input"),
        ({"tools": [{"tools": ["a"], "rate": float("inf")}]}, "f: limits.tools[0].rate: Input"),
        (
            {"tools": [{"tools": ["a"], "max_concurent": 2}]},
            "f: limits.tools[0].max_concurent: unknown key (did you mean 'max_concurrent'?)",
        ),
    ],
)
def test_errors_name_the_dotted_key(tmp_path: Path, table: dict[str, object], message: str) -> None:
    config = tmp_path / "f"
    config.write_text(json_as_toml(table))
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    # "<file>: <dotted key>: ..." from the one formatter every nested table shares
    dotted_key, _, detail = message.removeprefix("f: ").partition(": ")
    assert str(caught.value).startswith(f"{config}: {dotted_key}: ")
    if not detail.startswith("Input should"):  # pydantic's own wording is not ours to pin
        assert detail in str(caught.value)


def test_settings_are_frozen() -> None:
    settings = LimitsSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.burst = 5  # type: ignore[misc]


def test_another_code_may_be_chosen() -> None:
    assert LimitsSettings.model_validate({"error_code": -32023}).error_code == -32023


def test_layers_replace_top_level_keys(tmp_path: Path) -> None:
    system = tmp_path / "etc"
    (system / "mcpd.toml.d").mkdir(parents=True)
    (system / "mcpd.toml").write_text(
        "[limits]\nrequests_per_second = 5.0\n\n"
        '[[limits.tools]]\ntools = ["glob"]\nrate = 1.0\n\n'
        '[[limits.tools]]\ntools = ["grep"]\nmax_concurrent = 2\n'
    )
    (system / "mcpd.toml.d" / "50-tools.toml").write_text(
        '[limits]\nburst = 7\n\n[[limits.tools]]\ntools = ["fetch"]\nrate = 0.5\n'
    )
    loaded = load_config(environ={"CONFIGURATION_DIRECTORY": str(system)})
    limits = loaded.settings.limits
    assert (limits.requests_per_second, limits.burst) == (5.0, 7)  # merged key by key
    assert [rule.tools for rule in limits.tools] == [("fetch",)]  # the list replaced whole
    assert limits.handshakes_per_second == LimitsSettings().handshakes_per_second
    shown = json.loads(render_json(loaded))["config"]["limits"]
    assert shown["burst"]["origin"].endswith("50-tools.toml")
    assert shown["requests_per_second"]["origin"].endswith("mcpd.toml")
    assert shown["tools"]["value"] == [{"tools": ["fetch"], "rate": 0.5}]


def test_a_bad_limits_key_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mcpd.toml"
    path.write_text('[[limits.tools]]\ntools = ["glob"]\nrate = -1\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value).startswith(f"{path}: limits.tools[0].rate: Input should be greater")


def test_limits_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "mcpd.toml"
    path.write_text("limits = 3\n")
    with pytest.raises(ConfigError, match=r"limits: expected a table"):
        load_config(path, environ={})
