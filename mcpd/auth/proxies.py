"""``[server] trusted_proxies``: the public URL and client address behind a reverse proxy.

``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``X-Forwarded-For`` are believed only when the
TCP peer is a trusted proxy; from anyone else they are ignored (a client could write them).

The client address: ``X-Forwarded-For`` is walked from the right (each proxy appends the
address it received the request from), skipping trusted proxies; the first address that is
not one is the client. Spoofed entries a client put on the left are never reached.

Scheme and host: a proxy either overwrites the header (one value) or appends to it. With
``n`` trusted hops (the peer plus the trusted addresses at the right of ``X-Forwarded-For``),
the value used is the ``n``-th from the right, the one the outermost trusted proxy added, so
values a client sent ahead of it are ignored either way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES: Final = frozenset({"http", "https"})


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request really came from and which URL the client used."""

    scheme: str  # "http" or "https"
    host: str | None  # the Host the client sent (name[:port]), if known
    client: str | None  # the client's address

    @property
    def base_url(self) -> str | None:
        return f"{self.scheme}://{self.host}" if self.host else None


class TrustedProxies:
    def __init__(self, networks: Sequence[str] = ()) -> None:
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(network, strict=False) for network in networks
        )

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str | None) -> bool:
        if not address or not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def origin(self, peer: str | None, headers: Mapping[str, str], *, scheme: str) -> Origin:
        """The request's origin; ``headers`` with lower-case names, ``scheme`` as received."""
        host = headers.get("host")
        if not self.trusts(peer):
            return Origin(scheme, host, peer)
        chain = _values(headers.get("x-forwarded-for"))
        client, hops = peer, 1
        for address in reversed(chain):
            client = address
            if not self.trusts(address):
                break
            hops += 1
        proto = _pick(_values(headers.get("x-forwarded-proto")), hops)
        forwarded_host = _pick(_values(headers.get("x-forwarded-host")), hops)
        return Origin(
            proto.lower() if proto and proto.lower() in SCHEMES else scheme,
            forwarded_host or host,
            client,
        )


def _values(header: str | None) -> list[str]:
    return [part.strip() for part in (header or "").split(",") if part.strip()]


def _pick(values: list[str], hops: int) -> str | None:
    """The value the outermost of ``hops`` trusted proxies set (see the module docstring)."""
    if not values:
        return None
    return values[max(len(values) - hops, 0)]
