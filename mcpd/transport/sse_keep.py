"""The connections of 2024-11-05 SSE sessions kept in systemd's fd store across a restart.

That transport's session *is* its ``GET /sse`` connection: its clients (``mcp`` 1.x's
``sse_client``, FastMCP's and pydantic-ai's SSE transports) treat the end of that stream as
the end of the session, and none reconnects. So a restart keeps the connection itself: at the
end of the drain the daemon hands each session's socket to the service manager
(``FDSTORE=1``, ``Notifier.store_fd``) under a fresh name, and records the name with the
session in the state file; systemd passes the stored sockets to the next process with the
listening ones (``ServiceEnvironment.kept``), which takes each back (and out of the store,
so that it closes when this process closes it) and writes the rest of the response on it.

It needs systemd's fd store (``FileDescriptorStoreMax=`` in the unit; ``systemctl restart``
keeps the store), a state directory, and a plain HTTP/1.1 connection on the lean path. Without
them the connection ends at shutdown, as it always did.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable

import structlog

from mcpd.systemd import KEPT_PREFIX, ActivatedSocket, Notifier

log = structlog.get_logger("mcpd.http_sse")


class FdStore:
    """This process's side of the fd store: descriptors it was given, and giving them back."""

    def __init__(self, notifier: Notifier, kept: Iterable[ActivatedSocket] = ()) -> None:
        self._notifier = notifier
        self._kept = {s.name: s.fd for s in kept}

    @property
    def enabled(self) -> bool:
        return self._notifier.enabled

    def holds(self, name: str) -> bool:
        """Whether the last process's connection ``name`` came back."""
        return name in self._kept

    def take(self, name: str) -> int | None:
        """The descriptor stored as ``name``, now this process's alone (the store's copy is
        dropped); None if it did not come back."""
        fd = self._kept.pop(name, None)
        if fd is not None:
            self._notifier.remove_fd(name)
        return fd

    def put(self, fd: int) -> str | None:
        """Hand ``fd`` to the store under a fresh name (this process's copy is closed);
        the name, or None if it could not be sent (the connection is then closed)."""
        name = KEPT_PREFIX + secrets.token_hex(8)
        try:
            return name if self._notifier.store_fd(name, fd) else None
        finally:
            os.close(fd)

    def release_rest(self) -> int:
        """Close the stored connections nobody claimed (their sessions were not restored);
        how many. Dropped from the store too, so that their clients see them end."""
        names = list(self._kept)
        for name in names:
            fd = self._kept.pop(name)
            self._notifier.remove_fd(name)
            os.close(fd)
        if names:
            log.warning(
                "http_sse.kept_connections_closed",
                connections=len(names),
                detail="connections kept by the last process without a session to go with"
                " them (state file missing, refused, or the sessions expired)",
            )
        return len(names)
