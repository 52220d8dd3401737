"""Static API keys: the real `mcpd auth new-key` command, its output pasted into a config that
then authenticates a request; hashes, expiry, and the constant-time comparison path."""

from __future__ import annotations

import datetime as dt
import hmac
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcpd.auth.authenticator import Authenticator, Unauthenticated
from mcpd.auth.keys import KEY_SHAPE, KeyTable, StaticKey, key_hash, new_key
from mcpd.auth.settings import AuthSettings, KeySettings
from mcpd.config import load_settings


def new_key_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpd", "auth", "new-key", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def contract_config(tmp_path: Path, key_lines: str) -> Path:
    path = tmp_path / "mcpd.toml"
    path.write_text(f'[auth]\nmode = "keys"\n\n{key_lines}\n')
    return path


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_new_key_output_pasted_into_a_config_authenticates(tmp_path: Path) -> None:
    done = new_key_command("--principal", "ci-bot", "--scope", "probe:read")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    [key_line] = [line for line in lines if line.startswith("key: ")]
    [hash_line] = [line for line in lines if line.startswith("hash = ")]
    key = key_line.removeprefix("key: ")
    assert KEY_SHAPE.fullmatch(key)
    assert hash_line == f'hash = "{key_hash(key)}"'
    assert key not in done.stdout.replace(key_line, "")  # printed once, on its own line
    assert "shown only this once" in done.stderr
    toml = "\n".join(line for line in lines if not line.startswith("key: "))
    settings = load_settings(contract_config(tmp_path, toml))
    auth = Authenticator(settings.auth)
    principal = await auth.authenticate(bearer(key), "127.0.0.1")
    assert (principal.issuer, principal.subject, principal.scopes) == (
        "keys",
        "ci-bot",
        frozenset({"probe:read"}),
    )
    assert principal.key == '["keys","ci-bot"]'
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(bearer(new_key()), "127.0.0.1")
    assert (caught.value.reason, caught.value.status) == ("invalid_key", 401)
    assert caught.value.headers == [("WWW-Authenticate", 'Bearer realm="mcpd"')]


async def test_the_contract_hash_line_works_in_the_contract_config(tmp_path: Path) -> None:
    """The issue's config, with the `hash = ` line exactly as the command printed it."""
    done = new_key_command("--principal", "ci-bot", "--scope", "probe:read")
    key = done.stdout.split("key: ", 1)[1].split()[0]
    hash_line = next(line for line in done.stdout.splitlines() if line.startswith("hash = "))
    path = tmp_path / "mcpd.toml"
    path.write_text(
        f"""
[auth]
mode = "keys+oauth"
resource = "http://127.0.0.1:8765/mcp"

[[auth.keys]]
principal = "ci-bot"
{hash_line}
scopes = ["probe:read"]

[auth.oauth]
issuer = "http://127.0.0.1:9400"
jwks_uri = "http://127.0.0.1:9400/jwks"
audiences = ["http://127.0.0.1:8765/mcp"]

[[auth.rules]]
tools = ["probe_sleep"]
scopes = ["probe:write"]
"""
    )
    auth = load_settings(path).auth
    assert auth.mode == "keys+oauth"
    assert auth.audiences == ("http://127.0.0.1:8765/mcp",)
    assert [rule.tools for rule in auth.rules] == [("probe_sleep",)]
    assert KeyTable.from_settings(auth.keys).check(key, now=time.time()) != "invalid_key"


def test_new_key_with_expiry_and_refusals(tmp_path: Path) -> None:
    done = new_key_command("--principal", "bot", "--expires", "2027-01-31")
    assert done.returncode == 0
    assert "expires = 2027-01-31" in done.stdout
    assert "scopes = []" in done.stdout
    toml = "\n".join(line for line in done.stdout.splitlines() if not line.startswith("key: "))
    [entry] = load_settings(contract_config(tmp_path, toml)).auth.keys
    assert entry.expires == dt.datetime(2027, 1, 31, tzinfo=dt.UTC)
    for args, problem in [
        (("--principal", "two words"), "principal: expected 1-128 printable ASCII"),
        (("--principal", "bot", "--scope", 'a"b'), "is not a scope token"),
        (("--principal", "bot", "--expires", "soon"), "--expires:"),
    ]:
        refused = new_key_command(*args)
        assert refused.returncode == 2
        assert problem in refused.stderr
        assert refused.stdout == ""  # no key printed for a refused command


def test_keys_are_random_and_prefixed() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(KEY_SHAPE.fullmatch(key) for key in keys)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", key_hash(next(iter(keys))))


def table(*entries: tuple[str, str, float | None]) -> KeyTable:
    return KeyTable(
        [
            StaticKey.from_settings(
                KeySettings(
                    principal=name,
                    hash=key_hash(key),
                    expires=dt.datetime.fromtimestamp(expires, dt.UTC) if expires else None,
                )
            )
            for name, key, expires in entries
        ]
    )


def test_expiry() -> None:
    key = new_key()
    keys = table(("bot", key, 1_000_000.0))
    assert keys.check(key, now=999_999.0) != "expired"
    assert keys.check(key, now=1_000_000.0) == "expired"
    assert keys.check("mcpd_short", now=0) == "invalid_key"


@pytest.mark.parametrize("position", ["first", "last", "none"])
def test_every_entry_is_compared_whatever_matches(position: str) -> None:
    """The lookup never stops early: the comparisons made do not depend on which key matched."""
    keys = [new_key() for _ in range(8)]
    entries = table(*((f"p{i}", key, None) for i, key in enumerate(keys)))
    presented = {"first": keys[0], "last": keys[-1], "none": new_key()}[position]
    calls: list[bool] = []

    def compare(a: bytes, b: bytes) -> bool:
        equal = hmac.compare_digest(a, b)
        calls.append(equal)
        return equal

    found = entries.find(presented, compare=compare)
    assert len(calls) == 8
    assert calls.count(True) == (0 if position == "none" else 1)
    assert (found.principal if found else None) == {"first": "p0", "last": "p7", "none": None}[
        position
    ]


async def test_bearer_parsing() -> None:
    key = new_key()
    settings = AuthSettings.model_validate(
        {"mode": "keys", "keys": [{"principal": "bot", "hash": key_hash(key)}]}
    )
    auth = Authenticator(settings)
    for header, reason in [
        ({}, "missing"),
        ({"authorization": ""}, "missing"),
        ({"authorization": f"Basic {key}"}, "malformed"),
        ({"authorization": "Bearer"}, "malformed"),
        ({"authorization": "Bearer a b"}, "malformed"),
        ({"authorization": "Bearer " + "x" * 20_000}, "malformed"),
    ]:
        with pytest.raises(Unauthenticated) as caught:
            await auth.authenticate(header, None)
        assert caught.value.reason == reason, header
    assert (await auth.authenticate({"authorization": f"bearer  {key} "}, None)).subject == "bot"


async def test_reload_swaps_the_key_table() -> None:
    old, new = new_key(), new_key()

    def settings(*keys: str) -> AuthSettings:
        entries = [{"principal": f"p{i}", "hash": key_hash(key)} for i, key in enumerate(keys)]
        return AuthSettings.model_validate({"mode": "keys", "keys": entries})

    auth = Authenticator(settings(old))
    assert (await auth.authenticate(bearer(old), None)).subject == "p0"
    reloaded = auth.reconfigured(settings(new))  # the old key revoked, a new one added
    assert (await reloaded.authenticate(bearer(new), None)).subject == "p0"
    with pytest.raises(Unauthenticated):
        await reloaded.authenticate(bearer(old), None)
