"""Which config files a load reads, lowest precedence first.

The system file is ``/etc/mcpd/mcpd.toml``, or ``$CONFIGURATION_DIRECTORY/mcpd.toml`` when
systemd sets that variable (``ConfigurationDirectory=``; the first of a colon-separated list).
Its drop-in directory ``mcpd.toml.d/`` beside it holds ``*.toml`` files read in lexical order,
whether or not the system file exists. ``--config PATH`` comes last: an explicit file that must
exist, with no drop-in directory of its own, so a drop-in always belongs to the system file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

DEFAULT_CONFIG_PATH = Path("/etc/mcpd/mcpd.toml")


class DropInError(Exception):
    """A drop-in directory that exists but cannot be listed."""


def system_config_path(environ: Mapping[str, str]) -> Path:
    """``$CONFIGURATION_DIRECTORY/mcpd.toml`` under systemd, else ``/etc/mcpd/mcpd.toml``."""
    directory = environ.get("CONFIGURATION_DIRECTORY", "").split(":")[0]
    return Path(directory) / "mcpd.toml" if directory else DEFAULT_CONFIG_PATH


def drop_ins(main: Path) -> list[Path]:
    """``<main>.d/*.toml`` in lexical order, hidden files skipped; none without the directory."""
    directory = main.with_name(main.name + ".d")
    if not directory.is_dir():
        return []
    try:
        names = sorted(
            entry.name
            for entry in directory.iterdir()
            if entry.name.endswith(".toml") and not entry.name.startswith(".")
        )
    except OSError as exc:
        raise DropInError(f"{directory}: cannot list drop-ins: {exc.strerror or exc}") from None
    return [directory / name for name in names if not (directory / name).is_dir()]


def config_files(path: Path | None, environ: Mapping[str, str]) -> list[Path]:
    """The system file (when it exists), its drop-ins, then ``path`` (``--config``).

    ``path`` naming the system file itself adds nothing: its drop-ins stay above it.
    """
    system = system_config_path(environ)
    files = [system] if system.exists() else []
    files += drop_ins(system)
    if path is not None and not (files and files[0] == system and _same(path, system)):
        files.append(path)
    return files


def _same(path: Path, other: Path) -> bool:
    try:
        return path.samefile(other)
    except OSError:
        return False
