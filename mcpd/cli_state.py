"""``mcpd state``: the state directory from the command line.

- ``mcpd state show``: where the state lives, the keys (by id, never their bytes) and what a
  state file waiting for the next start holds.
- ``mcpd state rotate-key``: a new 2026 ``requestState`` key; the old one still opens the
  states it sealed for ``input_timeout_seconds``. A running daemon seals with the new key
  from its next reload (SIGHUP), or restart.

Run as root (an operator on a systemd host), files written are given to the directory's
owner, the user the daemon runs as.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcpd.cli_inspect import EXIT_CONFIG
from mcpd.config import Settings
from mcpd.persist.keyring import Keyring, SealKey
from mcpd.persist.records import StateRejected, decode_state, key_id
from mcpd.persist.store import StateStore, StoreError, state_directory


def _fail(message: str) -> int:
    print(f"mcpd: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _store(settings: Settings, state_dir: Path | None) -> StateStore | str:
    directory = state_dir or state_directory(settings.server.state_dir, os.environ)
    if directory is None:
        return (
            "no state directory: set [server] state_dir or pass --state-dir"
            " (under systemd: /var/lib/mcpd)"
        )
    if not directory.is_dir():
        return f"{directory}: no such directory (has the daemon run yet?)"
    return StateStore(directory)


def rotate_key(settings: Settings, state_dir: Path | None) -> int:
    """``mcpd state rotate-key``."""
    if settings.tools.request_state_key:
        return _fail(
            "[tools] request_state_key is configured, and the daemon seals with it, not with"
            " the state directory's key: change that secret instead"
        )
    store = _store(settings, state_dir)
    if isinstance(store, str):
        return _fail(store)
    now = time.time()
    try:
        keyring = store.rotate_keyring(now)
    except StoreError as exc:
        return _fail(str(exc))
    until = _iso(now + settings.tools.input_timeout)
    print(f"rotated the requestState key in {store.keys_path}: now {key_id(keyring.current.key)}")
    print(f"the previous key, {key_id(keyring.request_state[1].key)}, still opens until {until}")
    print(
        "a running daemon seals with the new key after `systemctl reload mcpd` (SIGHUP)",
        file=sys.stderr,
    )
    return 0


def show(settings: Settings, state_dir: Path | None, *, as_json: bool) -> int:
    """``mcpd state show``."""
    store = _store(settings, state_dir)
    if isinstance(store, str):
        return _fail(store)
    try:
        keys_data = store.read(store.keys_path, 1 << 16)
        keyring = store.load_keyring(time.time())[0] if keys_data is not None else None
        state = _state_summary(store, keyring, 2 * settings.server.state_max_bytes)
    except StoreError as exc:
        return _fail(str(exc))
    report = {
        "directory": str(store.directory),
        "request_state_key_configured": bool(settings.tools.request_state_key),
        "keys": None if keyring is None else _keys_summary(keyring),
        "state_file": state,
    }
    print(json.dumps(report, indent=2) if as_json else _text(report))
    return 0


def _keys_summary(keyring: Keyring) -> dict[str, Any]:
    return {
        "state_key": key_id(keyring.state_key),
        "request_state": [_seal_key(k) for k in keyring.request_state],
    }


def _seal_key(key: SealKey) -> dict[str, Any]:
    retired = None if key.retired is None else _iso(key.retired)
    return {"id": key_id(key.key), "created": _iso(key.created), "retired": retired}


def _state_summary(
    store: StateStore, keyring: Keyring | None, max_bytes: int
) -> dict[str, Any] | None:
    data = store.read(store.state_path, max_bytes)
    if data is None:
        return None
    summary: dict[str, Any] = {"path": str(store.state_path), "bytes": len(data)}
    if keyring is None:
        return {**summary, "problem": "no keys file to check it with"}
    try:
        document = decode_state(data, keyring.state_key)
    except StateRejected as exc:
        return {**summary, "problem": str(exc)}
    return {
        **summary,
        "written_at": _iso(document.written_at),
        "writer": document.writer,
        "sessions": len(document.sessions),
        "request_state_nonces": len(document.request_state_nonces),
    }


def _text(report: dict[str, Any]) -> str:
    lines = [f"state directory: {report['directory']}"]
    keys = report["keys"]
    if report["request_state_key_configured"]:
        lines.append("requestState key: [tools] request_state_key (configured)")
    if keys is None:
        lines.append("keys: none yet (made at the daemon's first start)")
    else:
        lines.append(f"state file key: {keys['state_key']}")
        for number, key in enumerate(keys["request_state"]):
            role = "current" if number == 0 else f"retired {key['retired']}"
            lines.append(f"requestState key {key['id']}: {role} (made {key['created']})")
    state = report["state_file"]
    if state is None:
        lines.append("state file: none (a running daemon took it at its start)")
    elif "problem" in state:
        lines.append(f"state file: {state['path']}, {state['bytes']} bytes: {state['problem']}")
    else:
        lines.append(
            f"state file: {state['path']}, {state['bytes']} bytes, {state['sessions']} session(s),"
            f" written {state['written_at']} by {state['writer']}"
        )
    return "\n".join(lines)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
