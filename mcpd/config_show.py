"""``mcpd config show``: the effective config, each value with its origin, secrets masked.

The text form reads like a config file, one ``key = value  # origin`` line per key; the JSON
form maps table, key to ``{"value", "origin"}`` (plus ``"secrets"``, where the masked values
came from). A value that holds a secret is masked even if its setting's type dropped the
marker, so no resolved secret is ever printed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcpd.config import Entry, Key, LoadedConfig
from mcpd.secret_values import MASK, masked, references


def _shown(entry: Entry) -> Any:
    """The value to print: secrets masked, wholly if they can no longer be told apart."""
    if entry.secrets and not references(entry.value):
        return MASK
    value = masked(entry.value)
    return list(value) if isinstance(value, tuple) else value


def _origin(entry: Entry) -> str:
    return ", ".join([entry.origin, *entry.secrets])


def _tables(entries: Mapping[Key, Entry]) -> dict[str, dict[str, Entry]]:
    """``server``, ``tools``... then ``plugin.<name>`` tables, keys in load order."""
    tables: dict[str, dict[str, Entry]] = {}
    for key, entry in entries.items():
        tables.setdefault(".".join(key[:-1]), {})[key[-1]] = entry
    return tables


def render_text(loaded: LoadedConfig) -> str:
    """TOML-like lines; values JSON-encoded, which TOML reads the same for these types."""
    lines = [f"# files read, lowest precedence first: {', '.join(loaded.files) or 'none'}"]
    for table, keys in _tables(loaded.entries).items():
        lines += ["", f"[{table}]"]
        for key, entry in keys.items():
            value = json.dumps(_shown(entry), ensure_ascii=False)
            lines.append(f"{key} = {value}  # {_origin(entry)}")
    return "\n".join(lines) + "\n"


def render_json(loaded: LoadedConfig) -> str:
    """``{"files": [...], "config": {table: {key: {"value", "origin"[, "secrets"]}}}}``."""
    config: dict[str, dict[str, dict[str, Any]]] = {}
    for table, keys in _tables(loaded.entries).items():
        for key, entry in keys.items():
            shown: dict[str, Any] = {"value": _shown(entry), "origin": entry.origin}
            if entry.secrets:
                shown["secrets"] = list(entry.secrets)
            config.setdefault(table, {})[key] = shown
    return json.dumps({"files": list(loaded.files), "config": config}, indent=2)
