"""A real OAuth 2.1 authorization server for the tests: oidc-provider on Node, on loopback.

``tests/auth/oidc/package.json`` and its ``package-lock.json`` pin oidc-provider and its whole
tree (nested packages included), installed once with ``npm ci`` into the conformance
runner's cache, under the runner's cache lock and with its temp-dir-then-rename install;
Node >= 22 comes from the runner too (``find_node``). ``tests/auth/oidc/provider.mjs``
configures it for the MCP flow (see its header) and prints its issuer URL once listening.

Without npm or Node the tests that use it fail, saying why: they never skip.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from conformance import runner

OIDC = Path(__file__).resolve().parents[1] / "auth" / "oidc"
START_TIMEOUT = 60.0  # seconds for Node to print its issuer; only turns a hang into a failure


def locked_versions(lockfile: Path = OIDC / "package-lock.json") -> dict[str, str]:
    """Install path (``node_modules/a/node_modules/b``) -> exact version, from the lockfile."""
    packages = json.loads(lockfile.read_text())["packages"]
    return {path: entry["version"] for path, entry in packages.items() if path}


def _problem(prefix: Path, pins: dict[str, str]) -> str | None:
    for path, version in pins.items():
        try:
            found = json.loads((prefix / path / "package.json").read_text()).get("version")
        except (OSError, ValueError):
            found = None
        if found != version:
            return f"{path}@{version} is not installed (found {found})"
    return None


def install_oidc_provider(root: Path | None = None) -> Path:
    """An npm prefix holding exactly the locked tree (installed once, cached)."""
    pins = locked_versions()
    digest = hashlib.sha256((OIDC / "package-lock.json").read_bytes()).hexdigest()[:12]
    version = pins["node_modules/oidc-provider"]
    dest = (root or runner.cache_root()) / f"oidc-provider-{version}-{digest}"
    if _problem(dest, pins) is None:
        return dest
    with runner._cache_lock(dest.parent):
        if _problem(dest, pins) is None:
            return dest
        _npm_ci(dest, pins)
    return dest


def _npm_ci(dest: Path, pins: dict[str, str]) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise runner.ConformanceError(f"npm not found: it is needed once to install {OIDC}")
    scratch = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        scratch.chmod(0o755)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(OIDC / name, scratch / name)
        command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run(
            command,
            cwd=scratch,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=runner.INSTALL_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
            raise runner.ConformanceError(f"npm ci in {OIDC} failed:\n{tail}")
        wrong = _problem(scratch, pins)
        if wrong is not None:
            raise runner.ConformanceError(f"npm ci in {OIDC}: {wrong}")
        if dest.exists():
            shutil.rmtree(dest)
        scratch.rename(dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class AuthorizationServer:
    """A running oidc-provider; ``issuer`` is its URL, ``output`` what it printed."""

    process: subprocess.Popen[str]
    issuer: str = ""
    output: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if not self.issuer and line.startswith("{"):
                with contextlib.suppress(ValueError):
                    self.issuer = json.loads(line)["issuer"]
                    self._ready.set()
        self._ready.set()

    def wait_until_listening(self) -> None:
        if not self._ready.wait(START_TIMEOUT) or not self.issuer:
            self.stop()
            raise AssertionError(f"oidc-provider did not start:\n{''.join(self.output)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def authorization_server(workdir: Path, **options: Any) -> Iterator[AuthorizationServer]:
    """Start provider.mjs with ``options`` (resource, scopes, alg, login, clients)."""
    prefix = install_oidc_provider()
    node = runner.find_node()
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(OIDC / "provider.mjs", workdir / "provider.mjs")
    modules = workdir / "node_modules"
    if not modules.exists():
        modules.symlink_to(prefix / "node_modules", target_is_directory=True)
    process = subprocess.Popen(
        [str(node), str(workdir / "provider.mjs"), json.dumps(options)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=workdir,
    )
    server = AuthorizationServer(process)
    threading.Thread(target=server._read, daemon=True).start()
    try:
        server.wait_until_listening()
        yield server
    finally:
        server.stop()


def pkce() -> tuple[str, str]:
    """A PKCE (S256) code verifier and its challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def follow_to_redirect(http: httpx.AsyncClient, url: str, redirect: str) -> dict[str, str]:
    """Play the browser: follow the server's redirects (its interaction logs in and consents)
    until it sends the browser to ``redirect``; the query parameters it sends there (code,
    state, iss; or error). For an SDK client's redirect_handler, with a cookie-keeping client."""
    for _ in range(10):
        response = await http.get(url)
        location = response.headers.get("location")
        assert response.status_code in (302, 303), response.text
        assert location is not None
        url = urllib.parse.urljoin(url, location)
        if url.startswith(redirect):
            return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    raise AssertionError("no redirect back to the client")
