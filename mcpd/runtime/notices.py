"""Change notices: list changes and resource updates, fanned out to whoever listens.

Listeners are legacy sessions (which send on their GET stream) and 2026 ``subscriptions/listen``
streams. Delivery never blocks the announcer: each listener queues what it wants and drops
what it cannot hold.

Plugins announce a changed resource with ``mcpd.resource_updated(uri)``, from any task or
worker thread of the daemon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal, Protocol

import structlog
import trio

log = structlog.get_logger("mcpd.notices")

ListKind = Literal["tools", "prompts", "resources"]
LIST_KINDS: Final[tuple[ListKind, ...]] = ("tools", "prompts", "resources")


class Listener(Protocol):
    def list_changed(self, kind: ListKind) -> None: ...

    def resource_updated(self, uri: str) -> None: ...


class Notices:
    """The daemon's fan-out point for change notices."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._token: trio.lowlevel.TrioToken | None = None

    def add(self, listener: Listener) -> None:
        self._listeners.add(listener)

    def discard(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def __len__(self) -> int:
        return len(self._listeners)

    def list_changed(self, kind: ListKind) -> None:
        log.info("notices.list_changed", kind=kind, listeners=len(self._listeners))
        for listener in list(self._listeners):
            listener.list_changed(kind)

    def resource_updated(self, uri: str) -> None:
        for listener in list(self._listeners):
            listener.resource_updated(uri)

    def install(self) -> None:
        """Make ``mcpd.resource_updated`` reach this daemon (call from the trio thread)."""
        global _installed
        self._token = trio.lowlevel.current_trio_token()
        _installed = self

    def uninstall(self) -> None:
        global _installed
        if _installed is self:
            _installed = None

    def run_from_anywhere(self, announce: Callable[[Any], None], argument: Any) -> None:
        token = self._token
        if token is None:
            return
        try:
            in_loop = trio.lowlevel.current_trio_token() is token
        except RuntimeError:
            in_loop = False
        if in_loop:
            announce(argument)
            return
        # A worker thread (a sync tool) or a thread of the plugin's own: hand it to the loop.
        try:
            trio.from_thread.run_sync(announce, argument, trio_token=token)
        except trio.RunFinishedError:
            return


_installed: Notices | None = None


def resource_updated(uri: str) -> bool:
    """Tell subscribed clients that the resource at ``uri`` changed.

    Callable from any task or thread of the daemon; clients that subscribed to ``uri``
    (``resources/subscribe`` on a session, or a 2026 listen stream) get
    ``notifications/resources/updated``. Returns False when no daemon is running (in a unit
    test, say), where it does nothing.

    Example::

        async def watch(path: Path) -> None:
            async for _ in changes(path):
                mcpd.resource_updated(f"file://{path}")
    """
    if not isinstance(uri, str) or not uri:
        raise ValueError("uri must be a non-empty string")
    notices = _installed
    if notices is None:
        return False
    notices.run_from_anywhere(notices.resource_updated, uri)
    return True


def list_changed(kind: str) -> bool:
    """Tell clients that the daemon's list of ``kind`` ("tools", "prompts" or "resources")
    changed and should be fetched again.

    mcpd announces the changes a reload makes by itself; call this when what a plugin serves
    under a list changes by other means (a template whose matches change, say). Returns
    False when no daemon is running.

    Example::

        mcpd.list_changed("resources")
    """
    if kind not in LIST_KINDS:
        raise ValueError(f"kind must be one of {', '.join(LIST_KINDS)}, got {kind!r}")
    notices = _installed
    if notices is None:
        return False
    notices.run_from_anywhere(notices.list_changed, kind)
    return True
