"""Where a plugin's failures stop: whatever plugin code raises ends that call, never the daemon.

Plugin code is untrusted. A tool may raise any ``BaseException``: ``KeyboardInterrupt``,
``SystemExit`` from ``sys.exit()``, ``GeneratorExit``, a subclass of its own. Left alone, such an
exception escapes the request's task into a session's (or the daemon's) nursery and ends the
process for every client. So every place that runs plugin code catches everything except the two
things that must travel on:

- ``trio.Cancelled``: the request (or something around it) is being cancelled, and trio needs
  the exception to unwind to the scope that cancelled it;
- ``InputRequired``: a 2026 handler asking the client for input (``mcpd.runtime.inputs``).

A ``KeyboardInterrupt`` from Ctrl-C never reaches plugin code: the daemon receives SIGINT through
a signal receiver and shuts down in order, so one raised inside a call was raised by the plugin.

The log of a contained failure names the plugin, its distribution and the item, the exception's
type and where it was raised (the innermost frame and a short stack of ``file:line function``),
but its text only with ``[logging] log_arguments = true``: exception messages quote argument
values and secrets as often as not.
"""

from __future__ import annotations

import traceback
from typing import Any, Final

import trio

from mcpd.runtime.inputs import InputRequired

# Frames of the stack kept in a failure's log event (innermost last).
STACK_FRAMES: Final = 8
# Characters of an exception's text kept when logging it is allowed.
MESSAGE_LIMIT: Final = 2000


def passes_through(error: BaseException) -> bool:
    """Whether ``error`` must propagate instead of being contained: a cancellation, a 2026
    input request, or an exception group made only of those."""
    if isinstance(error, trio.Cancelled | InputRequired):
        return True
    if isinstance(error, BaseExceptionGroup):
        return all(passes_through(inner) for inner in error.exceptions)
    return False


def failure_fields(error: BaseException, *, with_message: bool) -> dict[str, Any]:
    """Log fields describing ``error``: type, location, stack; its text only if allowed.

    For an exception group (a plugin's nursery), the types of its leaves, and the location
    and stack of the first of them: where the plugin's code really failed.
    """
    fields: dict[str, Any] = {"error_type": _type_name(error)}
    if isinstance(error, BaseExceptionGroup):
        leaves = _leaves(error)
        fields["exceptions"] = [_type_name(leaf) for leaf in leaves]
        error = leaves[0]
    frames = traceback.extract_tb(error.__traceback__)[-STACK_FRAMES:]
    if frames:
        last = frames[-1]
        fields["location"] = f"{last.filename}:{last.lineno} in {last.name}"
        fields["stack"] = [f"{f.filename}:{f.lineno} {f.name}" for f in frames]
    if with_message:
        fields["error"] = _message(error)
    return fields


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for inner in group.exceptions:
        found += _leaves(inner) if isinstance(inner, BaseExceptionGroup) else [inner]
    return found


def _type_name(error: BaseException) -> str:
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _message(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # a plugin's __str__ may fail too
        text = "<unprintable>"
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "..."
