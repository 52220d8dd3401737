"""The [auth] table: nested tables parse, layer and fail with the file and dotted key; the
mode-none exposure check refuses `serve` and `config check` alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcpd.auth.settings import (
    AuthSettings,
    IntrospectionSettings,
    KeySettings,
    OAuthSettings,
    RuleSettings,
)
from mcpd.checks import exposure
from mcpd.config import ConfigError, load_config, load_settings
from mcpd.config_show import render_json, render_text

HASH = "sha256:" + "ab" * 32
ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "mcpd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


OAUTH = """
[auth]
mode = "oauth"
resource = "https://mcp.example.com/mcp"

[auth.oauth]
issuer = "https://idp.example.com"
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[auth]\nmode = "sometimes"\n',
            "auth.mode: Input should be 'none', 'keys', 'oauth' or 'keys+oauth', got 'sometimes'",
        ),
        ('[auth]\nmoed = "keys"\n', "auth.moed: unknown key (did you mean 'mode'?)"),
        (
            '[auth]\nmode = "keys"\n[[auth.keys]]\nprincipal = "a"\nhash = "md5:x"\n',
            "auth.keys[0].hash: expected 'sha256:'",
        ),
        (
            f'[auth]\nmode = "keys"\n[[auth.keys]]\nprincipal = "a"\nhash = "{HASH}"\nscope = []\n',
            "auth.keys[0].scope: unknown key (did you mean 'scopes'?)",
        ),
        (
            f'[auth]\nmode = "keys"\n[[auth.keys]]\nprincipal = "a"\nhash = "{HASH}"\nexpires = "soon"\n',
            "auth.keys[0].expires:",
        ),
        (
            f'[auth]\nmode = "keys"\n[[auth.keys]]\nprincipal = "a"\nhash = "{HASH}"\n[[auth.keys]]\nprincipal = "b"\nhash = "{HASH}"\n',
            "auth: two [[auth.keys]] entries have the same hash",
        ),
        ('[auth]\nmode = "oauth"\n', 'auth: mode = "oauth" needs resource'),
        (
            '[auth]\nmode = "oauth"\nresource = "https://h/mcp"\n',
            'auth: mode = "oauth" needs an [auth.oauth] table',
        ),
        (OAUTH + 'jwks = "x"\n', "auth.oauth.jwks: unknown key (did you mean 'jwks_uri'?)"),
        (OAUTH + 'audiences = "x"\n', "auth.oauth.audiences: Input should be a valid tuple"),
        (OAUTH + 'algorithms = ["none"]\n', "auth.oauth.algorithms: expected a non-empty list"),
        (OAUTH + 'algorithms = ["HS256"]\n', "auth.oauth: algorithms ['HS256'] need shared_secret"),
        (OAUTH.replace("https://idp", "http://idp"), "auth.oauth.issuer: issuer must use https"),
        (
            OAUTH.replace("https://mcp.example.com/mcp", "https://mcp.example.com/mcp#x"),
            "auth.resource: resource must not have a fragment",
        ),
        (
            '[auth]\nmode = "keys"\n[[auth.rules]]\ntools = ["*"]\n',
            "auth.rules[0]: a rule needs scopes, principals or both",
        ),
        (
            '[auth]\nmode = "keys"\n[[auth.rules]]\nscopes = ["a"]\n',
            "auth.rules[0]: a rule needs at least one of tools",
        ),
        (
            '[auth]\nmode = "keys"\n[[auth.rules]]\ntools = ["*"]\nscopes = ["a b"]\n',
            "auth.rules[0].scopes[0]: 'a b' is not a scope token",
        ),
        (
            '[auth]\n[[auth.rules]]\ntools = ["*"]\nscopes = ["a"]\n',
            'auth: mode = "none" makes every caller anonymous',
        ),
        (
            '[auth]\nimplied_scopes = { "a" = "b" }\n',
            "auth.implied_scopes.a: Input should be a valid tuple",
        ),
        ("[auth]\nkeys = 5\n", "auth.keys: Input should be a valid tuple"),
        ('auth = "on"\n', "auth: expected a table"),
    ],
)
def test_errors_name_the_file_and_dotted_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(f"{path}: {message}"), str(caught.value)


def test_a_higher_layer_replaces_a_whole_top_level_key(tmp_path: Path) -> None:
    system = tmp_path / "etc"
    system.mkdir()
    write(system, OAUTH + 'audiences = ["api://a"]\n')
    drop_ins = system / "mcpd.toml.d"
    drop_ins.mkdir()
    write(drop_ins, '[auth.oauth]\nissuer = "https://other.example.com"\n', "50-issuer.toml")
    environ = {"CONFIGURATION_DIRECTORY": str(system)}
    auth = load_settings(environ=environ).auth
    assert auth.oauth == OAuthSettings(issuer="https://other.example.com")  # audiences gone
    assert auth.resource == "https://mcp.example.com/mcp"  # other keys merge as usual
    # A drop-in that sets a key the lower file's table needs, alone, is blamed for the gap.
    write(drop_ins, '[auth.oauth]\naudiences = ["x"]\n', "50-issuer.toml")
    with pytest.raises(ConfigError, match=r"50-issuer\.toml: auth\.oauth\.issuer: required key"):
        load_settings(environ=environ)


