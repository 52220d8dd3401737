"""Who may call what, and how much: the request path's one door to authentication,
authorization, limits and the audit trail.

Every HTTP request is identified once (``identify``: the client address, through trusted
proxies, and the principal from ``[auth]``) before its body is read. Each JSON-RPC request
is then admitted (``admit``) before anything runs: its rate limit (HTTP 429), and for a call
of a named item (a tool, resource, prompt or completion target) the policy's verdict: denied
(HTTP 403 ``insufficient_scope``, naming every scope needed) or hidden (answered exactly as an
unknown name, so that nothing tells it exists). Lists show only what the principal may use.

``Access`` is made once per daemon and reconfigured on reload: new keys, rules and limits
apply to the next request; limits keep their counts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Final

from mcpd.audit import AuditEntry, Auditor, requested_name
from mcpd.auth.authenticator import Authenticator, Unauthenticated
from mcpd.auth.challenge import Headers
from mcpd.auth.policy import Item, Policy, Verdict
from mcpd.auth.principal import Anonymous, Principal, anonymous
from mcpd.auth.proxies import TrustedProxies
from mcpd.auth.settings import AuthSettings
from mcpd.config import Settings
from mcpd.limits.limiter import Limits
from mcpd.limits.names import LimitName
from mcpd.plugin.registry import Registry
from mcpd.protocol.errors import InvalidParams, McpError
from mcpd.protocol.jsonrpc import Request

# The principal of every request while [auth] mode is "none", per client address (they differ
# only there, for limits); bounded, since addresses come from the network.
_ANONYMOUS_CACHE: Final = 4096


@functools.lru_cache(maxsize=_ANONYMOUS_CACHE)
def _anonymous(client: str | None) -> Anonymous:
    return anonymous(client)


def _ignore(_: str) -> None:
    return


class Forbidden(McpError):
    """The principal lacks scopes for the item (HTTP 403 ``insufficient_scope``)."""

    code = -32600
    http_status = 403

    def __init__(self, message: str, headers: Headers, *, data: Any = None) -> None:
        super().__init__(message, data=data)
        self.headers = headers


class Access:
    """Authentication, the policy, trusted proxies, limits and the auditor of one daemon."""

    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator | None = None,
        *,
        on_auth_failure: Callable[[str], None] = _ignore,
        on_limit: Callable[[LimitName], None] = _ignore,
    ) -> None:
        if authenticator is None:  # without OAuth no HTTP client is needed (tests, mode none)
            authenticator = Authenticator(settings.auth)
        self.authenticator = authenticator
        self.limits = Limits(settings.limits, on_reject=on_limit)
        self.auditor = Auditor()
        self._on_auth_failure = on_auth_failure
        self._apply(settings)

    def _apply(self, settings: Settings) -> None:
        self.settings: AuthSettings = settings.auth
        self.policy = Policy.from_settings(settings.auth)
        self.proxies = TrustedProxies(settings.server.trusted_proxies)
        self.open = settings.auth.mode == "none"

    def reconfigure(self, settings: Settings) -> None:
        """Apply a reloaded config: keys, rules, proxies and limits (counts are kept)."""
        self.authenticator = self.authenticator.reconfigured(settings.auth)
        self.limits.reconfigure(settings.limits)
        self._apply(settings)

    # -- who ------------------------------------------------------------------------------

    def client_address(self, scope: dict[str, Any], headers: dict[str, str]) -> str | None:
        client = scope.get("client")
        peer = str(client[0]) if client else None
        if not self.proxies:
            return peer
        return self.proxies.origin(peer, headers, scheme=scope.get("scheme", "http")).client

    async def identify(self, scope: dict[str, Any], headers: dict[str, str]) -> Principal:
        """The request's principal; raises ``Unauthenticated`` (401, or 503) for the answer."""
        client = self.client_address(scope, headers)
        if self.open:
            return _anonymous(client)
        try:
            return await self.authenticator.authenticate(headers, client)
        except Unauthenticated as refusal:
            self._on_auth_failure(refusal.reason)
            raise

    # -- what -----------------------------------------------------------------------------

    def admit(self, principal: Principal, request: Request, registry: Registry) -> None:
        """Before ``request`` runs: its rate limits, and its authorization when it names an
        item. Raises ``LimitExceeded`` (429) or ``Forbidden`` (403); a hidden item passes
        here and is answered as unknown where it is looked up (``visible``)."""
        self.limits.check_request(principal.limit_key, request.method)
        if self.open and request.method != "tools/call":
            return
        item = named_item(request, registry)
        if item is None:
            return
        if item.kind == "tool":
            self.limits.check_tool(principal.limit_key, item.name)
        if self.open:
            return
        verdict = self.policy.decide(principal, item)
        if verdict.outcome == "deny":
            self._on_auth_failure("insufficient_scope")
            raise self.forbidden(verdict)

    def forbidden(self, verdict: Verdict) -> Forbidden:
        _, headers, _ = self.authenticator.forbidden(verdict.required)
        scope = " ".join(sorted(verdict.required))
        error = {"error": "insufficient_scope", "scope": scope}
        return Forbidden(f"this needs the scopes: {scope}", headers, data=error)

    def visible(self, principal: Principal, item: Item) -> bool:
        """Whether ``principal`` may see ``item`` (hidden and denied ones are not listed)."""
        return self.open or self.policy.decide(principal, item).outcome == "allow"

    def hidden(self, principal: Principal, item: Item) -> bool:
        """Whether ``item`` must be answered as if it did not exist for ``principal``."""
        return not self.open and self.policy.decide(principal, item).outcome == "hide"

    def only_visible(
        self, principal: Principal, entries: Iterable[Any], item: Callable[[Any], Item]
    ) -> list[Any] | None:
        """``entries`` the principal may see, or None when nothing is filtered (mode none)."""
        if self.open:
            return None
        return self.policy.visible(principal, entries, item)

    @property
    def private_lists(self) -> bool:
        """Lists may differ per principal: 2026 list results say ``cacheScope: private``."""
        return self.policy.private_lists


