"""Which ``Host`` values a listener answers: the DNS-rebinding half of the origin checks."""

from __future__ import annotations

from collections.abc import Sequence

from mcpd.config import ServerSettings
from mcpd.listen_addresses import is_local_bind


def host_policy(
    settings: ServerSettings, binds: Sequence[str] | None = None
) -> frozenset[str] | None:
    """The Host values to accept besides loopback names, or None for no Host check.

    Listening on loopback only (the default), a request naming any other host is a
    DNS-rebinding attempt. Listening beyond loopback, the operator lists the public names;
    with none listed, the Host header is not checked. ``binds`` (default: the configured
    ``listen``) may name inherited sockets (``fd://N``), judged by their real address.
    """
    if settings.allowed_hosts:
        return frozenset(settings.allowed_hosts)
    if all(is_local_bind(bind) for bind in (binds or settings.listen)):
        return frozenset()
    return None
