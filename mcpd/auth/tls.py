"""Direct TLS through hypercorn: ``[server] tls_certificate`` and ``tls_private_key``.

Each value is either an absolute path to a PEM file, or the PEM text itself (what a secret
reference such as ``{ "$credential" = "tls-key" }`` resolves to). Python's ``ssl`` loads a
certificate chain and key only from files, so PEM text is handed to it through an anonymous
in-memory file (``memfd_create``, reached as ``/proc/self/fd/N``): the key never touches a
file system another process could read. Where memfd is missing, a file in a fresh private
directory (mode 0700, file 0600) is used and removed as soon as the context has loaded it.

``TlsConfig`` is a hypercorn ``Config`` that loads the material when hypercorn builds its
SSL context; ``check_tls`` loads it once at config validation so a wrong path, a key that
does not match the certificate, or half a pair is a config error, not a failed start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hypercorn.config import Config

PEM_MARKER = "-----BEGIN"


class TlsError(Exception):
    """TLS material that cannot be used; ``key`` names the config key at fault, if known."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def is_pem_text(value: str) -> bool:
    return value.lstrip().startswith(PEM_MARKER)


@contextlib.contextmanager
def pem_files(certificate: str, private_key: str) -> Iterator[tuple[str, str]]:
    """Paths ``ssl`` can load for both values, valid inside the ``with`` block only."""
    with contextlib.ExitStack() as stack:
        paths = [
            stack.enter_context(_as_file(value, key))
            for value, key in ((certificate, "tls_certificate"), (private_key, "tls_private_key"))
        ]
        yield paths[0], paths[1]


@contextlib.contextmanager
def _as_file(value: str, key: str) -> Iterator[str]:
    if not is_pem_text(value):
        if not value.startswith("/"):
            raise TlsError("expected an absolute path to a PEM file, or PEM text", key)
        if not os.path.isfile(value) or not os.access(value, os.R_OK):
            raise TlsError(f"cannot read {value}: not a readable file", key)
        yield value
        return
    data = value.encode("utf-8")
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        fd = os.memfd_create("mcpd-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    directory = tempfile.mkdtemp(prefix="mcpd-tls-")  # mode 0700
    try:
        path = os.path.join(directory, "material.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def load_into(context: ssl.SSLContext, certificate: str, private_key: str) -> None:
    """Load the chain and key into ``context``; ``TlsError`` says what is wrong (no PEM text)."""
    with pem_files(certificate, private_key) as (certfile, keyfile):
        try:
            context.load_cert_chain(certfile=certfile, keyfile=keyfile)
        except (ssl.SSLError, OSError) as exc:
            # The ssl message names neither the key nor its content, only what failed.
            reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
            raise TlsError(f"the certificate and key do not load together: {reason}") from None


def check_tls(certificate: str, private_key: str) -> None:
    """Both empty (no TLS), or a pair that loads; raises ``TlsError`` otherwise."""
    if not certificate and not private_key:
        return
    if not certificate:
        raise TlsError("tls_private_key is set: tls_certificate is needed too", "tls_certificate")
    if not private_key:
        raise TlsError("tls_certificate is set: tls_private_key is needed too", "tls_private_key")
    load_into(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), certificate, private_key)


class TlsConfig(Config):
    """A hypercorn ``Config`` serving TLS from mcpd's settings (paths or PEM text), or plain
    HTTP when both are empty.

    hypercorn builds its context in ``create_ssl_context`` (ciphers, TLS >= 1.2, ALPN for h2)
    from ``certfile``/``keyfile``; they point at the material only while it loads.
    """

    def __init__(self, certificate: str = "", private_key: str = "") -> None:
        super().__init__()
        self._material = (certificate, private_key)

    @property
    def ssl_enabled(self) -> bool:
        return all(self._material) or bool(super().ssl_enabled)

    def create_ssl_context(self) -> ssl.SSLContext | None:
        if not all(self._material):
            return super().create_ssl_context()
        with pem_files(*self._material) as (certfile, keyfile):
            self.certfile, self.keyfile = certfile, keyfile
            try:
                return super().create_ssl_context()
            finally:
                self.certfile = self.keyfile = None


def hypercorn_config(certificate: str, private_key: str) -> Config:
    """A ``TlsConfig``: TLS when both are set, plain HTTP otherwise."""
    return TlsConfig(certificate, private_key)
