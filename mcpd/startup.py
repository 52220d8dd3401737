"""How a start that the user can fix fails: one sentence on stderr and exit status 2.

``StartupError`` is the base of the failures a user causes when the daemon starts (a listen
address that cannot be bound, say). Its message is one sentence naming the address, file or
key and the cause. trio hands such an error out wrapped in the exception groups of the
nurseries it crossed; ``user_failure`` finds it there, so that ``mcpd serve`` prints the
sentence instead of a traceback. Anything else is a bug of mcpd's and keeps its traceback.

Also here: the endpoint URLs the start-up log line names.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from mcpd.config import ConfigError


class StartupError(Exception):
    """A start-up failure the user caused and can fix; the message says which and why.

    Example::

        raise ListenError("127.0.0.1:8765", "server.listen", "the address is already in use")
    """


def user_failure(exc: BaseException) -> Exception | None:
    """The user-caused failure ``exc`` consists of, or None if it holds anything else."""
    if isinstance(exc, StartupError | ConfigError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split((StartupError, ConfigError))
        if matched is not None and rest is None:
            return _first_leaf(matched)
    return None


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_leaf(exc)
        if isinstance(exc, Exception):
            return exc
    return None


def endpoint_urls(binds: Iterable[str], path: str) -> list[str]:
    """The URL a client uses for each bound address (hypercorn's ``http://HOST:PORT`` form).

    A unix socket has no URL of its own; it is written ``http+unix://<path, %-encoded>/mcp``,
    the form unix-socket HTTP clients take.

    Example::

        endpoint_urls(["http://127.0.0.1:8765", "http://unix:/run/mcpd.sock"], "/mcp")
        # ["http://127.0.0.1:8765/mcp", "http+unix://%2Frun%2Fmcpd.sock/mcp"]
    """
    urls = []
    for bind in binds:
        scheme, _, address = bind.partition("://")
        if address.startswith("unix:"):
            socket_path = quote(address.removeprefix("unix:"), safe="")
            urls.append(f"{scheme}+unix://{socket_path}{path}")
        else:
            urls.append(f"{bind}{path}")
    return urls