def named_item(request: Request, registry: Registry) -> Item | None:
    """The item a request calls, reads or gets (or completes for), if it names a known one."""
    params = request.params
    method = request.method
    if method == "tools/call":
        name = params.get("name")
        tool = registry.get(name) if isinstance(name, str) else None
        return None if tool is None else tool_item(tool)
    if method == "prompts/get":
        return _prompt(registry, params.get("name"))
    if method in ("resources/read", "resources/subscribe"):
        uri = params.get("uri")
        found = registry.find_resource(uri) if isinstance(uri, str) else None
        return None if found is None else resource_item(found[0])
    if method == "completion/complete":
        return _completion_target(registry, params.get("ref"))
    return None


def tool_item(tool: Any) -> Item:
    return Item("tool", tool.name, scopes=tool.scopes)


def prompt_item(prompt: Any) -> Item:
    return Item("prompt", prompt.name, scopes=prompt.scopes)


def resource_item(resource: Any) -> Item:
    return Item("resource", resource.name, uri=resource.uri, scopes=resource.scopes)


def _prompt(registry: Registry, name: object) -> Item | None:
    prompt = registry.prompts.by_key.get(name) if isinstance(name, str) else None
    return None if prompt is None else prompt_item(prompt)


def _completion_target(registry: Registry, ref: object) -> Item | None:
    if not isinstance(ref, dict):
        return None
    if ref.get("type") == "ref/prompt":
        return _prompt(registry, ref.get("name"))
    uri = ref.get("uri")
    if not isinstance(uri, str):
        return None
    resource = registry.templates.by_key.get(uri) or registry.resources.by_key.get(uri)
    return None if resource is None else resource_item(resource)


def unknown(kind: str, name: object) -> InvalidParams:
    """The answer for an item that does not exist, or that the principal may not see."""
    return InvalidParams(f"unknown {kind}: {name!r}")


def audit_entry(principal: Principal, request: Request) -> AuditEntry:
    """The audit record of ``request`` by ``principal``, before its outcome is known."""
    return AuditEntry(
        request.method,
        requested_name(request.method, request.params),
        owner_of(principal),
        principal.client_id,
        request.id,
    )


def owner_of(principal: Principal) -> str | None:
    """The owner state is bound to: the principal's key, or None for an anonymous caller."""
    return None if principal.anonymous else principal.key
