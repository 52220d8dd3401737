"""One MCP server entry merged into a client's JSON config file, never at others' expense.

The file is read as plain JSON (a file with comments is refused, not rewritten without
them), the entry goes into the servers table at its key path (created when missing), and
the file is written back with its own indentation, through a temporary file renamed over
it, so a crash never leaves half a file (a new file is created readable by its owner only,
since it may soon hold an API key). An entry of the same name is replaced only when
asked; one that is already identical is left alone. ``plan`` computes the result without
touching anything, which is what a dry run shows.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcpd.startup import StartupError

Outcome = Literal["added", "replaced", "unchanged"]
DEFAULT_INDENT = 2


class ClientConfigError(StartupError):
    """A client config file mcpd will not change; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What writing the entry would do: the file's text before (None: no file) and after."""

    path: Path
    outcome: Outcome
    before: str | None
    after: str

    def diff(self) -> str:
        """A unified diff of the change (empty when unchanged)."""
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            self.after.splitlines(keepends=True),
            fromfile=str(self.path) if self.before is not None else "/dev/null",
            tofile=str(self.path),
        )
        return "".join(lines)


def plan(
    path: Path, table: Sequence[str], name: str, entry: Mapping[str, Any], *, force: bool
) -> Plan:
    """The file with ``entry`` under ``table`` -> ``name``; raises ``ClientConfigError``."""
    before = _read(path)
    document = _parse(path, before)
    servers = _table(document, table, path)
    existing = servers.get(name)
    if existing == entry:
        return Plan(path, "unchanged", before, before or "")
    if existing is not None and not force:
        where = ".".join([*table, name])
        raise ClientConfigError(
            f"{path}: {where} already exists and differs; pass --force to replace it, "
            "or --name to add this one beside it"
        )
    servers[name] = dict(entry)
    after = json.dumps(document, indent=_indent(before), ensure_ascii=False) + "\n"
    return Plan(path, "replaced" if existing is not None else "added", before, after)


def write(change: Plan) -> None:
    """Write the planned file atomically, keeping an existing file's permissions."""
    if change.outcome == "unchanged":
        return
    change.path.parent.mkdir(parents=True, exist_ok=True)
    mode = change.path.stat().st_mode & 0o7777 if change.before is not None else None
    descriptor, temporary = tempfile.mkstemp(prefix=f".{change.path.name}.", dir=change.path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(change.after)
        if mode is not None:
            os.chmod(temporary, mode)
        # else mkstemp's 0600 stays: a new file may soon hold an API key.
        os.replace(temporary, change.path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', exc)}") from None


def _parse(path: Path, text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientConfigError(
            f"{path}: not plain JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}; "
            "comments or trailing commas?); mcpd will not rewrite it: add the entry by hand "
            "(mcpd install --print shows it)"
        ) from None
    if not isinstance(document, dict):
        raise ClientConfigError(f"{path}: expected a JSON object at the top level")
    return document


def _table(document: dict[str, Any], keys: Sequence[str], path: Path) -> dict[str, Any]:
    node = document
    for depth, key in enumerate(keys):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(keys[: depth + 1])
            raise ClientConfigError(f"{path}: {where} is not a JSON object")
        node = child
    return node


def _indent(text: str | None) -> int | str:
    """The file's own indentation (the first indented line), else two spaces."""
    match = re.search(r"^([ \t]+)\S", text or "", re.MULTILINE)
    if match is None:
        return DEFAULT_INDENT
    indent = match.group(1)
    return len(indent) if set(indent) == {" "} else indent
