"""Daemon settings: the typed model every other module reads, and how layers of TOML become it.

Layers, lowest first: the embedded ``defaults.toml`` (package data, every key with its
default, so zero-config works), the system file and its drop-ins (``mcpd.config_files``),
``--config``, then a few command-line flags. Tables merge and values replace, key by key,
``[plugin.<name>]`` tables included. Keys are strict everywhere except inside those plugin
tables, which belong to the plugins; every error names the file and the dotted key. Values may
be secret references (``mcpd.secret_values``), resolved at load. Each effective value keeps
its origin, which ``mcpd config show`` prints.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from mcpd.auth.exposure import anonymous_exposure
from mcpd.auth.settings import AuthSettings
from mcpd.auth.tls import TlsError, check_tls
from mcpd.config_files import DropInError, config_files
from mcpd.config_models import describe_error, plain_values
from mcpd.limits.settings import LimitsSettings
from mcpd.listen_addresses import listen_clash, parse_listen
from mcpd.secret_values import Environ, SecretError, references, resolve


@dataclass(frozen=True, slots=True)
class ServerSettings:
    listen: tuple[str, ...] = ("127.0.0.1:8765",)  # "HOST:PORT", "[::1]:PORT", "unix:/path"
    path: str = "/mcp"
    allowed_origins: tuple[str, ...] = ()  # exact origins allowed besides loopback ones
    max_body_bytes: int = 4 * 1024 * 1024
    # Host header values accepted besides loopback names; empty and bound beyond loopback
    # means no Host check (put the public names here to keep it).
    allowed_hosts: tuple[str, ...] = ()
    sse_keepalive: float = 15.0  # seconds between ": keep-alive" comments on idle SSE streams
    session_idle_timeout: float = 1800.0  # legacy session expiry after no activity
    max_sessions: int = 10_000
    shutdown_grace: float = 10.0  # in-flight calls get this long after SIGTERM
    # Then they are cancelled; calls still running this long after that are given up on
    # (their clients get -32000) and the daemon exits anyway, with status 3.
    stop_timeout: float = 10.0
    keep_alive_timeout: float = 5.0  # idle HTTP keep-alive connections close after this
    write_timeout: float = 30.0  # a client that stops reading is dropped after this
    body_timeout: float = 30.0  # a request body must be complete this long after its headers
    max_requests_per_session: int = 256  # a legacy session's requests in flight at once
    # Bytes of events kept for Last-Event-ID replay: per stream, and across a session's
    # finished streams.
    replay_log_bytes: int = 1024 * 1024
    replay_session_bytes: int = 8 * 1024 * 1024
    # What one 2024-11-05 SSE connection may hold for a client that reads slowly.
    stream_buffer_bytes: int = 4 * 1024 * 1024
    # Listen backlog of the sockets the daemon binds (the kernel caps it at somaxconn).
    backlog: int = 1024
    # Response bytes one HTTP/2 connection may hold while the client's window is closed.
    h2_max_buffer_bytes: int = 1024 * 1024
    # Legacy sessions: a request whose SSE connection drops keeps running this long for the
    # client to resume the stream (GET + Last-Event-ID); 0 = no resumption, cancel at once.
    resume_window: float = 30.0
    # The deprecated 2024-11-05 HTTP+SSE transport, served beside the MCP endpoint.
    http_sse: bool = True
    sse_path: str = "/sse"
    messages_path: str = "/messages"
    # The event loop is measured every tick; a tick late by more than this logs loop.stalled
    # (naming the calls in flight) and counts a stall. 0 = not measured.
    loop_stall: float = 0.5
    # Peers (addresses or CIDR networks) whose X-Forwarded-Proto/Host/For headers are believed.
    trusted_proxies: tuple[str, ...] = ()
    # Direct TLS: a PEM certificate chain and its private key, each a path or a secret holding
    # the PEM text itself; both empty = plain HTTP.
    tls_certificate: str = ""
    tls_private_key: str = ""
    # Where sessions and keys survive a restart (see mcpd.persist.store): this directory, else
    # $STATE_DIRECTORY (systemd's StateDirectory=), else none: nothing survives.
    state_dir: str = ""
    persist_sessions: bool = True  # false: keys only; sessions end with the process
    # Under systemd, 2024-11-05 SSE connections wait out a restart in its fd store.
    keep_sse_connections: bool = True
    state_max_bytes: int = 16 * 1024 * 1024  # the whole state file
    state_session_bytes: int = 64 * 1024  # one session's entry (replay events cut first)
    state_max_age: float = 3600.0  # a state file older than this at start is not used


@dataclass(frozen=True, slots=True)
class ToolsSettings:
    default_timeout: float = 300.0
    page_size: int = 100
    # How long a call may wait for the client's answer to elicitation, sampling or roots,
    # and how long a 2026 requestState stays valid.
    input_timeout: float = 600.0
    # Seals 2026 requestState tokens; empty = the key kept in the state directory (made once,
    # rotated by `mcpd state rotate-key`), or a random key per process without one.
    request_state_key: str = ""
    # Tools with isolation="process": at most this many worker processes run calls at once
    # (0 = one per CPU); an idle worker exits after worker_idle_timeout seconds.
    max_worker_processes: int = 0
    worker_idle_timeout: float = 120.0


@dataclass(frozen=True, slots=True)
class PluginsSettings:
    enable: tuple[str, ...] | None = None  # allow-list of entry-point names; None = all
    disable: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console", "journal"] = "auto"
    log_arguments: bool = False  # tool arguments are never logged unless this is true


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    # A separate listener for the health and metrics endpoints; empty = the main listener.
    listen: tuple[str, ...] = ()
    path: str = "/metrics"
    healthz_path: str = "/healthz"
    readyz_path: str = "/readyz"


@dataclass(frozen=True, slots=True)
class TracingSettings:
    # OpenTelemetry traces (needs the ``otel`` extra); the exporter, sampler and service name
    # come from the standard OTEL_* environment variables.
    enabled: bool = False
    # At shutdown, spans not yet exported get this long to leave (0: drop them).
    flush_timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    tools: ToolsSettings = field(default_factory=ToolsSettings)
    plugins: PluginsSettings = field(default_factory=PluginsSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    plugin: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # [plugin.<name>] tables
    source: str = "<embedded defaults>"  # what was loaded, for logs


EMBEDDED = "<embedded defaults>"
MIN_STATE_KEY = 32  # characters of [tools] request_state_key, when set


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the key."""


