"""Static API keys made by the real ``mcpd auth new-key`` command, and sessions that send one."""

from __future__ import annotations

import subprocess
import sys

import httpx

from support.client import Legacy
from support.daemon import WAIT


def new_key(principal: str, *scopes: str) -> tuple[str, str]:
    """``mcpd auth new-key``, run for real: (the key, its ``hash = ...`` line for the config)."""
    argv = [sys.executable, "-m", "mcpd", "auth", "new-key", "--principal", principal]
    for scope in scopes:
        argv += ["--scope", scope]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=WAIT).stdout
    key = next(line.removeprefix("key: ") for line in out.splitlines() if line.startswith("key: "))
    hash_line = next(line for line in out.splitlines() if line.startswith("hash = "))
    return key, hash_line


def key_table(principal: str, hash_line: str, scopes: list[str] | None = None) -> str:
    """The ``[[auth.keys]]`` table for a key."""
    scope_list = ", ".join(f'"{scope}"' for scope in scopes or [])
    return f'[[auth.keys]]\nprincipal = "{principal}"\n{hash_line}\nscopes = [{scope_list}]\n'


class Keyed(Legacy):
    """A legacy session that sends a bearer token with every request."""

    def __init__(self, http: httpx.Client, url: str, token: str) -> None:
        super().__init__(http, url)
        self.token = token

    def headers(self, **extra: str) -> dict[str, str]:
        return super().headers(authorization=f"Bearer {self.token}", **extra)
