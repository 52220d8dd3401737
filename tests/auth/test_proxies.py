"""X-Forwarded-* honoured from trusted peers only; the client address a spoofer cannot set."""

from __future__ import annotations

import pytest

from mcpd.auth.proxies import Origin, TrustedProxies

PROXIES = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # No proxy configured or an untrusted peer: the headers are ignored.
        (
            "203.0.113.9",
            {"host": "mcp.example", "x-forwarded-for": "1.2.3.4", "x-forwarded-proto": "https"},
            Origin("http", "mcp.example", "203.0.113.9"),
        ),
        # One trusted proxy that overwrites the headers.
        (
            "10.0.0.2",
            {
                "host": "backend:8765",
                "x-forwarded-for": "198.51.100.7",
                "x-forwarded-proto": "https",
                "x-forwarded-host": "mcp.example",
            },
            Origin("https", "mcp.example", "198.51.100.7"),
        ),
        # A client spoofs all three; the trusted proxy appends its own values.
        (
            "10.0.0.2",
            {
                "x-forwarded-for": "6.6.6.6, 198.51.100.7",
                "x-forwarded-proto": "http, https",
                "x-forwarded-host": "evil.example, mcp.example",
            },
            Origin("https", "mcp.example", "198.51.100.7"),
        ),
        # Two trusted hops (CDN edge 10.1.1.1, then the local proxy): the outer one's values.
        (
            "127.0.0.1",
            {
                "x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.1.1.1",
                "x-forwarded-proto": "spoof, https, http",
                "x-forwarded-host": "evil.example, mcp.example, internal",
            },
            Origin("https", "mcp.example", "198.51.100.7"),
        ),
        # Every hop trusted: the leftmost address is the client.
        ("10.0.0.2", {"x-forwarded-for": "10.9.9.9"}, Origin("http", None, "10.9.9.9")),
        # A trusted peer without forwarding headers, and a nonsense proto.
        ("fd00::1", {"host": "h", "x-forwarded-proto": "gopher"}, Origin("http", "h", "fd00::1")),
    ],
)
def test_origin(peer: str, headers: dict[str, str], expected: Origin) -> None:
    assert PROXIES.origin(peer, headers, scheme="http") == expected


def test_nothing_trusted_by_default() -> None:
    proxies = TrustedProxies()
    assert not proxies
    origin = proxies.origin("127.0.0.1", {"x-forwarded-for": "1.2.3.4"}, scheme="https")
    assert origin == Origin("https", None, "127.0.0.1")
    assert origin.base_url is None
    assert Origin("https", "mcp.example", None).base_url == "https://mcp.example"


def test_unparsable_peer_is_not_trusted() -> None:
    assert not PROXIES.trusts("unix-socket")
    assert not PROXIES.trusts(None)
    assert PROXIES.trusts("[fd00::5]")
