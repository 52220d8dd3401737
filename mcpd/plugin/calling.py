"""Running a plugin function the same way for tools, resources and prompts."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import trio

from mcpd.plugin.context import Context


async def call_plugin(
    fn: Callable[..., Any],
    *,
    is_async: bool,
    arguments: Mapping[str, Any],
    context_parameter: str | None,
    context: Context,
) -> Any:
    """Call ``fn`` with ``arguments`` (and the context, if it asks for one).

    Async functions are awaited. Sync functions run in a worker thread so the event loop
    never blocks; ``abandon_on_cancel=False`` makes a cancelled call wait for its thread, so
    no thread outlives its request (sync functions poll ``ctx.check_cancelled()``).
    """
    kwargs = dict(arguments)
    if context_parameter is not None:
        kwargs[context_parameter] = context
    if is_async:
        return await fn(**kwargs)
    return await trio.to_thread.run_sync(functools.partial(fn, **kwargs), abandon_on_cancel=False)
