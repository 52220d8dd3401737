"""Secret values in config files: ``{ "$credential" = "name" }``, ``{ "$env" = "VAR" }``,
``{ "$file" = "/path" }``.

Wherever a config value is expected, one of these one-key tables stands for a string read at
load time: a systemd credential (``$CREDENTIALS_DIRECTORY/name``, from ``LoadCredential=``),
an environment variable, or a file; one trailing newline is dropped. The result is a
``Secret``: a real ``str`` for whoever uses it, whose ``repr`` is masked, so a settings mapping
printed, logged with ``repr`` or shown by ``mcpd config show`` never reveals it. Errors name
the file and the key, never the value.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MASK = "********"


class Secret(str):
    """A resolved secret: compares, hashes and formats as its value; ``repr`` is masked.

    ``reference`` says where it came from (``$env:TOKEN``), which is safe to show.
    """

    reference: str

    def __new__(cls, value: str, reference: str) -> Secret:
        secret = super().__new__(cls, value)
        secret.reference = reference
        return secret

    def __repr__(self) -> str:
        return f"Secret({MASK!r}, {self.reference!r})"


class SecretError(Exception):
    """A secret reference that cannot be resolved; the message never holds the value."""


Environ = Mapping[str, str]


def _credential(name: str, environ: Environ) -> str:
    if not name or "/" in name or name in {".", ".."}:
        raise SecretError(f"$credential {name!r} is not a credential name")
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise SecretError(
            f"$credential {name!r}: $CREDENTIALS_DIRECTORY is not set "
            "(pass it with LoadCredential= in the service unit)"
        )
    return _read(Path(directory) / name, f"$credential {name!r}")


def _env(name: str, environ: Environ) -> str:
    if name not in environ:
        raise SecretError(f"$env {name!r}: the environment variable is not set")
    return environ[name]


def _file(name: str, environ: Environ) -> str:
    if not name.startswith("/"):
        raise SecretError(f"$file {name!r}: needs an absolute path")
    return _read(Path(name), f"$file {name!r}")


def _read(path: Path, what: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SecretError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SecretError(f"{what}: {path} is not UTF-8 text") from None


_KINDS: dict[str, Callable[[str, Environ], str]] = {
    "$credential": _credential,
    "$env": _env,
    "$file": _file,
}


def is_reference(value: Any) -> bool:
    """A table with a ``$``-key: a secret reference (or a mistyped one)."""
    return isinstance(value, dict) and any(str(key).startswith("$") for key in value)


def resolve_reference(table: Mapping[str, Any], environ: Environ) -> Secret:
    """The secret one ``{ "$kind" = "name" }`` table stands for."""
    if len(table) != 1:
        raise SecretError(f"a secret is one of {_kinds()} alone, got keys {sorted(table)}")
    ((kind, name),) = table.items()
    if kind not in _KINDS:
        close = difflib.get_close_matches(kind, list(_KINDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SecretError(f"unknown secret kind {kind!r}{hint}; expected one of {_kinds()}")
    if not isinstance(name, str):
        raise SecretError(f"{kind} expects a string, got {type(name).__name__}")
    value = _KINDS[kind](name, environ)
    if value.endswith("\n"):  # files and credentials usually end with one
        value = value[:-1].removesuffix("\r")
    return Secret(value, f"{kind}:{name}")


def _kinds() -> str:
    return ", ".join(_KINDS)


def resolve(value: Any, environ: Environ, where: str) -> Any:
    """``value`` with every secret reference inside it (tables, lists) resolved.

    ``where`` is the dotted key of ``value``; a ``SecretError`` starts with the key it is about.
    """
    if is_reference(value):
        try:
            return resolve_reference(value, environ)
        except SecretError as exc:
            raise SecretError(f"{where}: {exc}") from None
    if isinstance(value, dict):
        return {key: resolve(item, environ, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, environ, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def references(value: Any) -> list[str]:
    """Where the secrets inside ``value`` came from (``$env:TOKEN``...), in order."""
    if isinstance(value, Secret):
        return [value.reference]
    if isinstance(value, Mapping):
        return [ref for item in value.values() for ref in references(item)]
    if isinstance(value, list | tuple):
        return [ref for item in value for ref in references(item)]
    return []


def masked(value: Any) -> Any:
    """``value`` with every secret inside it replaced by ``********``."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, Mapping):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [masked(item) for item in value]
    return value
