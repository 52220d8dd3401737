"""Listen addresses: the forms a config may write, and which pairs cannot both be bound.

``parse_listen`` accepts ``HOST:PORT``, ``[IPv6]:PORT`` and ``unix:/path`` and explains what
fits when given something else (a URL pasted from a client's settings, say). ``listen_clash``
finds two listeners that would need the same socket, so the config load refuses them with a
sentence instead of the second bind failing at start. It judges as the kernel would: the same
socket path, or the same port on the same host, on a wildcard that covers the other host
(``0.0.0.0`` covers IPv4; ``[::]`` covers both, being dual-stack), or spelt differently
(``localhost`` is ``127.0.0.1``, IPv6 in any notation). Port 0 never clashes: each listener
gets a port of its own.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

LISTEN_FORMS: Final = "HOST:PORT (e.g. 127.0.0.1:8765), [IPv6]:PORT or unix:/path"
MAX_PORT: Final = 65535


def parse_listen(value: str) -> str:
    """Validate one listen address; returns the form hypercorn's ``bind`` understands.

    Example::

        parse_listen("127.0.0.1:08765")  # "127.0.0.1:8765"
    """
    if value.startswith("unix:"):
        if len(value) == len("unix:"):
            raise ValueError("unix: needs a socket path")
        return value
    if "://" in value:
        raise ValueError(_url_given(value))
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > MAX_PORT:
        raise ValueError(f"{value!r} is not {LISTEN_FORMS}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"{value!r}: unbalanced brackets around an IPv6 address")
        ipaddress.IPv6Address(host[1:-1])
    elif ":" in host:
        raise ValueError(f"{value!r}: put IPv6 addresses in brackets, e.g. [::1]:8765")
    return f"{host}:{int(port)}"


def _url_given(value: str) -> str:
    """A URL where an address belongs (the URL clients use, pasted back): say what fits."""
    address = urlsplit(value).netloc.rpartition("@")[2]
    try:
        hint = f"; for this URL, listen on {parse_listen(address)!r}" if address else ""
    except ValueError:
        hint = ""
    return f"{value!r} is a URL; a listen address is {LISTEN_FORMS}{hint}"


def listen_clash(server: Sequence[str], metrics: Sequence[str]) -> tuple[str, str] | None:
    """The first pair that cannot both be bound: ``(table, message)``, or None.

    ``table`` is the one to blame, "server" or "metrics" (a metrics listener on a main
    listener's address is the metrics table's fault).

    Example::

        listen_clash(["127.0.0.1:8765"], ["localhost:8765"])
        # ("metrics", "'localhost:8765' is also the server.listen address '127.0.0.1:8765'; ...")
    """
    main = [_Address.of(text) for text in server]
    health = [_Address.of(text) for text in metrics]
    for table, addresses in (("server", main), ("metrics", health)):
        repeated = _repeated(addresses)
        if repeated is not None:
            return table, repeated
    for address in health:
        for other in main:
            if address.clashes(other):
                return "metrics", (
                    f"{address.text!r} is also the server.listen address {other.text!r}; give "
                    "the metrics listener an address of its own, or leave metrics.listen empty "
                    "to serve health and metrics beside the MCP endpoint"
                )
    return None


def _repeated(addresses: Sequence[_Address]) -> str | None:
    for index, address in enumerate(addresses):
        for earlier in addresses[:index]:
            if address.clashes(earlier):
                how = "repeats" if address.text == earlier.text else "overlaps"
                return (
                    f"{address.text!r} {how} {earlier.text!r}; "
                    "each listen address needs a socket of its own"
                )
    return None


@dataclass(frozen=True, slots=True)
class _Address:
    """A listen address as the kernel sees it: a unix path, or a host and a port."""

    text: str  # as configured, for messages
    host: str  # the normalised IP address or name; the path for unix sockets
    port: int  # 0 for unix sockets and for "the kernel picks"

    @classmethod
    def of(cls, text: str) -> _Address:
        if text.startswith("unix:"):
            return cls(text, text.removeprefix("unix:"), 0)
        host, _, port = text.rpartition(":")
        return cls(text, _normal_host(host.strip("[]").lower()), int(port))

    @property
    def unix(self) -> bool:
        return self.text.startswith("unix:")

    def clashes(self, other: _Address) -> bool:
        """Whether binding both would fail: the same socket path, or a port bound twice."""
        if self.unix or other.unix:
            return self.unix and other.unix and self.host == other.host
        if self.port == 0 or self.port != other.port:
            return False  # port 0 gets a fresh port for each listener
        hosts = {self.host, other.host}
        # "::" is dual-stack (hypercorn leaves IPV6_V6ONLY off) and covers IPv4 too.
        return len(hosts) == 1 or "::" in hosts or ("0.0.0.0" in hosts and _ipv4(hosts))


def _normal_host(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"  # hypercorn binds a name without ":" as IPv4
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host  # a host name: compared as written


def _ipv4(hosts: set[str]) -> bool:
    return all(":" not in host for host in hosts)


LOOPBACK_NAMES: Final = frozenset({"localhost"})


def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ``::1`` (brackets allowed)."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # any other name: assume it is reachable


def is_local_bind(bind: str) -> bool:
    """Whether only this machine reaches ``bind``: a unix socket, or a loopback TCP address.

    ``bind`` is a listen address (``HOST:PORT``, ``unix:PATH``), an inherited socket
    (``fd://N``, judged by its real address) or a bound URL (``http://HOST:PORT``).
    """
    bind = bind.partition("://")[2] if bind.startswith(("http://", "https://")) else bind
    if bind.startswith("unix:"):
        return True
    if bind.startswith("fd://"):
        return _is_local_socket(int(bind.removeprefix("fd://")))
    return is_loopback_host(bind.rpartition(":")[0])


def _is_local_socket(fd: int) -> bool:
    """Whether an inherited listening socket is a unix socket or bound to loopback."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            if sock.family == socket.AF_UNIX:
                return True
            return is_loopback_host(str(sock.getsockname()[0]))
    except OSError:
        return False
