"""Completion providers: suggestions for a prompt argument or a resource template variable.

A provider is a plain function ``(value, context) -> list[str] | Completion`` (sync or async)
attached with ``@prompt.complete("argument")`` or ``@resource_template.complete("variable")``.
``value`` is what the user typed so far; ``context`` holds the other arguments already filled
in (empty before 2025-06-18, whose clients cannot send them).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import trio

from mcpd.plugin.errors import ToolDefinitionError

# The protocol caps one answer at 100 values.
MAX_VALUES: Final = 100

Completer: TypeAlias = Callable[
    [str, Mapping[str, str]], "Sequence[str] | Completion | Awaitable[Any]"
]


@dataclass(frozen=True, slots=True)
class Completion:
    """Suggestions with an optional count of all matches.

    Return a plain list of strings when that is all there is; return a ``Completion`` to tell
    the client how many matches exist in all (``total``) or that more exist (``has_more``).

    Example::

        @city_weather.complete("city")
        def _(value: str, context: Mapping[str, str]) -> mcpd.Completion:
            matches = [c for c in CITIES if c.lower().startswith(value.lower())]
            return mcpd.Completion(matches[:10], total=len(matches))
    """

    values: Sequence[str]
    total: int | None = None
    has_more: bool = False

    def to_result(self) -> dict[str, Any]:
        """The ``completion`` object of a ``CompleteResult``, capped at 100 values."""
        values = [str(value) for value in self.values]
        has_more = self.has_more or len(values) > MAX_VALUES
        completion: dict[str, Any] = {"values": values[:MAX_VALUES]}
        if self.total is not None:
            completion["total"] = self.total
        elif len(values) > MAX_VALUES:
            completion["total"] = len(values)
        if has_more:
            completion["hasMore"] = True
        return completion


EMPTY: Final = Completion(())


class Completers:
    """The providers of one prompt or resource template, by argument name."""

    __slots__ = ("_by_name", "_known", "_owner")

    def __init__(self, owner: str, known: Sequence[str]) -> None:
        self._owner = owner
        self._known = tuple(known)
        self._by_name: dict[str, Completer] = {}

    def register(self, name: str) -> Callable[[Completer], Completer]:
        if name not in self._known:
            raise ToolDefinitionError(
                f"{self._owner}: cannot complete {name!r}; it has {list(self._known) or 'none'}"
            )

        def attach(provider: Completer) -> Completer:
            if not callable(provider):
                raise ToolDefinitionError(f"{self._owner}: a completer must be callable")
            self._by_name[name] = provider
            return provider

        return attach

    async def complete(self, name: str, value: str, context: Mapping[str, str]) -> Completion:
        """Run the provider for ``name``; no provider means no suggestions."""
        provider = self._by_name.get(name)
        if provider is None:
            return EMPTY
        if inspect.iscoroutinefunction(provider):
            answer = await provider(value, context)
        else:
            answer = await trio.to_thread.run_sync(provider, value, context)
        if isinstance(answer, Completion):
            return answer
        if isinstance(answer, str) or not isinstance(answer, Sequence):
            raise TypeError(f"{self._owner}: a completer must return a list of str or Completion")
        return Completion(tuple(answer))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name