def test_secrets_inside_nested_tables_stay_masked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        OAUTH
        + 'algorithms = ["HS256"]\nshared_secret = { "$env" = "MCPD_HS" }\n'
        + '[auth.introspection]\nendpoint = "https://idp.example.com/introspect"\n'
        + 'client_id = "mcpd"\nclient_secret = { "$env" = "MCPD_INTRO" }\n',
    )
    environ = {"MCPD_HS": "h" * 40, "MCPD_INTRO": "very-secret"}
    loaded = load_config(path, environ=environ)
    auth = loaded.settings.auth
    assert auth.oauth is not None
    assert auth.oauth.shared_secret == "h" * 40
    assert isinstance(auth.introspection, IntrospectionSettings)
    assert auth.introspection.client_secret == "very-secret"
    shown = render_text(loaded) + render_json(loaded) + repr(auth)
    assert "very-secret" not in shown
    assert "h" * 40 not in shown
    assert "$env:MCPD_INTRO" in render_json(loaded)


def test_missing_secret_names_the_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path, OAUTH + 'shared_secret = { "$env" = "NOPE" }\n')
    with pytest.raises(ConfigError, match=r"auth\.oauth\.shared_secret: \$env 'NOPE'"):
        load_settings(path, environ={})


def test_dates_in_keys_survive_config_show(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[auth]\nmode = "keys"\n[[auth.keys]]\nprincipal = "a"\nhash = "{HASH}"\nexpires = 2027-01-31T10:00:00Z\n',
    )
    loaded = load_config(path)
    assert '"expires": "2027-01-31T10:00:00+00:00"' in render_json(loaded)
    [key] = loaded.settings.auth.keys
    assert key.expires is not None
    assert key.expires.isoformat() == "2027-01-31T10:00:00+00:00"


def mcpd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpd", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("command", [("config", "check"), ("serve",)])
def test_mode_none_refuses_to_listen_beyond_loopback(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = write(tmp_path, '[server]\nlisten = ["127.0.0.1:0", "0.0.0.0:0"]\n')
    done = mcpd(*command, "--config", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith(f"mcpd: {path}: server.listen: 0.0.0.0:0 is beyond loopback")
    assert "allow_anonymous_remote" in done.stderr
    flagged = mcpd(
        *command, "--config", str(write(tmp_path, "", "empty.toml")), "--listen", "[::]:0"
    )
    assert flagged.returncode == 2
    assert "server.listen: [::]:0 is beyond loopback" in flagged.stderr


@pytest.mark.parametrize(
    "text",
    [
        '[server]\nlisten = ["127.0.0.1:0", "[::1]:0", "localhost:0", "unix:/run/mcpd.sock"]\n',
        '[server]\nlisten = ["0.0.0.0:0"]\n[auth]\nallow_anonymous_remote = true\n',
        f'[server]\nlisten = ["0.0.0.0:0"]\n[auth]\nmode = "keys"\n[[auth.keys]]\nprincipal = "a"\nhash = "{HASH}"\n',
    ],
)
def test_loopback_or_authenticated_or_allowed(tmp_path: Path, text: str) -> None:
    settings = load_settings(write(tmp_path, text))
    remote_allowed = settings.auth.allow_anonymous_remote
    warning = exposure(settings, settings.server.listen)  # logged at every start
    assert (warning is not None) == remote_allowed


def test_every_auth_key_is_documented() -> None:
    example = (ROOT / "etc" / "mcpd.toml").read_text()
    defaults = (ROOT / "mcpd" / "defaults.toml").read_text()
    tables = {"keys": "[[auth.keys]]", "rules": "[[auth.rules]]", "oauth": "[auth.oauth]"}
    tables["introspection"] = "[auth.introspection]"
    for model in (AuthSettings, OAuthSettings, IntrospectionSettings, KeySettings, RuleSettings):
        for name in model.model_fields:
            assert f"# {tables.get(name, name + ' =')}" in example, name
    for name in ("trusted_proxies", "tls_certificate", "tls_private_key"):
        assert f"{name} =" in defaults, name
        assert f"# {name} =" in example, name
    for name in AuthSettings.model_fields:
        if name not in ("oauth", "introspection"):
            assert f"\n{name} =" in defaults, name
