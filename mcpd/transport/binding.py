"""Binding the listen addresses for hypercorn, so that a failure names the address and why.

hypercorn binds every address of its config in one go and lets a bare ``OSError`` escape
(``[Errno 98] Address already in use``, with no address in it). ``ListenConfig`` binds them one
at a time and turns a failure into a ``ListenError``: which address, which config key, and the
cause in words a user can act on. It also refuses a unix socket path where another process
is still listening; hypercorn would silently delete that socket and take the path over.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from pathlib import Path
from typing import Final

from mcpd.auth.tls import TlsConfig
from mcpd.startup import StartupError

PRIVILEGED_PORTS: Final = 1024
UNIX_PATH_MAX: Final = 107  # bytes of sun_path, less its terminating NUL (Linux)


class ListenError(StartupError):
    """A listen address that cannot be bound: ``cannot listen on ADDRESS (KEY): CAUSE``."""

    def __init__(self, address: str, key: str, cause: str) -> None:
        super().__init__(f"cannot listen on {address} ({key}): {cause}")
        self.address = address
        self.key = key
        self.cause = cause


class ListenConfig(TlsConfig):
    """hypercorn's ``Config`` whose sockets are bound one by one, failures as ``ListenError``.

    ``key`` names the setting the addresses came from ("server.listen", "metrics.listen").

    Example::

        config = ListenConfig("server.listen")
        config.bind = ["127.0.0.1:8765"]
        await hypercorn.trio.serve(app, config)  # raises ListenError if the port is taken
    """

    def __init__(self, key: str, tls: tuple[str, str] = ("", "")) -> None:
        super().__init__(*tls)  # a certificate and private key: serve TLS (mcpd.auth.tls)
        self.listen_key = key

    def _create_sockets(
        self, binds: list[str], type_: int = socket.SOCK_STREAM
    ) -> list[socket.socket]:
        sockets: list[socket.socket] = []
        try:
            for bind in binds:
                _refuse_live_unix_socket(bind, self.listen_key)
                try:
                    sockets += super()._create_sockets([bind], type_)
                except OSError as exc:
                    raise ListenError(bind, self.listen_key, describe(exc, bind)) from None
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return sockets


def _refuse_live_unix_socket(bind: str, key: str) -> None:
    if not bind.startswith("unix:"):
        return
    path = bind.removeprefix("unix:")
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return
    except OSError:
        return  # nothing there (or not ours to look at): binding reports what is wrong
    with socket.socket(socket.AF_UNIX) as probe, contextlib.suppress(OSError):
        probe.settimeout(1.0)
        probe.connect(path)
        raise ListenError(bind, key, "another process is listening on this socket")


# errno -> cause, for host:port addresses
_TCP_CAUSES: Final = {
    errno.EADDRINUSE: "the address is already in use (is another mcpd or another server "
    "running there?)",
    errno.EADDRNOTAVAIL: "this host has no network interface with that address",
    errno.EAFNOSUPPORT: "this host does not support that address family",
}


def describe(exc: OSError, bind: str) -> str:
    """What went wrong binding ``bind``, in words a user can act on."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied ({_permission_hint(bind)})"
    if bind.startswith("unix:"):
        return _unix_cause(exc, bind.removeprefix("unix:"))
    return _TCP_CAUSES.get(exc.errno or 0) or _lower_first(exc.strerror or str(exc))


def _permission_hint(bind: str) -> str:
    if bind.startswith("unix:"):
        directory = Path(bind.removeprefix("unix:")).parent
        return f"this user may not create a socket in {directory}"
    port = bind.rpartition(":")[2]
    if port.isdigit() and 0 < int(port) < PRIVILEGED_PORTS:
        return f"ports below {PRIVILEGED_PORTS} need root or CAP_NET_BIND_SERVICE"
    return "the system refused this user the address"


def _unix_cause(exc: OSError, path: str) -> str:
    if exc.errno is None and "too long" in str(exc):
        return f"the socket path is too long (at most {UNIX_PATH_MAX} bytes)"
    causes = {
        errno.ENOENT: f"the directory {Path(path).parent} does not exist",
        errno.EADDRINUSE: f"{path} already exists and is not a socket",
        errno.ENOTDIR: f"a parent of {path} is not a directory",
    }
    return causes.get(exc.errno or 0) or _lower_first(exc.strerror or str(exc))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
