"""Authorization decisions and list filtering: tables of (principal, item) -> verdict."""

from __future__ import annotations

from typing import Any

import pytest

import mcpd
from mcpd.auth.policy import Item, Policy, Verdict, expand
from mcpd.auth.principal import Principal, anonymous
from mcpd.auth.settings import AuthSettings
from mcpd.plugin.errors import ToolDefinitionError

KEY_BOT = Principal("keys", "ci-bot", scopes=frozenset({"probe:read"}))
ALICE = Principal(
    "https://idp.example",
    "alice",
    client_id="cursor",
    scopes=frozenset({"probe:read", "probe:write"}),
)
BOB = Principal("https://idp.example", "bob", client_id="cli", scopes=frozenset())
IMPOSTOR = Principal("https://idp.example", "ci-bot", scopes=frozenset({"probe:read"}))

SLEEP = Item("tool", "probe_sleep")
ECHO = Item("tool", "probe_echo", scopes=frozenset({"probe:read"}))
ADMIN = Item("tool", "admin.reset", scopes=frozenset({"admin"}))
NOTES = Item("resource", "note", uri="notes://{name}", scopes=frozenset({"notes:read"}))
SECRET = Item("resource", "secret", uri="files://secret/key")
REVIEW = Item("prompt", "review")


def policy(*rules: dict[str, Any], implied: dict[str, list[str]] | None = None) -> Policy:
    auth = AuthSettings.model_validate(
        {
            "mode": "keys",
            "rules": list(rules),
            "implied_scopes": implied or {},
        }
    )
    return Policy.from_settings(auth)


def deny(*scopes: str) -> Verdict:
    return Verdict("deny", frozenset(scopes))


ALLOW = Verdict("allow")
HIDE = Verdict("hide")

CONTRACT_RULE = {"tools": ["probe_sleep"], "scopes": ["probe:write"]}


@pytest.mark.parametrize(
    ("rules", "principal", "item", "verdict"),
    [
        # Plugin scopes alone.
        ((), KEY_BOT, ECHO, ALLOW),
        ((), BOB, ECHO, deny("probe:read")),
        ((), ALICE, ADMIN, deny("admin")),
        ((), BOB, SLEEP, ALLOW),  # no requirement anywhere
        # The contract rule.
        ((CONTRACT_RULE,), KEY_BOT, SLEEP, deny("probe:write")),
        ((CONTRACT_RULE,), ALICE, SLEEP, ALLOW),
        ((CONTRACT_RULE,), KEY_BOT, ECHO, ALLOW),  # other tools keep their plugin scopes
        # Config wins over the plugin: a rule's scopes replace the plugin's, up or down.
        (({"tools": ["probe_echo"], "scopes": ["ops"]},), KEY_BOT, ECHO, deny("ops")),
        (({"tools": ["admin.*"], "scopes": []},), BOB, ADMIN, ALLOW),
        # Every matching rule applies: their scopes add up.
        (
            ({"tools": ["probe_*"], "scopes": ["a"]}, {"tools": ["probe_sleep"], "scopes": ["b"]}),
            ALICE,
            SLEEP,
            deny("a", "b"),
        ),
        # Principals: others do not even see the item.
        (({"tools": ["admin.*"], "principals": ["alice"]},), ALICE, ADMIN, deny("admin")),
        (({"tools": ["admin.*"], "principals": ["alice"]},), BOB, ADMIN, HIDE),
        (({"tools": ["*"], "principals": ["key:ci-bot"]},), KEY_BOT, SLEEP, ALLOW),
        # A bare name matches the subject of a key or a token; qualified names do not mix.
        (({"tools": ["*"], "principals": ["ci-bot"]},), IMPOSTOR, SLEEP, ALLOW),
        (({"tools": ["*"], "principals": ["key:ci-bot"]},), IMPOSTOR, SLEEP, HIDE),
        (({"tools": ["*"], "principals": ["sub:alice"]},), ALICE, SLEEP, ALLOW),
        (({"tools": ["*"], "principals": ["client:cursor"]},), ALICE, SLEEP, ALLOW),
        (({"tools": ["*"], "principals": ["client:cursor"]},), BOB, SLEEP, HIDE),
        # Principal lists of several rules must all allow.
        (
            (
                {"tools": ["*"], "principals": ["alice", "bob"]},
                {"tools": ["probe_sleep"], "principals": ["alice"]},
            ),
            BOB,
            SLEEP,
            HIDE,
        ),
        # Hidden wins over missing scopes: no existence leak.
        (
            ({"tools": ["probe_sleep"], "scopes": ["x"], "principals": ["alice"]},),
            BOB,
            SLEEP,
            HIDE,
        ),
        # Resources: globs on the URI (template) or the name.
        (({"resources": ["files://secret/*"], "principals": ["alice"]},), BOB, SECRET, HIDE),
        (({"resources": ["secret"], "principals": ["alice"]},), BOB, SECRET, HIDE),
        ((), ALICE, NOTES, deny("notes:read")),
        (({"resources": ["notes://*"], "scopes": ["probe:read"]},), ALICE, NOTES, ALLOW),
        # Rules apply per kind: a tools glob does not match a prompt of the same name.
        (({"tools": ["review"], "principals": ["alice"]},), BOB, REVIEW, ALLOW),
        (({"prompts": ["rev*"], "principals": ["alice"]},), BOB, REVIEW, HIDE),
    ],
)
def test_decisions(
    rules: tuple[dict[str, Any], ...], principal: Principal, item: Item, verdict: Verdict
) -> None:
    assert policy(*rules).decide(principal, item) == verdict


