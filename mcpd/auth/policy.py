"""Authorization: what a principal may see and use, per tool, resource and prompt. Pure.

Requirements come from two places:

- the plugin: ``@mcpd.tool(scopes=["files:write"])`` (same on ``@mcpd.resource`` and
  ``@mcpd.prompt``): every listed scope is needed;
- the config: ``[[auth.rules]]`` match items by name glob (``tools``, ``prompts``; for
  ``resources`` the glob is tried on the URI or URI template and on the name) and set
  ``scopes`` and/or ``principals``.

Config wins: when a matching rule sets ``scopes``, the plugin's scopes no longer count (so an
operator can lock down, or open up, a plugin they did not write). Every matching rule applies:
the scopes of all of them are needed, and the principal must be allowed by each rule that
names principals. A principal entry is ``key:NAME`` (a static key's principal), ``sub:SUBJECT``
(an OAuth subject), ``client:ID`` (an OAuth client id), or a bare name matching the subject
of either kind.

A decision per (principal, item): ``allow``; ``deny`` naming every scope the item needs (HTTP
403 ``insufficient_scope``: more scopes would allow it); or ``hide`` (the principal is not
among those allowed: treated as an unknown name, so nothing leaks that it exists). Lists show
only what is allowed. Granted scopes are expanded by ``[auth] implied_scopes`` (a scope
hierarchy) first. In mode ``none`` everything is allowed: there is nobody to tell apart.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, TypeVar

from mcpd.auth.principal import KEYS_ISSUER, Principal
from mcpd.auth.settings import AuthSettings, RuleSettings

Kind = Literal["tool", "resource", "prompt"]
Outcome = Literal["allow", "deny", "hide"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Item:
    """What a rule can name: a tool, resource (or template) or prompt, and its own scopes."""

    kind: Kind
    name: str
    uri: str | None = None  # resources: the URI or URI template
    scopes: frozenset[str] = frozenset()  # from the plugin's decorator


@dataclass(frozen=True, slots=True)
class Requirement:
    scopes: frozenset[str] = frozenset()
    principals: tuple[frozenset[str], ...] = ()  # each set must contain the principal


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    required: frozenset[str] = frozenset()  # for "deny": every scope the item needs


ALLOW = Verdict("allow")
HIDE = Verdict("hide")


def _globs(rule: RuleSettings, kind: Kind) -> tuple[str, ...]:
    return {"tool": rule.tools, "resource": rule.resources, "prompt": rule.prompts}[kind]


def _matches(rule: RuleSettings, item: Item) -> bool:
    names = [item.name] if item.uri is None else [item.uri, item.name]
    return any(
        fnmatch.fnmatchcase(name, glob) for glob in _globs(rule, item.kind) for name in names
    )


def principal_names(principal: Principal) -> frozenset[str]:
    """The rule entries that name this principal."""
    names = {principal.subject}
    if principal.issuer == KEYS_ISSUER:
        names.add(f"key:{principal.subject}")
    else:
        names.add(f"sub:{principal.subject}")
        if principal.client_id:
            names.add(f"client:{principal.client_id}")
    return frozenset(names)


def expand(scopes: Iterable[str], implied: Mapping[str, Sequence[str]]) -> frozenset[str]:
    """``scopes`` plus everything they imply, transitively."""
    granted = set(scopes)
    pending = list(granted)
    while pending:
        for implied_scope in implied.get(pending.pop(), ()):
            if implied_scope not in granted:
                granted.add(implied_scope)
                pending.append(implied_scope)
    return frozenset(granted)


class Policy:
    def __init__(
        self,
        rules: Sequence[RuleSettings] = (),
        implied: Mapping[str, Sequence[str]] | None = None,
        *,
        enforce: bool = True,
    ) -> None:
        self.rules = tuple(rules)
        self.implied = dict(implied or {})
        self.enforce = enforce
        self.requirement: Callable[[Item], Requirement] = lru_cache(maxsize=4096)(self._requirement)

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> Policy:
        return cls(auth.rules, auth.implied_scopes, enforce=auth.mode != "none")

    def _requirement(self, item: Item) -> Requirement:
        matching = [rule for rule in self.rules if _matches(rule, item)]
        scoped = [rule.scopes for rule in matching if rule.scopes is not None]
        scopes = frozenset().union(*scoped) if scoped else item.scopes
        principals = tuple(
            frozenset(rule.principals) for rule in matching if rule.principals is not None
        )
        return Requirement(scopes, principals)

    def decide(self, principal: Principal, item: Item) -> Verdict:
        if not self.enforce or principal.anonymous:
            return ALLOW
        requirement = self.requirement(item)
        names = principal_names(principal)
        if any(not names & allowed for allowed in requirement.principals):
            return HIDE
        if not requirement.scopes <= expand(principal.scopes, self.implied):
            return Verdict("deny", requirement.scopes)
        return ALLOW

    def visible(
        self, principal: Principal, entries: Iterable[T], item: Callable[[T], Item]
    ) -> list[T]:
        """The entries (tools, resources, prompts...) the principal may use, in order."""
        return [e for e in entries if self.decide(principal, item(e)).outcome == "allow"]

    @property
    def private_lists(self) -> bool:
        """Whether lists may differ per principal (2026 lists then say ``cacheScope: private``)."""
        return self.enforce

    def scopes_named(self, items: Iterable[Item]) -> frozenset[str]:
        """Every scope some item requires (a default for ``scopes_supported``)."""
        return frozenset().union(*(self.requirement(item).scopes for item in items))
