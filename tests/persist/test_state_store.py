"""The state directory's files on a real file system: keys made once, atomic private writes,
and files that are not ours alone refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from mcpd.persist.keyring import (
    MAX_RETIRED,
    KeyringInvalid,
    decode_keyring,
    encode_keyring,
    new_keyring,
)
from mcpd.persist.store import StateStore, StoreError, state_directory

NOW = 1_800_000_000.0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_directory_is_the_config_s_else_systemd_s_else_none(tmp_path: Path) -> None:
    assert state_directory("/srv/mcpd", {"STATE_DIRECTORY": "/var/lib/mcpd"}) == Path("/srv/mcpd")
    assert state_directory("", {"STATE_DIRECTORY": "/var/lib/mcpd:/var/lib/other"}) == Path(
        "/var/lib/mcpd"
    )
    assert state_directory("", {}) is None


def test_keys_are_made_once_private_and_then_read_back(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.prepare()
    assert mode(store.directory) == 0o700
    made, created = store.load_keyring(NOW)
    assert created
    assert mode(store.keys_path) == 0o600
    again, created = store.load_keyring(NOW + 10)
    assert not created
    assert again == made
    assert len({made.state_key, made.current.key}) == 2  # one key per purpose


def test_a_rotation_retires_the_current_key_and_keeps_a_few(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    first, _ = store.load_keyring(NOW)
    rotated = store.rotate_keyring(NOW + 100)
    assert rotated.state_key == first.state_key  # the state file's key stays
    assert rotated.current.key != first.current.key
    assert rotated.request_state[1].key == first.current.key
    assert rotated.request_state[1].retired == NOW + 100
    assert store.load_keyring(NOW + 200)[0] == rotated
    # Retired keys open their states for one ttl after their retirement, then no more.
    assert rotated.previous(NOW + 150, ttl=60) == ((first.current.key, NOW + 160),)
    assert rotated.previous(NOW + 161, ttl=60) == ()
    for step in range(10):
        rotated = store.rotate_keyring(NOW + 300 + step)
    assert len(rotated.request_state) == 1 + MAX_RETIRED


def test_an_unusable_keys_file_is_an_error_naming_it(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.write(store.keys_path, b'{"format": "mcpd-keys", "version": 1, "state_key": "AAAA"}')
    with pytest.raises(StoreError, match=r"mcpd-keys\.json"):
        store.load_keyring(NOW)
    for bad in (b"[]", b"{", b'{"format": "mcpd-keys", "version": 9}'):
        with pytest.raises(KeyringInvalid):
            decode_keyring(bad)
    good = new_keyring(NOW)
    assert decode_keyring(encode_keyring(good)) == good


def test_files_others_may_read_are_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.write(store.state_path, b"data")
    assert store.read_state(100) == b"data"
    os.chmod(store.state_path, 0o644)
    with pytest.raises(StoreError, match="0644"):
        store.read_state(100)


def test_a_symlink_or_an_oversized_file_is_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"x")
    os.chmod(target, 0o600)
    store.state_path.symlink_to(target)
    with pytest.raises(StoreError, match="cannot open"):
        store.read_state(100)
    store.state_path.unlink()
    store.write(store.state_path, b"x" * 101)
    with pytest.raises(StoreError, match="larger than 100"):
        store.read_state(100)


def test_writes_replace_atomically_and_leave_no_temporary_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.write(store.state_path, b"one")
    assert store.write(store.state_path, b"two")
    assert store.read_state(10) == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mcpd-state.json"]
    # Exclusive: only when absent, and then nothing is changed.
    assert not store.write(store.state_path, b"three", exclusive=True)
    assert store.read_state(10) == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mcpd-state.json"]


def test_a_refused_state_file_is_moved_aside_and_a_taken_one_removed(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.write(store.state_path, b"bad")
    store.reject_state()
    assert not store.state_path.exists()
    assert (tmp_path / "mcpd-state.json.rejected").read_bytes() == b"bad"
    store.write(store.state_path, b"good")
    store.remove_state()
    assert store.read_state(10) is None
    store.remove_state()  # nothing there: fine
    store.reject_state()


def test_a_state_directory_that_cannot_be_made_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StoreError, match="cannot create"):
        StateStore(blocker / "state").prepare()
    assert orjson.loads(encode_keyring(new_keyring(NOW)))["format"] == "mcpd-keys"