Convert = Callable[[Any, str], Any]


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, f"expected a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise _fail(where, f"must be a finite number >= 0, got {value!r}")
    return float(value)


def _positive_number(value: Any, where: str) -> float:
    number = _number(value, where)
    if number == 0:
        raise _fail(where, "must be greater than 0")
    return number


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"expected an integer, got {value!r}")
    if value < 1:
        raise _fail(where, f"must be at least 1, got {value}")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"expected an integer, got {value!r}")
    if value < 0:
        raise _fail(where, f"must be 0 or more, got {value}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, f"expected true or false, got {value!r}")
    return value


def _state_key(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, "expected a string (best: a secret reference)")
    if value and len(value) < MIN_STATE_KEY:
        raise _fail(where, f"must be empty or at least {MIN_STATE_KEY} characters long")
    return value  # a Secret stays a Secret: masked wherever settings are shown


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _fail(where, f"expected a list of strings, got {value!r}")
    return tuple(value)


def _choice(*choices: str) -> Convert:
    def convert(value: Any, where: str) -> str:
        if value not in choices:
            raise _fail(where, f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return convert


def _networks(value: Any, where: str) -> tuple[str, ...]:
    """Addresses or CIDR networks, normalised (``10.0.0.0/8``, ``::1/128``)."""
    networks = []
    for entry in _strings(value, where):
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise _fail(where, f"{entry!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"expected a string (a path, or a secret), got {value!r}")
    return value  # a Secret stays a Secret


def _directory(value: Any, where: str) -> str:
    if not isinstance(value, str) or (value and not value.startswith("/")):
        raise _fail(where, f'expected an absolute directory path or "", got {value!r}')
    return value


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _fail(where, f"expected a URL path starting with '/', got {value!r}")
    return value


def _listen(value: Any, where: str) -> tuple[str, ...]:
    entries = _strings(value, where)
    if not entries:
        raise _fail(where, "needs at least one address")
    try:
        return tuple(parse_listen(entry) for entry in entries)
    except ValueError as exc:
        raise _fail(where, str(exc)) from None


def _listen_or_none(value: Any, where: str) -> tuple[str, ...]:
    return _listen(value, where) if value != [] else ()


# table -> (dataclass, {toml key: (field name, converter)})
_SCHEMA: dict[str, tuple[type, dict[str, tuple[str, Convert]]]] = {
    "server": (
        ServerSettings,
        {
            "listen": ("listen", _listen),
            "path": ("path", _path),
            "allowed_origins": ("allowed_origins", _strings),
            "allowed_hosts": ("allowed_hosts", _strings),
            "max_body_bytes": ("max_body_bytes", _positive_int),
            "sse_keepalive_seconds": ("sse_keepalive", _positive_number),
            "session_idle_timeout_seconds": ("session_idle_timeout", _positive_number),
            "max_sessions": ("max_sessions", _positive_int),
            "shutdown_grace_seconds": ("shutdown_grace", _number),
            "stop_timeout_seconds": ("stop_timeout", _positive_number),
            "keep_alive_timeout_seconds": ("keep_alive_timeout", _positive_number),
            "write_timeout_seconds": ("write_timeout", _positive_number),
            "body_timeout_seconds": ("body_timeout", _positive_number),
            "max_requests_per_session": ("max_requests_per_session", _positive_int),
            "replay_log_bytes": ("replay_log_bytes", _positive_int),
            "replay_session_bytes": ("replay_session_bytes", _positive_int),
            "stream_buffer_bytes": ("stream_buffer_bytes", _positive_int),
            "backlog": ("backlog", _positive_int),
            "h2_max_buffer_bytes": ("h2_max_buffer_bytes", _positive_int),
            "resume_window_seconds": ("resume_window", _number),
            "http_sse": ("http_sse", _bool),
            "sse_path": ("sse_path", _path),
            "messages_path": ("messages_path", _path),
            "loop_stall_seconds": ("loop_stall", _number),
            "trusted_proxies": ("trusted_proxies", _networks),
            "tls_certificate": ("tls_certificate", _text),
            "tls_private_key": ("tls_private_key", _text),
            "state_dir": ("state_dir", _directory),
            "persist_sessions": ("persist_sessions", _bool),
            "keep_sse_connections": ("keep_sse_connections", _bool),
            "state_max_bytes": ("state_max_bytes", _positive_int),
            "state_session_bytes": ("state_session_bytes", _positive_int),
            "state_max_age_seconds": ("state_max_age", _positive_number),
        },
    ),
    "tools": (
        ToolsSettings,
        {
            "default_timeout_seconds": ("default_timeout", _positive_number),
            "page_size": ("page_size", _positive_int),
            "input_timeout_seconds": ("input_timeout", _positive_number),
            "request_state_key": ("request_state_key", _state_key),
            "max_worker_processes": ("max_worker_processes", _count),
            "worker_idle_timeout_seconds": ("worker_idle_timeout", _positive_number),
        },
    ),
    "plugins": (
        PluginsSettings,
        {"enable": ("enable", _strings), "disable": ("disable", _strings)},
    ),
    "logging": (
        LoggingSettings,
        {
            "level": ("level", _choice("debug", "info", "warning", "error")),
            "format": ("format", _choice("auto", "json", "console", "journal")),
            "log_arguments": ("log_arguments", _bool),
        },
    ),
    "metrics": (
        MetricsSettings,
        {
            "listen": ("listen", _listen_or_none),
            "path": ("path", _path),
            "healthz_path": ("healthz_path", _path),
            "readyz_path": ("readyz_path", _path),
        },
    ),
    "tracing": (
        TracingSettings,
        {
            "enabled": ("enabled", _bool),
            "flush_timeout_seconds": ("flush_timeout", _number),
        },
    ),
}


# Tables whose values nest ([[auth.keys]], [auth.oauth]...), each validated by a pydantic
# model after layering (``mcpd.config_models``); the Settings field is named as the table.
MODEL_TABLES: dict[str, type[BaseModel]] = {
    "auth": AuthSettings,
    "limits": LimitsSettings,
}


def _unknown(where: str, key: str, known: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return _fail(where, f"unknown key{hint}; known keys: {', '.join(sorted(known))}")


def _read(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}") from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    return _read(text, str(path))


@dataclass(frozen=True, slots=True)
class Entry:
    """One value of the effective config and the layer it came from."""

    value: Any
    origin: str  # a file, "<embedded defaults>" or a command-line flag
    secrets: tuple[str, ...] = ()  # where the secrets in ``value`` came from ("$env:TOKEN")


Key = tuple[str, ...]  # ("server", "listen") or ("plugin", "<name>", "<key>")
Entries = dict[Key, Entry]


def _convert(document: Mapping[str, Any], origin: str, environ: Environ) -> Entries:
    """Check one layer's keys and types and resolve its secrets; one entry per leaf key."""
    entries: Entries = {}
    for table, values in document.items():
        if table == "plugin":
            entries.update(_plugin_entries(values, origin, environ))
        elif table in _SCHEMA:
            entries.update(_table_entries(table, values, origin, environ))
        elif table in MODEL_TABLES:
            entries.update(_model_table_entries(table, values, origin, environ))
        else:
            raise _unknown(f"{origin}: {table}", table, [*_SCHEMA, *MODEL_TABLES, "plugin"])
    return entries


def _table_entries(table: str, values: Any, origin: str, environ: Environ) -> Entries:
    where = f"{origin}: {table}"
    if not isinstance(values, dict):
        raise _fail(where, "expected a table")
    keys = _SCHEMA[table][1]
    entries: Entries = {}
    for key, value in values.items():
        if key not in keys:
            raise _unknown(f"{where}.{key}", key, list(keys))
        raw = _resolve(value, origin, f"{table}.{key}", environ)
        converted = keys[key][1](raw, f"{where}.{key}")
        entries[table, key] = Entry(converted, origin, tuple(references(raw)))
    return entries


def _model_table_entries(table: str, values: Any, origin: str, environ: Environ) -> Entries:
    """One entry per top-level key: a higher layer replaces the whole value of that key."""
    where = f"{origin}: {table}"
    if not isinstance(values, dict):
        raise _fail(where, "expected a table")
    known = list(MODEL_TABLES[table].model_fields)
    for key in values:
        if key not in known:
            raise _unknown(f"{where}.{key}", key, known)
    resolved = {
        key: _resolve(value, origin, f"{table}.{key}", environ) for key, value in values.items()
    }
    return {
        (table, key): Entry(value, origin, tuple(references(value)))
        for key, value in plain_values(resolved).items()
    }


def _plugin_entries(values: Any, origin: str, environ: Environ) -> Entries:
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise _fail(f"{origin}: plugin", "expected [plugin.<name>] tables")
    entries: Entries = {}
    for name, table in values.items():
        for key, value in table.items():
            raw = _resolve(value, origin, f"plugin.{name}.{key}", environ)
            entries["plugin", name, key] = Entry(raw, origin, tuple(references(raw)))
    return entries


def _resolve(value: Any, origin: str, key: str, environ: Environ) -> Any:
    try:
        return resolve(value, environ, key)
    except SecretError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def _embedded(environ: Environ) -> Entries:
    text = resources.files("mcpd").joinpath("defaults.toml").read_text(encoding="utf-8")
    return _convert(_read(text, EMBEDDED), EMBEDDED, environ)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The settings, each value with its origin, and the files read."""

    settings: Settings
    entries: Mapping[Key, Entry]
    files: tuple[str, ...]


def load_config(
    path: Path | None = None,
    *,
    listen: Sequence[str] = (),
    log_level: str | None = None,
    log_format: str | None = None,
    environ: Environ | None = None,
) -> LoadedConfig:
    """Every layer, lowest first: embedded defaults, the system file, its drop-ins, ``path``
    (``--config``), then the ``--listen``/``--log-level``/``--log-format`` flags.

    Tables merge and values replace, key by key (``[plugin.<name>]`` tables too).
    """
    environ = os.environ if environ is None else environ
    entries = _embedded(environ)
    try:
        files = config_files(path, environ)
    except DropInError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:  # a config directory this user may not look into
        raise ConfigError(f"{exc.filename}: cannot read: {exc.strerror or exc}") from None
    for file in files:
        entries.update(_convert(_read_file(file), str(file), environ))
    entries.update(_flags(listen, log_level, log_format))
    source = ", ".join(map(str, files)) or EMBEDDED
    layers = (EMBEDDED, *map(str, files))
    return LoadedConfig(_build(entries, source, layers), entries, tuple(map(str, files)))


def _flags(listen: Sequence[str], log_level: str | None, log_format: str | None) -> Entries:
    entries: Entries = {}
    if listen:
        entries["server", "listen"] = Entry(_listen(list(listen), "--listen"), "--listen")
    logging = _SCHEMA["logging"][1]
    for key, flag, value in (
        ("level", "--log-level", log_level),
        ("format", "--log-format", log_format),
    ):
        if value is not None:
            entries["logging", key] = Entry(logging[key][1](value, flag), flag)
    return entries


def load_settings(
    path: Path | None = None,
    *,
    listen: Sequence[str] = (),
    log_level: str | None = None,
    log_format: str | None = None,
    environ: Environ | None = None,
) -> Settings:
    """The effective settings (see ``load_config``)."""
    loaded = load_config(
        path, listen=listen, log_level=log_level, log_format=log_format, environ=environ
    )
    return loaded.settings


def _build(entries: Entries, source: str, layers: Sequence[str] = (EMBEDDED,)) -> Settings:
    fields: dict[str, dict[str, Any]] = {table: {} for table in _SCHEMA}
    plugin: dict[str, dict[str, Any]] = {}
    for key, entry in entries.items():
        if key[0] == "plugin":
            plugin.setdefault(key[1], {})[key[2]] = entry.value
        elif key[0] in _SCHEMA:
            table, name = key
            fields[table][_SCHEMA[table][1][name][0]] = entry.value
    tables: dict[str, Any] = {table: _SCHEMA[table][0](**fields[table]) for table in _SCHEMA}
    for table, model in MODEL_TABLES.items():
        tables[table] = _validated(table, model, entries, layers)
    settings = Settings(**tables, plugin=plugin, source=source)
    for check in _CHECKS:
        check(settings, entries)
    return settings


def _validated(
    table: str, model: type[BaseModel], entries: Entries, layers: Sequence[str]
) -> BaseModel:
    """The merged table through its model; an error names the layer that set the bad key
    (a problem with the table as a whole: the highest layer that set any of its keys)."""
    values = {key[1]: entry.value for key, entry in entries.items() if key[0] == table}
    origins = {key[1]: entry.origin for key, entry in entries.items() if key[0] == table}
    rank = {layer: index for index, layer in enumerate(layers)}
    top = max(origins.values(), key=lambda origin: rank.get(origin, -1), default=EMBEDDED)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(describe_error(table, model, exc, origins, top)) from None


def _check_exposure(settings: Settings, entries: Entries) -> None:
    """``[auth] mode = "none"`` listens on loopback only, unless explicitly allowed."""
    problem = anonymous_exposure(settings.auth, settings.server.listen)
    if problem is not None:
        raise ConfigError(f"{_origin(entries, ('server', 'listen'))}: server.listen: {problem}")


def _check_tls(settings: Settings, entries: Entries) -> None:
    """Both TLS keys or neither, and the pair must load (a wrong key fails here, not later)."""
    server = settings.server
    try:
        check_tls(server.tls_certificate, server.tls_private_key)
    except TlsError as exc:
        name = exc.key or "tls_private_key"  # a pair that does not load: blame the key
        origin = _origin(entries, ("server", name))
        raise ConfigError(f"{origin}: server.{name}: {exc}") from None


def _check_paths(settings: Settings, entries: Entries) -> None:
    """Every endpoint served on the main listener needs a path of its own."""
    server, metrics = settings.server, settings.metrics
    paths = [(("server", "path"), server.path)]
    if server.http_sse:
        paths += [(("server", "sse_path"), server.sse_path)]
        paths += [(("server", "messages_path"), server.messages_path)]
    if not metrics.listen:
        names = ("path", "healthz_path", "readyz_path")  # keys and field names alike
        paths += [(("metrics", name), getattr(metrics, name)) for name in names]
    seen: dict[str, tuple[str, ...]] = {}
    for key, path in paths:
        normal = path.rstrip("/") or "/"
        if normal in seen:
            first = seen[normal]
            # Blame the one a config layer set (not the embedded default).
            blamed, other = (first, key) if _origin(entries, key) == EMBEDDED else (key, first)
            raise ConfigError(
                f"{_origin(entries, blamed)}: {'.'.join(blamed)}: {path!r} is already the "
                f"path of {'.'.join(other)}; endpoints on one listener need distinct paths"
            )
        seen[normal] = key


def _origin(entries: Entries, key: Key) -> str:
    return entries[key].origin if key in entries else EMBEDDED


def _check_listeners(settings: Settings, entries: Entries) -> None:
    """No two listeners may need the same socket: one of them would fail to bind at start."""
    found = listen_clash(settings.server.listen, settings.metrics.listen)
    if found is not None:
        table, message = found
        raise ConfigError(f"{_origin(entries, (table, 'listen'))}: {table}.listen: {message}")


# Whole-config rules, run by every load: a start, a reload and ``mcpd config check`` refuse
# the same configs with the same message. A new table's cross-key rules belong here.
_CHECKS: tuple[Callable[[Settings, Entries], None], ...] = (
    _check_paths,
    _check_listeners,
    _check_exposure,
    _check_tls,
)
