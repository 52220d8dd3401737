"""What the daemon carries across a restart, and when: sessions, requestState keys, used nonces.

- At start, ``RestartState.open`` finds the state directory (``mcpd.persist.store``) and loads
  its keys, making them the first time. ``request_states`` keys the 2026 ``requestState``
  seals from them, unless ``[tools] request_state_key`` is configured.
- Before the daemon listens, ``restore`` takes the state file the last process wrote: its
  sessions come back under their ids (those idle past their deadline, or in a file older
  than ``state_max_age_seconds``, do not), its used nonces stay used, and restored sessions
  hear about lists that differ from those they last saw (an upgrade changed the tools).
- At the end of the drain, once every request has ended with its answer or its terminal
  error, ``save`` writes the live sessions, within ``state_max_bytes``.
- On reload (SIGHUP), ``rekey`` reads the keys again: ``mcpd state rotate-key`` takes effect.

None of it can fail a start or a stop: a directory or file that cannot be used is logged and
the daemon goes on without it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import structlog
import trio

from mcpd._version import __version__
from mcpd.config import ServerSettings, Settings, ToolsSettings
from mcpd.persist.keyring import Keyring
from mcpd.persist.records import (
    Budget,
    ConnectionRecord,
    Encoded,
    SessionRecord,
    StateDocument,
    StateRejected,
    decode_state,
    encode_state,
    key_id,
    usable,
)
from mcpd.persist.store import StateStore, StoreError, state_directory
from mcpd.plugin.registry import Registry
from mcpd.runtime.flights import CLIENT_DISCONNECTED
from mcpd.runtime.inputs import RequestStates
from mcpd.runtime.notices import LIST_KINDS, ListKind
from mcpd.runtime.sessions import Session, SessionManager

log = structlog.get_logger("mcpd.state")

Clock = Callable[[], float]


def list_digests(registry: Registry) -> dict[str, str]:
    """A short digest of each list (tools, prompts, resources) as clients see it."""
    fingerprint = registry.fingerprint()
    return {
        kind: hashlib.sha256(repr(fingerprint[kind]).encode()).hexdigest()[:32]
        for kind in LIST_KINDS
    }


class RestartState:
    """The daemon's state directory, if it has one, and what it keeps there."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore | None,
        keyring: Keyring | None,
        *,
        clock: Clock = time.time,
    ) -> None:
        self._server: ServerSettings = settings.server
        self._tools: ToolsSettings = settings.tools
        self.store = store
        self.keyring = keyring
        self._clock = clock

    @classmethod
    def open(
        cls,
        settings: Settings,
        environ: Mapping[str, str] = os.environ,
        *,
        clock: Clock = time.time,
    ) -> RestartState:
        """The state directory and its keys; without them, a state that keeps nothing."""
        directory = state_directory(settings.server.state_dir, environ)
        if directory is None:
            log.info(
                "state.disabled",
                detail="no [server] state_dir and no $STATE_DIRECTORY: sessions and 2026 input"
                " rounds do not survive a restart",
            )
            return cls(settings, None, None, clock=clock)
        store = StateStore(directory)
        try:
            store.prepare()
            keyring, made = store.load_keyring(clock())
        except StoreError as exc:
            log.error("state.unavailable", error=str(exc), detail="nothing survives a restart")
            return cls(settings, None, None, clock=clock)
        if made:
            log.info("state.keys_created", path=str(store.keys_path))
        return cls(settings, store, keyring, clock=clock)

    @property
    def persists_sessions(self) -> bool:
        return self.store is not None and self._server.persist_sessions

    def request_states(self) -> RequestStates:
        """The requestState seals: the configured key, else the state directory's current key
        (retired ones still opening their states), else a random key for this process."""
        tools = self._tools
        if tools.request_state_key:
            key = hashlib.sha256(tools.request_state_key.encode()).digest()
            return RequestStates(tools.input_timeout, key=key)
        if self.keyring is None:
            return RequestStates(tools.input_timeout)
        current, previous = self._keys(self.keyring)
        return RequestStates(tools.input_timeout, key=current, previous=previous)

    def _keys(self, keyring: Keyring) -> tuple[bytes, tuple[tuple[bytes, float], ...]]:
        return keyring.current.key, keyring.previous(self._clock(), self._tools.input_timeout)

    async def rekey(self, states: RequestStates) -> None:
        """Read the keys file again and seal with its current key (after a rotation)."""
        store, running = self.store, self.keyring
        if store is None or running is None or self._tools.request_state_key:
            return
        try:
            keyring, _ = await trio.to_thread.run_sync(store.load_keyring, self._clock())
        except StoreError as exc:
            log.error("state.keys_unreadable", error=str(exc), detail="kept the keys in use")
            return
        self.keyring = keyring
        states.use_keys(*self._keys(keyring))
        if keyring.current.key != running.current.key:
            log.info(
                "state.key_rotated",
                key=key_id(keyring.current.key),
                previous_accepted=len(keyring.previous(self._clock(), self._tools.input_timeout)),
            )

    # -- at start ---------------------------------------------------------------------------

    async def restore(
        self,
        sessions: SessionManager,
        states: RequestStates,
        lists: dict[str, str],
        connections: KeptConnections | None = None,
    ) -> list[Session]:
        """Take the last process's state file and bring back what is still good in it: an
        HTTP+SSE session only if its connection came back with it (``connections``)."""
        store = self.store
        if store is None or self.keyring is None:
            return []
        if not self._server.persist_sessions:
            await trio.to_thread.run_sync(_discard, store)
            return []
        document = await trio.to_thread.run_sync(self._take_document, store, self.keyring)
        if document is None:
            return []
        now = self._clock()
        found = usable(document, now, self._server.state_max_age)
        records = [r for r in found.sessions if _carried(r, connections)]
        restored = await sessions.restore(records, now)
        adopted = _adopt(restored, connections)
        nonces = states.restore_spent(document.request_state_nonces)
        changed = _tell_changed_lists(restored, document.lists, lists)
        log.info(
            "state.restored",
            sessions=len(restored),
            expired=found.expired,
            too_old=found.too_old,
            skipped=len(records) - len(restored),
            sse_connections=adopted,
            sse_connections_lost=len(found.sessions) - len(records),
            nonces=nonces,
            age_seconds=round(now - document.written_at, 3),
            lists_changed=changed,
        )
        return restored

    def _take_document(self, store: StateStore, keyring: Keyring) -> StateDocument | None:
        """The state file's document, the file removed (or moved aside if refused)."""
        try:
            data = store.read_state(self._server.state_max_bytes + OVERHEAD_SLACK)
            if data is None:
                return None
            document = decode_state(data, keyring.state_key)
        except StateRejected as exc:
            _reject(store, exc.reason, exc.detail)
            return None
        except StoreError as exc:
            _reject(store, "unreadable", str(exc))
            return None
        except Exception as exc:  # whatever else a damaged file causes: never fatal at start
            _reject(store, "unreadable", f"{type(exc).__name__} while reading it")
            return None
        try:
            # Taken: a crash of this process must not bring back sessions that ended since.
            store.remove_state()
        except StoreError as exc:
            log.error("state.not_removed", error=str(exc), detail="its sessions are not restored")
            return None
        return document

    # -- at the end of the drain ------------------------------------------------------------

    async def save(
        self,
        sessions: SessionManager,
        states: RequestStates,
        lists: dict[str, str],
        interrupted: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Write the live sessions for the next process (see the module)."""
        if interrupted:
            log.warning(
                "state.requests_lost",
                requests=len(interrupted),
                calls=list(interrupted),
                detail="requests still running at the stop ended with the terminal error"
                " (-32000); their sessions go on in the next process, the requests do not",
            )
        store = self.store
        if store is None or self.keyring is None or not self._server.persist_sessions:
            return
        now = self._clock()
        document = StateDocument(
            written_at=now,
            writer=f"mcpd {__version__}",
            lists=lists,
            request_state_nonces=states.spent(),
            sessions=tuple(sessions.snapshot(now)),
        )
        budget = Budget(self._server.state_max_bytes, self._server.state_session_bytes)
        try:
            # Abandonable: the stop's deadline must hold even on a disk that hangs.
            write = partial(self._write, store, document, self.keyring.state_key, budget)
            encoded = await trio.to_thread.run_sync(write, abandon_on_cancel=True)
        except StoreError as exc:
            log.error("state.save_failed", error=str(exc), sessions=len(document.sessions))
            return
        # A POST stream kept for a late resume is not carried over: a resume of it gets 410.
        streams = sum(len(session.resumable) for session in sessions if not session.closing)
        _saved(store, encoded, len(document.sessions), streams)

    @staticmethod
    def _write(store: StateStore, document: StateDocument, key: bytes, budget: Budget) -> Encoded:
        encoded = encode_state(document, key, budget)
        store.write(store.state_path, encoded.data)
        return encoded


# What a file may exceed state_max_bytes by: its header, and the estimate's margin.
OVERHEAD_SLACK = 64 * 1024


class KeptConnections(Protocol):
    """The 2024-11-05 SSE connections the service manager kept (``HttpSse``)."""

    def holds(self, record: ConnectionRecord) -> bool: ...

    def adopt(self, session: Session, record: ConnectionRecord) -> bool: ...


def _carried(record: SessionRecord, connections: KeptConnections | None) -> bool:
    """Whether ``record``'s session can go on: not an HTTP+SSE one, or one whose connection
    came back (without it, its client has already seen the session end)."""
    kept = record.connection
    return kept is None or (connections is not None and connections.holds(kept))


def _adopt(restored: Sequence[Session], connections: KeptConnections | None) -> int:
    """Put the restored HTTP+SSE sessions back on their connections; how many."""
    adopted = 0
    for session in restored:
        kept = session.connection
        if kept is None:
            continue
        if connections is not None and connections.adopt(session, kept):
            adopted += 1
        else:
            session.close(CLIENT_DISCONNECTED)
    return adopted


def _tell_changed_lists(
    restored: Sequence[Session], before: Mapping[str, str], now: Mapping[str, str]
) -> list[ListKind]:
    changed = [kind for kind in LIST_KINDS if before.get(kind) != now.get(kind)]
    for session in restored:
        for kind in changed:
            session.list_changed(kind)
    return changed


def _discard(store: StateStore) -> None:
    """``persist_sessions = false``: a state file left by an earlier run is not used."""
    try:
        store.remove_state()
    except StoreError as exc:
        log.error("state.not_removed", error=str(exc))


def _reject(store: StateStore, reason: str, detail: str) -> None:
    try:
        store.reject_state()
    except StoreError as exc:
        aside = f"it could not be moved aside: {exc}"
    else:
        aside = "the file was moved aside"
    log.warning(
        "state.rejected",
        reason=reason,
        error=detail,
        path=str(store.state_path),
        detail=f"started without the previous sessions; {aside}",
    )


def _saved(store: StateStore, encoded: Encoded, live: int, streams: int) -> None:
    left_out = encoded.too_large + encoded.over_budget
    (log.warning if left_out or encoded.nonces_dropped else log.info)(
        "state.saved",
        path=str(store.state_path),
        bytes=len(encoded.data),
        sessions=encoded.saved,
        of_sessions=live,
        trimmed=encoded.trimmed,
        too_large=encoded.too_large,
        over_budget=encoded.over_budget,
        nonces_dropped=encoded.nonces_dropped,
        post_streams_not_kept=streams,
    )
