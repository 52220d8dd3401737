"""Secret references in config values: each kind resolves, stays a str, and never shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcpd.config import ConfigError, load_config, load_settings
from mcpd.config_show import render_json, render_text
from mcpd.secret_values import Secret

SECRET = "s3cr3t-value-9d2f"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "api-token").write_text(SECRET + "-cred\n")
    (tmp_path / "token.txt").write_text(SECRET + "-file\r\n")
    path = tmp_path / "mcpd.toml"
    path.write_text(
        f"""
[plugin.example]
from_credential = {{ "$credential" = "api-token" }}
from_env = {{ "$env" = "MCPD_TEST_TOKEN" }}
from_file = {{ "$file" = "{tmp_path / "token.txt"}" }}
nested = {{ headers = [{{ "$env" = "MCPD_TEST_TOKEN" }}, "plain"] }}
"""
    )
    return path


def environ(tmp_path: Path) -> dict[str, str]:
    return {
        "CONFIGURATION_DIRECTORY": str(tmp_path / "no-etc"),
        "CREDENTIALS_DIRECTORY": str(tmp_path / "creds"),
        "MCPD_TEST_TOKEN": SECRET + "-env",
    }


def test_each_kind_resolves_to_a_str(tmp_path: Path, config: Path) -> None:
    settings = load_settings(config, environ=environ(tmp_path))
    example = settings.plugin["example"]
    assert example["from_credential"] == SECRET + "-cred"  # one trailing newline dropped
    assert example["from_env"] == SECRET + "-env"
    assert example["from_file"] == SECRET + "-file"
    assert example["nested"] == {"headers": [SECRET + "-env", "plain"]}
    for value in (example["from_credential"], example["from_env"], example["from_file"]):
        assert isinstance(value, str)
        assert f"Bearer {value}" == f"Bearer {str.__str__(value)}"  # formats as its value
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


def test_show_masks_secrets_and_names_their_origin(tmp_path: Path, config: Path) -> None:
    loaded = load_config(config, environ=environ(tmp_path))
    text = render_text(loaded)
    assert SECRET not in text
    assert f'from_env = "********"  # {config}, $env:MCPD_TEST_TOKEN' in text
    assert f'from_credential = "********"  # {config}, $credential:api-token' in text
    assert 'nested = {"headers": ["********", "plain"]}' in text
    shown = render_json(loaded)
    assert SECRET not in shown
    entry = json.loads(shown)["config"]["plugin.example"]["from_file"]
    assert entry["value"] == "********"
    assert entry["origin"] == str(config)
    assert entry["secrets"] == [f"$file:{tmp_path / 'token.txt'}"]


def test_a_secret_in_a_core_key_is_masked(tmp_path: Path) -> None:
    path = tmp_path / "mcpd.toml"
    path.write_text('[server]\nallowed_hosts = [{ "$env" = "MCPD_TEST_TOKEN" }]\n')
    loaded = load_config(path, environ=environ(tmp_path))
    assert loaded.settings.server.allowed_hosts == (SECRET + "-env",)
    assert SECRET not in render_text(loaded) + render_json(loaded)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{ "$env" = "MCPD_ABSENT" }', "$env 'MCPD_ABSENT': the environment variable is not set"),
        ('{ "$credential" = "absent" }', "$credential 'absent': cannot read"),
        ('{ "$credential" = "../x" }', "is not a credential name"),
        ('{ "$file" = "/nonexistent/secret" }', "$file '/nonexistent/secret': cannot read"),
        ('{ "$file" = "relative" }', "needs an absolute path"),
        ('{ "$cred" = "x" }', "unknown secret kind '$cred' (did you mean '$credential'?)"),
        ('{ "$env" = "A", "$file" = "/b" }', "alone"),
        ('{ "$env" = 3 }', "$env expects a string"),
    ],
)
def test_unresolvable_secrets_name_file_and_key(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "mcpd.toml"
    path.write_text(f"[plugin.example]\ntoken = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ(tmp_path))
    assert str(info.value).startswith(f"{path}: plugin.example.token: ")
    assert message in str(info.value)
    assert SECRET not in str(info.value)


def test_credentials_need_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "mcpd.toml"
    path.write_text('[plugin.example]\nlist = [{ "$credential" = "api-token" }]\n')
    with pytest.raises(ConfigError, match=r"plugin\.example\.list\[0\]: .*CREDENTIALS_DIRECTORY"):
        load_settings(path, environ={"CONFIGURATION_DIRECTORY": str(tmp_path)})


def test_secret_repr_is_masked() -> None:
    secret = Secret(SECRET, "$env:X")
    assert SECRET not in repr(secret)
    assert SECRET not in repr({"token": secret})
    assert secret == SECRET
    assert hash(secret) == hash(SECRET)
