"""The safe default: with ``[auth] mode = "none"`` mcpd serves loopback (and unix sockets) only.

Anyone who reaches the port can list and call every tool when nobody is authenticated, so
listening beyond loopback needs either an authentication mode or the explicit
``[auth] allow_anonymous_remote = true`` (which the daemon then warns about at every start).
The config validation and the daemon (for sockets systemd hands in) share this one check.
"""

from __future__ import annotations

from collections.abc import Iterable

from mcpd.auth.settings import AuthSettings
from mcpd.listen_addresses import is_local_bind


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