def test_scope_hierarchy() -> None:
    implied = {"probe:admin": ["probe:write"], "probe:write": ["probe:read"]}
    assert expand({"probe:admin"}, implied) == {"probe:admin", "probe:write", "probe:read"}
    admin = Principal("keys", "root", scopes=frozenset({"probe:admin"}))
    rules = policy(CONTRACT_RULE, implied=implied)
    assert rules.decide(admin, SLEEP) == ALLOW
    assert rules.decide(admin, ECHO) == ALLOW
    cyclic = {"a": ["b"], "b": ["a"]}
    assert expand({"a"}, cyclic) == {"a", "b"}


def test_mode_none_allows_everything() -> None:
    open_policy = Policy.from_settings(AuthSettings())
    assert open_policy.decide(anonymous("10.0.0.1"), ADMIN) == ALLOW
    assert not open_policy.private_lists
    assert policy().private_lists


def test_list_filter_keeps_order_and_drops_hidden_and_denied() -> None:
    rules = policy(CONTRACT_RULE, {"tools": ["admin.*"], "principals": ["alice"]})
    tools = [SLEEP, ECHO, ADMIN]
    assert rules.visible(KEY_BOT, tools, lambda item: item) == [ECHO]
    assert rules.visible(ALICE, tools, lambda item: item) == [SLEEP, ECHO]
    assert rules.visible(BOB, tools, lambda item: item) == []
    assert rules.scopes_named(tools) == {"probe:write", "probe:read", "admin"}


def test_plugin_decorators_carry_scopes() -> None:
    @mcpd.tool(scopes=["files:write"])
    def save(path: str) -> str:
        return path

    @mcpd.resource("notes://{name}", scopes=["notes:read"])
    def note(name: str) -> str:
        return name

    @mcpd.prompt(scopes=["prompts:use"])
    def greet(who: str) -> str:
        return who

    @mcpd.tool
    def plain(x: int) -> int:
        return x

    assert save.scopes == {"files:write"}
    assert note.scopes == {"notes:read"}
    assert greet.scopes == {"prompts:use"}
    assert plain.scopes == frozenset()
    assert "scopes" not in save.definition("2025-11-25")  # never sent to clients


@pytest.mark.parametrize("scopes", ["files:write", ["two words"], ['q"uote'], [1]])
def test_plugin_scopes_are_validated(scopes: Any) -> None:
    with pytest.raises(ToolDefinitionError, match="scope"):

        @mcpd.tool(scopes=scopes)
        def bad(x: int) -> int:
            return x
