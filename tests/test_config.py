"""Config loading: embedded defaults, file overlay, strict keys, errors naming file and key."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from mcpd.config import (
    ConfigError,
    LoggingSettings,
    PluginsSettings,
    ServerSettings,
    Settings,
    ToolsSettings,
    load_config,
    load_settings,
    parse_listen,
)
from mcpd.config_files import system_config_path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mcpd.toml"
    path.write_text(text)
    return path


def test_embedded_defaults_equal_the_dataclass_defaults() -> None:
    loaded = load_settings()
    assert loaded.server == ServerSettings()
    assert loaded.tools == ToolsSettings()
    assert loaded.plugins == PluginsSettings()
    assert loaded.logging == LoggingSettings()
    assert loaded.source == "<embedded defaults>"


def test_every_setting_has_a_documented_key() -> None:
    example = (Path(__file__).parents[1] / "etc" / "mcpd.toml").read_text()
    defaults = (Path(__file__).parents[1] / "mcpd" / "defaults.toml").read_text()
    for table in (ServerSettings, ToolsSettings, LoggingSettings):
        for field in fields(table):
            key = field.name if field.name in defaults else f"{field.name}_seconds"
            assert key in defaults, field.name
            assert key in example, field.name


def test_file_overrides_merge(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
max_body_bytes = 1024
sse_keepalive_seconds = 2

[tools]
page_size = 7

[plugins]
disable = ["noisy"]

[plugin.example]
max_input_bytes = 10
""",
    )
    settings = load_settings(path)
    assert settings.server.max_body_bytes == 1024
    assert settings.server.sse_keepalive == 2.0
    assert settings.server.listen == ("127.0.0.1:8765",)  # untouched keys keep their defaults
    assert settings.tools.page_size == 7
    assert settings.tools.default_timeout == 300.0
    assert settings.plugins == PluginsSettings(enable=None, disable=("noisy",))
    assert settings.plugin == {"example": {"max_input_bytes": 10}}
    assert settings.source == str(path)


def test_listen_override_replaces_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nlisten = ["127.0.0.1:1"]\n')
    settings = load_settings(path, listen=["127.0.0.1:2", "unix:/run/mcpd.sock"])
    assert settings.server.listen == ("127.0.0.1:2", "unix:/run/mcpd.sock")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[server]\nmax_body_byts = 1\n",
            "server.max_body_byts: unknown key (did you mean 'max_body_bytes'?)",
        ),
        ("[sever]\n", "sever: unknown key (did you mean 'server'?)"),
        (
            '[server]\nmax_body_bytes = "abc"\n',
            "server.max_body_bytes: expected an integer, got 'abc'",
        ),
        ("[server]\nmax_body_bytes = 0\n", "server.max_body_bytes: must be at least 1"),
        (
            "[server]\nshutdown_grace_seconds = -1\n",
            "server.shutdown_grace_seconds: must be a finite number >= 0",
        ),
        (
            "[server]\nkeep_alive_timeout_seconds = 0\n",
            "server.keep_alive_timeout_seconds: must be greater than 0",
        ),
        ('[server]\npath = "mcp"\n', "server.path: expected a URL path starting with '/'"),
        ('[server]\nlisten = ["localhost"]\n', "server.listen: 'localhost' is not HOST:PORT"),
        ("[server]\nlisten = []\n", "server.listen: needs at least one address"),
        (
            '[logging]\nlevel = "loud"\n',
            "logging.level: expected one of debug, info, warning, error",
        ),
        ("[logging]\nlog_arguments = 1\n", "logging.log_arguments: expected true or false"),
        ("[tools]\npage_size = true\n", "tools.page_size: expected an integer"),
        ('[plugins]\nenable = "a"\n', "plugins.enable: expected a list of strings"),
        ("[plugin]\nexample = 3\n", "plugin: expected [plugin.<name>] tables"),
        ("[server\n", "invalid TOML"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("127.0.0.1:8765", "127.0.0.1:8765"),
        ("0.0.0.0:080", "0.0.0.0:80"),
        ("[::1]:9000", "[::1]:9000"),
        ("localhost:1", "localhost:1"),
        ("unix:/run/mcpd/mcpd.sock", "unix:/run/mcpd/mcpd.sock"),
    ],
)
def test_parse_listen(value: str, normal: str) -> None:
    assert parse_listen(value) == normal


@pytest.mark.parametrize(
    "value", ["8765", ":8765", "host:", "host:99999", "::1:80", "[::1:80", "[nothex]:80", "unix:"]
)
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message is checked in the config tests
        parse_listen(value)


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().source = "x"  # type: ignore[misc]


# -- layers ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_system_file(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point the system config at an empty directory: /etc/mcpd on this machine is not read."""
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", str(tmp_path_factory.mktemp("no-etc")))


def system(tmp_path: Path, text: str, **drop_ins: str) -> dict[str, str]:
    """A system directory holding ``mcpd.toml`` (unless text is empty) and named drop-ins."""
    etc = tmp_path / "etc"
    (etc / "mcpd.toml.d").mkdir(parents=True)
    if text:
        (etc / "mcpd.toml").write_text(text)
    for name, body in drop_ins.items():
        (etc / "mcpd.toml.d" / name.replace("_", "-")).write_text(body)
    return {"CONFIGURATION_DIRECTORY": f"{etc}:/elsewhere"}


