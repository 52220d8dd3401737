"""The mcpd command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mcpd._version import __version__


def mcpd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpd", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_version() -> None:
    result = mcpd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mcpd {__version__}"


def test_config_check(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[tools]\npage_size = 5\n")
    result = mcpd("config", "check", "--config", str(good), env=isolated(tmp_path))
    assert result.returncode == 0
    assert result.stdout.strip() == f"OK: <embedded defaults>, {good}"


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nlisten = 5\n")
    for command in (("config", "check"), ("serve",), ("tools", "list")):
        result = mcpd(*command, "--config", str(bad))
        assert result.returncode == 2
        assert result.stderr.strip().startswith(f"mcpd: {bad}: server.listen:")
        assert "Traceback" not in result.stderr


def test_bad_listen_flag() -> None:
    result = mcpd("serve", "--listen", "nowhere")
    assert result.returncode == 2
    assert "nowhere" in result.stderr


def test_tools_and_plugins_list(tmp_path: Path) -> None:
    listed = mcpd("tools", "list", "--json")
    assert listed.returncode == 0
    tools = json.loads(listed.stdout)
    names = [tool["name"] for tool in tools]
    assert names == sorted(names)
    assert "countdown" in names  # the example plugin is installed by the test command
    plugins = json.loads(mcpd("plugins", "list", "--json").stdout)
    example = next(p for p in plugins if p["name"] == "example")
    assert example["state"] == "loaded"
    assert example["distribution"] == "mcpd-example"
    table = mcpd("plugins", "list").stdout
    assert table.splitlines()[0].split() == [
        "PLUGIN",
        "DISTRIBUTION",
        "VERSION",
        "STATE",
        "TOOLS",
        "ERROR",
    ]


def test_disabled_plugin_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "mcpd.toml"
    config.write_text('[plugins]\ndisable = ["example"]\n')
    plugins = json.loads(mcpd("plugins", "list", "--json", "--config", str(config)).stdout)
    assert next(p for p in plugins if p["name"] == "example")["state"] == "disabled"
    tools = json.loads(mcpd("tools", "list", "--json", "--config", str(config)).stdout)
    assert "countdown" not in [tool["name"] for tool in tools]


def isolated(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment with the system config directory in ``tmp_path/etc`` (maybe absent)."""
    return {**os.environ, "CONFIGURATION_DIRECTORY": str(tmp_path / "etc"), **extra}


SECRET = "cli-s3cr3t-4b7e"


def layered(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A system file with a secret, a drop-in, and an explicit file."""
    etc = tmp_path / "etc"
    (etc / "mcpd.toml.d").mkdir(parents=True)
    (etc / "mcpd.toml").write_text(
        '[tools]\npage_size = 3\n[plugin.example]\ntoken = { "$env" = "MCPD_TEST_SECRET" }\n'
    )
    drop_in = etc / "mcpd.toml.d" / "50-off.toml"
    drop_in.write_text('[plugins]\ndisable = ["example"]\n')
    explicit = tmp_path / "local.toml"
    explicit.write_text('[logging]\nlevel = "debug"\n')
    return drop_in, explicit, isolated(tmp_path, MCPD_TEST_SECRET=SECRET)


def test_config_show_names_each_origin_and_masks_secrets(tmp_path: Path) -> None:
    drop_in, explicit, env = layered(tmp_path)
    args = ("--config", str(explicit), "--listen", "127.0.0.1:9", "--log-format", "json")
    shown = mcpd("config", "show", *args, env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"page_size = 3  # {tmp_path / 'etc' / 'mcpd.toml'}" in lines
    assert f'disable = ["example"]  # {drop_in}' in lines
    assert f'level = "debug"  # {explicit}' in lines
    assert 'format = "json"  # --log-format' in lines
    assert 'listen = ["127.0.0.1:9"]  # --listen' in lines
    assert 'path = "/mcp"  # <embedded defaults>' in lines
    assert any(
        line.startswith('token = "********"  #') and "$env:MCPD_TEST_SECRET" in line
        for line in lines
    )
    as_json = mcpd("config", "show", "--json", *args, env=env)
    document = json.loads(as_json.stdout)
    assert document["files"] == [str(tmp_path / "etc" / "mcpd.toml"), str(drop_in), str(explicit)]
    assert document["config"]["plugins"]["disable"] == {
        "value": ["example"],
        "origin": str(drop_in),
    }
    checked = mcpd("config", "check", *args, env=env)
    assert checked.returncode == 0
    assert checked.stdout.strip() == f"OK: <embedded defaults>, {', '.join(document['files'])}"
    for result in (shown, as_json, checked):
        assert SECRET not in result.stdout + result.stderr


def test_config_check_fails_on_an_unresolvable_secret(tmp_path: Path) -> None:
    *_, env = layered(tmp_path)
    del env["MCPD_TEST_SECRET"]
    for command in (("config", "check"), ("config", "show"), ("serve",)):
        result = mcpd(*command, env=env)
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"mcpd: {tmp_path / 'etc' / 'mcpd.toml'}: plugin.example.token: "
            "$env 'MCPD_TEST_SECRET': the environment variable is not set"
        )
        assert result.stdout == ""


def test_config_check_fails_on_a_bad_drop_in(tmp_path: Path) -> None:
    drop_in, _, env = layered(tmp_path)
    drop_in.write_text("[plugins]\ndisabel = []\n")
    result = mcpd("config", "check", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"mcpd: {drop_in}: plugins.disabel: unknown key (did you mean 'disable'?)"
    )
    drop_in.unlink()
    missing = mcpd("config", "check", "--config", str(tmp_path / "absent.toml"), env=env)
    assert missing.returncode == 2
    assert "cannot read config file" in missing.stderr


def bad_example_settings(tmp_path: Path) -> Path:
    """A config whose [plugin.example] table the example plugin's settings model rejects."""
    config = tmp_path / "mcpd.toml"
    config.write_text("[plugin.example]\nbogus = 1\nmax_input_bytes = -5\n")
    return config


REJECTED = (
    "plugin 'example' (mcpd-example 0.1.0) fails to load: register_tools failed: "
    "ExampleSettings: max_input_bytes: Input should be greater than 0; "
    "bogus: Extra inputs are not permitted ("
)


def validating_line() -> int:
    """The line of the example plugin that validates its settings: where a failure points."""
    source = Path(__file__).parents[1] / "plugins/mcpd-example/src/mcpd_example/settings.py"
    lines = source.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if "model_validate(" in line)


