"""The state directory and its files: where they are, how they are written and read.

The directory is ``[server] state_dir`` when set, else ``$STATE_DIRECTORY`` (systemd's
``StateDirectory=``; its first entry), else there is none and nothing survives a restart.
It is created ``0700`` if missing. Its files are the daemon's alone:

- ``mcpd-keys.json``: the keys (``mcpd.persist.keyring``), made once, on first use;
- ``mcpd-state.json``: the state written at the end of a drain and taken (read, then
  removed) by the next start (``mcpd.persist.records``); a file that is refused is moved aside to
  ``mcpd-state.json.rejected`` for a look, so it is not tried again.

Every file is written atomically (a temporary file in the same directory, ``fsync``, rename,
``fsync`` of the directory), created ``0600``, and read only if it is a regular file owned by
the reading user (root may read any) that no one else may read or write.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from mcpd.persist.keyring import (
    Keyring,
    KeyringInvalid,
    decode_keyring,
    encode_keyring,
    new_keyring,
)

KEYS_FILE: Final = "mcpd-keys.json"
STATE_FILE: Final = "mcpd-state.json"
REJECTED_SUFFIX: Final = ".rejected"
MAX_KEYS_BYTES: Final = 64 * 1024


class StoreError(Exception):
    """A state file or directory that cannot be used (the message names it and says why)."""


def state_directory(configured: str, environ: Mapping[str, str]) -> Path | None:
    """Where the daemon keeps its state, or None (see the module)."""
    if configured:
        return Path(configured)
    # systemd lists one path per StateDirectory= entry, separated by colons.
    first = environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(first) if first else None


class StateStore:
    """The files of one state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.keys_path = directory / KEYS_FILE
        self.state_path = directory / STATE_FILE

    def prepare(self) -> None:
        """Create the directory (``0700``) if it is missing."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.directory}: cannot create: {exc.strerror or exc}") from None
        if not self.directory.is_dir():
            raise StoreError(f"{self.directory}: not a directory")

    # -- keys -------------------------------------------------------------------------------

    def load_keyring(self, now: float) -> tuple[Keyring, bool]:
        """The keys, made and written first if there are none yet; whether they were made."""
        data = self.read(self.keys_path, MAX_KEYS_BYTES)
        if data is None:
            keyring = new_keyring(now)
            if self.write(self.keys_path, encode_keyring(keyring), exclusive=True):
                return keyring, True
            data = self.read(self.keys_path, MAX_KEYS_BYTES)  # another process was first
            if data is None:
                raise StoreError(f"{self.keys_path}: appeared and vanished again")
        try:
            return decode_keyring(data), False
        except KeyringInvalid as exc:
            raise StoreError(f"{self.keys_path}: {exc}") from None

    def rotate_keyring(self, now: float) -> Keyring:
        """Retire the current ``requestState`` key for a new one; the keys now in force."""
        keyring, _ = self.load_keyring(now)
        rotated = keyring.rotated(now)
        self.write(self.keys_path, encode_keyring(rotated))
        return rotated

    # -- the state file ---------------------------------------------------------------------

    def read_state(self, max_bytes: int) -> bytes | None:
        """The state file's bytes (None if there is none); ``StoreError`` if it cannot be
        used (over ``max_bytes``, not ours alone)."""
        return self.read(self.state_path, max_bytes)

    def remove_state(self) -> None:
        try:
            self.state_path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.state_path}: cannot remove: {exc.strerror or exc}") from None
        self._sync_directory()

    def reject_state(self) -> None:
        """Keep a refused state file for a look, where it will not be read again."""
        aside = self.state_path.with_name(STATE_FILE + REJECTED_SUFFIX)
        try:
            os.replace(self.state_path, aside)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(
                f"{self.state_path}: cannot move aside: {exc.strerror or exc}"
            ) from None
        self._sync_directory()

    # -- files ------------------------------------------------------------------------------

    def read(self, path: Path, max_bytes: int) -> bytes | None:
        """The bytes of ``path`` (None if it does not exist), if it is ours alone."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{path}: cannot open: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as file:
            _check_private(path, os.fstat(fd))
            data = file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise StoreError(f"{path}: larger than {max_bytes} bytes")
        return data

    def write(self, path: Path, data: bytes, *, exclusive: bool = False) -> bool:
        """Replace ``path`` with ``data`` atomically; ``exclusive``: only if it is absent
        (False if it was not).

        Run as root (``mcpd state rotate-key`` by an operator), the file is given to the
        directory's owner, the user the daemon runs as.
        """
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            temporary.unlink(missing_ok=True)  # left by a process of this pid that crashed
            fd = os.open(temporary, flags, 0o600)
            try:
                os.fchmod(fd, 0o600)
                self._give_to_owner(fd)
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if exclusive:
                _link_new(temporary, path)
            else:
                os.replace(temporary, path)
        except FileExistsError:  # exclusive, and another process made it first
            return False
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise StoreError(f"{path}: cannot write: {exc.strerror or exc}") from None
        self._sync_directory()
        return True

    def _give_to_owner(self, fd: int) -> None:
        if os.geteuid() != 0:
            return
        owner = os.stat(self.directory)
        os.fchown(fd, owner.st_uid, owner.st_gid)

    def _sync_directory(self) -> None:
        """Make a rename or removal durable (best effort: not every file system can)."""
        with contextlib.suppress(OSError):
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _check_private(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"{path}: not a regular file")
    euid = os.geteuid()
    if euid not in (0, info.st_uid):
        raise StoreError(f"{path}: owned by uid {info.st_uid}, not by this user ({euid})")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise StoreError(f"{path}: mode {mode:04o} lets others in; it must be 0600")


def _link_new(temporary: Path, path: Path) -> None:
    """Give ``temporary`` the name ``path`` unless that exists (``FileExistsError``)."""
    try:
        os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
