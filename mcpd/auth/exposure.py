"""The safe default: with ``[auth] mode = "none"`` mcpd serves loopback (and unix sockets) only.

Anyone who reaches the port can list and call every tool when nobody is authenticated, so
listening beyond loopback needs either an authentication mode or the explicit
``[auth] allow_anonymous_remote = true`` (which the daemon then warns about at every start).
The config validation and the daemon (for sockets systemd hands in) share this one check.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

from mcpd.auth.settings import AuthSettings, is_loopback_host


def is_local_bind(bind: str) -> bool:
    """A unix socket, or a TCP address on loopback; ``fd://N`` judged by its real address."""
    if bind.startswith("unix:"):
        return True
    if bind.startswith("fd://"):
        return _is_local_socket(int(bind.removeprefix("fd://")))
    return is_loopback_host(bind.rpartition(":")[0])


def _is_local_socket(fd: int) -> bool:
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            if sock.family == socket.AF_UNIX:
                return True
            return is_loopback_host(str(sock.getsockname()[0]))
    except OSError:
        return False


def anonymous_exposure(auth: AuthSettings, binds: Iterable[str]) -> str | None:
    """Why these binds may not serve anonymous callers, or None when they may."""
    if auth.mode != "none" or auth.allow_anonymous_remote:
        return None
    remote = [bind for bind in binds if not is_local_bind(bind)]
    if not remote:
        return None
    return (
        f'{", ".join(remote)} is beyond loopback, and [auth] mode = "none" lets anyone who '
        "reaches it call every tool; set [auth] mode (keys or oauth), or "
        "[auth] allow_anonymous_remote = true to serve anonymous callers anyway"
    )


def anonymous_remote_warning(auth: AuthSettings, binds: Iterable[str]) -> str | None:
    """The warning to log at every start when anonymous callers are served beyond loopback."""
    if auth.mode != "none" or not auth.allow_anonymous_remote:
        return None
    remote = [bind for bind in binds if not is_local_bind(bind)]
    if not remote:
        return None
    return f"anonymous callers may reach every tool on {', '.join(remote)} (allow_anonymous_remote)"