def test_cli_commands_log_nothing_below_warning(tmp_path: Path) -> None:
    for command in (("tools", "list"), ("plugins", "list"), ("config", "check")):
        result = mcpd(*command, env=isolated(tmp_path))
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # no plugin.loaded events on a good day


def test_listings_name_a_failed_plugin_and_exit_1(tmp_path: Path) -> None:
    config = bad_example_settings(tmp_path)
    for command in (("tools", "list"), ("plugins", "list")):
        for form in ((), ("--json",)):
            result = mcpd(*command, *form, "--config", str(config), env=isolated(tmp_path))
            assert result.returncode == 1
            sentences = [line for line in result.stderr.splitlines() if line.startswith("mcpd:")]
            assert len(sentences) == 1
            assert sentences[0].startswith(f"mcpd: {REJECTED}")
            assert sentences[0].endswith(f"mcpd_example/settings.py:{validating_line()})")
    listed = mcpd("tools", "list", "--json", "--config", str(config), env=isolated(tmp_path))
    assert "countdown" not in [tool["name"] for tool in json.loads(listed.stdout)]
    table = mcpd("plugins", "list", "--config", str(config), env=isolated(tmp_path)).stdout
    assert [row.split()[3] for row in table.splitlines()[1:]] == ["failed"]


def test_config_check_runs_the_plugins_settings_models(tmp_path: Path) -> None:
    config = bad_example_settings(tmp_path)
    result = mcpd("config", "check", "--config", str(config), env=isolated(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    sentences = [line for line in result.stderr.splitlines() if line.startswith("mcpd:")]
    assert len(sentences) == 1
    assert sentences[0].startswith(f"mcpd: {config}: plugin.example: {REJECTED}")


def test_config_check_refuses_anonymous_callers_beyond_loopback(tmp_path: Path) -> None:
    result = mcpd("config", "check", "--listen", "0.0.0.0:8765", env=isolated(tmp_path))
    assert result.returncode == 2
    assert "beyond loopback" in result.stderr
    assert "allow_anonymous_remote" in result.stderr


def test_config_check_warns_when_anonymous_callers_are_allowed_beyond_loopback(
    tmp_path: Path,
) -> None:
    config = tmp_path / "anon.toml"
    config.write_text("[auth]\nallow_anonymous_remote = true\n")
    result = mcpd(
        "config",
        "check",
        "--config",
        str(config),
        "--listen",
        "0.0.0.0:8765",
        env=isolated(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "mcpd: warning: --listen: server.listen: listening beyond loopback (0.0.0.0:8765) "
        "without authentication: anyone who can reach it may list and call every tool "
        "([auth] allow_anonymous_remote = true)"
    ]
    assert result.stdout.strip().endswith(str(config))


def test_config_check_refuses_a_listener_clash(tmp_path: Path) -> None:
    result = mcpd(
        "config",
        "check",
        "--listen",
        "[::]:8765",
        "--listen",
        "127.0.0.1:8765",
        env=isolated(tmp_path),
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mcpd: --listen: server.listen: '127.0.0.1:8765' overlaps '[::]:8765'; "
        "each listen address needs a socket of its own"
    )


def test_a_url_for_listen_explains_the_expected_form(tmp_path: Path) -> None:
    result = mcpd("config", "check", "--listen", "http://localhost:9000", env=isolated(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mcpd: --listen: 'http://localhost:9000' is a URL; a listen address is HOST:PORT "
        "(e.g. 127.0.0.1:8765), [IPv6]:PORT or unix:/path; for this URL, listen on "
        "'localhost:9000'"
    )


def test_enable_and_disable_entries_naming_no_plugin_are_warnings(tmp_path: Path) -> None:
    config = tmp_path / "mcpd.toml"
    config.write_text(
        '[plugins]\nenable = ["example", "mcpd_example", "exampel"]\ndisable = ["nope"]\n'
    )
    result = mcpd("config", "check", "--config", str(config), env=isolated(tmp_path))
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        f"mcpd: warning: {config}: plugins.enable: 'exampel' names no installed plugin "
        "(did you mean 'example'?)",
        f"mcpd: warning: {config}: plugins.disable: 'nope' names no installed plugin",
    ]
