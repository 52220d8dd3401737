"""Every exception the plugin-facing edge raises, and the one result shape tool failures take.

::

    Exception
     ├── ToolError            raised by tool code; the call ends as an ``isError`` result
     ├── InvalidArguments     ``tools/call`` arguments do not match the tool's input schema
     ├── ValueError
     │    └── InvalidCursor   a ``tools/list`` cursor this registry did not issue
     └── TypeError
          └── ToolDefinitionError   a function ``@mcpd.tool`` cannot describe (bad name,
                                    ``*args``, a type pydantic cannot put in a schema, ...)

Only ``ToolError`` is meant for plugin code to raise. The others are raised by mcpd itself and
converted by the runtime: ``InvalidArguments`` into an ``isError`` result or ``-32602``
(depending on the revision), ``InvalidCursor`` into ``-32602``.
"""

from __future__ import annotations

from typing import Any


class ToolError(Exception):
    """A failure the model should read: the call returns ``isError: true`` with this message.

    Raise it for expected, explainable failures (bad input the schema could not express, a
    missing file, an upstream API saying no). Any other exception is reported to the client
    as an internal error, and its details stay in the daemon's log.

    Example::

        @mcpd.tool
        def read_note(name: str) -> str:
            if name not in NOTES:
                raise mcpd.ToolError(f"no note called {name!r}")
            return NOTES[name]
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArguments(Exception):
    """The arguments of a call do not validate; the message names each bad field."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCursor(ValueError):
    """A pagination cursor that this registry did not hand out."""


class ToolDefinitionError(TypeError):
    """``@mcpd.tool`` was applied to something it cannot turn into a tool.

    Raised when the plugin module is imported, so the loader records the plugin as failed.
    """


def error_result(message: str) -> dict[str, Any]:
    """The ``CallToolResult`` of a failed call: one text block and ``isError: true``.

    Example::

        >>> error_result("no such file")
        {'content': [{'type': 'text', 'text': 'no such file'}], 'isError': True}
    """
    return {"content": [{"type": "text", "text": message}], "isError": True}