def test_layer_precedence(tmp_path: Path) -> None:
    environ = system(
        tmp_path,
        "[tools]\npage_size = 1\ndefault_timeout_seconds = 1\ninput_timeout_seconds = 1\n"
        '[logging]\nlevel = "warning"\n',
        # lexical order: 10 before 20 before 9; the last one read wins
        **{"20_b.toml": "[tools]\npage_size = 3\ndefault_timeout_seconds = 3\n"},
        **{"10_a.toml": "[tools]\npage_size = 2\ndefault_timeout_seconds = 2\n"},
        **{"9_c.toml": "[tools]\npage_size = 4\n"},
    )
    explicit = write(tmp_path, '[tools]\npage_size = 5\n[logging]\nlevel = "error"\n')
    loaded = load_config(explicit, log_level="debug", environ=environ)
    etc = tmp_path / "etc"
    assert loaded.files == (
        str(etc / "mcpd.toml"),
        str(etc / "mcpd.toml.d" / "10-a.toml"),
        str(etc / "mcpd.toml.d" / "20-b.toml"),
        str(etc / "mcpd.toml.d" / "9-c.toml"),
        str(explicit),
    )
    tools = loaded.settings.tools
    assert (tools.input_timeout, tools.default_timeout, tools.page_size) == (1.0, 3.0, 5)
    assert loaded.settings.logging.level == "debug"
    assert loaded.entries["tools", "input_timeout_seconds"].origin == str(etc / "mcpd.toml")
    assert loaded.entries["tools", "default_timeout_seconds"].origin.endswith("20-b.toml")
    assert loaded.entries["tools", "page_size"].origin == str(explicit)
    assert loaded.entries["logging", "level"].origin == "--log-level"
    assert loaded.entries["server", "path"].origin == "<embedded defaults>"
    assert loaded.settings.source == ", ".join(loaded.files)


def test_tables_merge_per_key_and_lists_replace(tmp_path: Path) -> None:
    environ = system(
        tmp_path,
        '[server]\nallowed_hosts = ["a", "b"]\n[plugin.example]\nx = 1\ny = [1, 2]\n',
        **{
            "50_more.toml": '[server]\nallowed_hosts = ["c"]\n[plugin.example]\ny = [3]\n[plugin.other]\nz = true\n'
        },
    )
    settings = load_settings(environ=environ)
    assert settings.server.allowed_hosts == ("c",)
    assert settings.plugin == {"example": {"x": 1, "y": [3]}, "other": {"z": True}}


def test_drop_ins_apply_without_a_system_file(tmp_path: Path) -> None:
    environ = system(
        tmp_path,
        "",
        **{"50_x.toml": "[tools]\npage_size = 9\n", ".hidden.toml": "x", "notes.txt": "x"},
    )
    loaded = load_config(environ=environ)
    assert loaded.files == (str(tmp_path / "etc" / "mcpd.toml.d" / "50-x.toml"),)
    assert loaded.settings.tools.page_size == 9


def test_configuration_directory_or_etc(tmp_path: Path) -> None:
    assert system_config_path({}) == Path("/etc/mcpd/mcpd.toml")
    assert system_config_path({"CONFIGURATION_DIRECTORY": "/a:/b"}) == Path("/a/mcpd.toml")


def test_config_naming_the_system_file_keeps_drop_ins_above_it(tmp_path: Path) -> None:
    environ = system(
        tmp_path, "[tools]\npage_size = 1\n", **{"50_x.toml": "[tools]\npage_size = 2\n"}
    )
    loaded = load_config(tmp_path / "etc" / "mcpd.toml", environ=environ)
    assert len(loaded.files) == 2
    assert loaded.settings.tools.page_size == 2


def test_unknown_key_in_a_drop_in_names_that_file(tmp_path: Path) -> None:
    environ = system(
        tmp_path, "[tools]\npage_size = 1\n", **{"50_typo.toml": "[tools]\npage_sise = 2\n"}
    )
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    drop_in = tmp_path / "etc" / "mcpd.toml.d" / "50-typo.toml"
    assert str(info.value).startswith(
        f"{drop_in}: tools.page_sise: unknown key (did you mean 'page_size'?)"
    )


def test_a_bad_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--log-format: expected one of"):
        load_settings(log_format="loud")


@pytest.mark.parametrize(
    ("table", "text"),
    [
        ("server", '[server]\nsse_path = "/mcp"\n'),
        ("metrics", '[metrics]\npath = "/sse/"\n'),
        ("metrics", '[metrics]\nhealthz_path = "/readyz"\n'),
    ],
)
def test_endpoints_on_one_listener_need_distinct_paths(
    tmp_path: Path, table: str, text: str
) -> None:
    path = tmp_path / "mcpd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"{path}: {table}\..*already the path of"):
        load_settings(path)


def test_paths_may_repeat_across_listeners(tmp_path: Path) -> None:
    path = tmp_path / "mcpd.toml"
    path.write_text(
        '[server]\nhttp_sse = false\nsse_path = "/mcp"\n\n[metrics]\nlisten = ["127.0.0.1:0"]\npath = "/mcp"\n'
    )
    settings = load_settings(path)
    assert settings.metrics.path == settings.server.path == "/mcp"


def test_request_state_key_is_empty_or_long_enough(tmp_path: Path) -> None:
    path = tmp_path / "mcpd.toml"
    path.write_text('[tools]\nrequest_state_key = "too-short"\n')
    with pytest.raises(ConfigError, match="request_state_key: must be empty or at least 32"):
        load_settings(path)
    path.write_text(f'[tools]\nrequest_state_key = "{"k" * 32}"\n')
    assert load_settings(path).tools.request_state_key == "k" * 32
