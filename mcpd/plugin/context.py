"""What a running tool can do besides returning: report progress, log, ask the client for
input, notice cancellation.

The runtime builds one ``Context`` per call around a ``RequestChannel``, the narrow interface
to the request being served. Tests (and plugin authors' tests) can build a ``Context`` around
an in-memory channel instead: see ``mcpd.plugin.testing``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol, TypeAlias, cast

import trio
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from mcpd.auth.principal import Principal
from mcpd.plugin.errors import ToolError
from mcpd.protocol.meta import LOG_LEVELS

PROGRESS_MESSAGE_SINCE: Final = "2025-03-26"


class RequestChannel(Protocol):
    """The request a tool serves, as the ``Context`` needs it.

    The runtime decides everything protocol-specific behind it: which revision applies,
    whether a log level is wanted (``logging/setLevel`` or the request's ``_meta``) and where
    notifications go (nothing is sent once the request is over).
    """

    @property
    def request_id(self) -> str | int: ...

    @property
    def revision(self) -> str: ...

    @property
    def progress_token(self) -> str | int | None: ...

    @property
    def session_id(self) -> str | None: ...

    @property
    def cancel_reason(self) -> str | None: ...

    @property
    def principal(self) -> Principal: ...

    def wants_log(self, level: str) -> bool: ...

    async def notify(self, method: str, params: dict[str, Any]) -> None: ...

    def client_supports(self, capability: str) -> bool:
        """Whether the client declared ``capability`` ("elicitation", "sampling", "roots")."""
        ...

    async def ask(self, questions: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Send ``(key, method, params)`` requests to the client; their results, in order.

        Raises ``InputUnavailable`` when the client cannot answer.
        """
        ...

    async def close_stream(self, retry_ms: int | None) -> None: ...


class InputUnavailable(ToolError):
    """The client could not answer a request for input: it declared no such capability,
    answered with an error, or did not answer in time.

    It is a ``ToolError``, so a tool that does not catch it ends with an ``isError`` result
    that says why.

    Example::

        try:
            reply = await ctx.sample(question, max_tokens=300)
        except mcpd.InputUnavailable:
            reply = None  # carry on without the model's opinion
    """


class ClientCapabilityMissing(InputUnavailable):
    """The client did not declare the capability a request for input needs.

    On 2026-07-28 requests an uncaught one becomes the protocol's
    ``MissingRequiredClientCapability`` error (-32021); check first to degrade gracefully.

    Example::

        if not ctx.client_supports("elicitation"):
            raise mcpd.ToolError("this tool needs a client that supports elicitation")
    """

    def __init__(self, capability: str) -> None:
        super().__init__(f"the client does not support {capability}")
        self.capability = capability


@dataclass(frozen=True, slots=True)
class Elicit:
    """A form-mode elicitation question for ``ctx.ask`` (see ``Context.elicit``).

    Example::

        (answer,) = await ctx.ask(mcpd.Elicit("Your name?", NAME_SCHEMA, key="user_name"))
    """

    message: str
    schema: Mapping[str, Any] | type[BaseModel]
    key: str | None = None
    method: ClassVar[str] = "elicitation/create"
    capability: ClassVar[str] = "elicitation"

    def params(self, revision: str) -> dict[str, Any]:
        schema = self.schema
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            requested = schema.model_json_schema()
            requested.pop("title", None)
        elif isinstance(schema, Mapping):
            requested = dict(schema)
        else:
            raise TypeError("schema must be a JSON Schema dict or a pydantic model class")
        return {"message": self.message, "requestedSchema": requested}

    def interpret(self, result: dict[str, Any]) -> Elicitation:
        action = result.get("action")
        if action not in ("accept", "decline", "cancel"):
            said = "no action" if action is None else f"action {action!r}"
            raise InputUnavailable(f"the client answered elicitation with {said}")
        content = result.get("content")
        return Elicitation(action, content if isinstance(content, dict) else None)


@dataclass(frozen=True, slots=True)
class Sample:
    """A sampling question for ``ctx.ask`` (see ``Context.sample``).

    Example::

        reply, roots = await ctx.ask(mcpd.Sample("Name a colour", max_tokens=10), mcpd.ListRoots())
    """

    messages: str | Sequence[Any]
    max_tokens: int
    system_prompt: str | None = None
    temperature: float | None = None
    model_preferences: Mapping[str, Any] | None = None
    key: str | None = None
    method: ClassVar[str] = "sampling/createMessage"
    capability: ClassVar[str] = "sampling"

    def params(self, revision: str) -> dict[str, Any]:
        from mcpd.plugin.prompt import PromptMessage

        items = (
            [PromptMessage("user", self.messages)]
            if isinstance(self.messages, str)
            else self.messages
        )
        wire = [m.to_dict(revision) if isinstance(m, PromptMessage) else m for m in items]
        params: dict[str, Any] = {"messages": wire, "maxTokens": self.max_tokens}
        if self.system_prompt is not None:
            params["systemPrompt"] = self.system_prompt
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.model_preferences is not None:
            params["modelPreferences"] = dict(self.model_preferences)
        return params

    def interpret(self, result: dict[str, Any]) -> dict[str, Any]:
        return result


@dataclass(frozen=True, slots=True)
class ListRoots:
    """A roots question for ``ctx.ask`` (see ``Context.list_roots``).

    Example::

        (roots,) = await ctx.ask(mcpd.ListRoots())
    """

    key: str | None = None
    method: ClassVar[str] = "roots/list"
    capability: ClassVar[str] = "roots"

    def params(self, revision: str) -> dict[str, Any]:
        return {}

    def interpret(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        roots = result.get("roots")
        return [r for r in roots if isinstance(r, dict)] if isinstance(roots, list) else []


Question: TypeAlias = "Elicit | Sample | ListRoots"


@dataclass(frozen=True, slots=True)
class Elicitation:
    """The user's answer to ``ctx.elicit``: ``action`` is "accept", "decline" or "cancel";
    ``content`` holds the submitted values when accepted.

    Example::

        answer = await ctx.elicit("Proceed?", CONFIRM_SCHEMA)
        if answer.accepted and answer.content and answer.content.get("ok"):
            ...
    """

    action: str
    content: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.action == "accept"


class Context:
    """A tool's handle on its own call. Ask for it by annotating a parameter ``mcpd.Context``.

    The parameter is filled in by mcpd and never appears in the tool's input schema.

    Example::

        @mcpd.tool
        async def crawl(url: str, ctx: mcpd.Context) -> int:
            pages = await list_pages(url)
            for done, page in enumerate(pages, 1):
                await fetch(page)
                await ctx.report_progress(done, len(pages), message=page)
            await ctx.log("info", {"crawled": len(pages)})
            return len(pages)
    """

    __slots__ = ("_asked", "_channel", "_last_progress")

    def __init__(self, channel: RequestChannel) -> None:
        self._channel = channel
        self._last_progress: float | None = None
        self._asked = 0  # questions asked so far: default keys q0, q1, ... in asking order

    @property
    def request_id(self) -> str | int:
        """The JSON-RPC id of the ``tools/call`` request being served."""
        return self._channel.request_id

    @property
    def session_id(self) -> str | None:
        """The MCP session of the call, or None (stateless 2026-07-28 requests have none)."""
        return self._channel.session_id

    @property
    def cancel_reason(self) -> str | None:
        """Why the call was cancelled ("client disconnected", "session deleted by the
        client", "timed out", "daemon shutting down", ...), or None while it is not.

        ``str(trio.Cancelled)`` names the innermost cancelled scope, which can be one of your
        own (a ``trio.sleep`` whose deadline passed in the same instant); this is the reason
        mcpd cancelled the call for.

        Example::

            try:
                await crawl(site)
            except trio.Cancelled:
                log.info("crawl stopped", why=ctx.cancel_reason)
                raise
        """
        return self._channel.cancel_reason

    @property
    def revision(self) -> str:
        """The protocol revision this call is served under, e.g. ``"2025-11-25"``."""
        return self._channel.revision

    @property
    def principal(self) -> Principal:
        """Who is calling: ``subject``, ``client_id``, ``scopes`` and read-only ``claims``
        (``issuer`` is ``"keys"`` for a static API key, the token's issuer for OAuth). With
        ``[auth] mode = "none"`` it is an anonymous principal (``anonymous`` is true, no
        scopes): check scopes, not names, when a tool must work both ways.

        Example::

            @mcpd.tool(scopes=["notes:read"])
            def my_notes(ctx: mcpd.Context) -> list[str]:
                return NOTES.get(ctx.principal.subject, [])
        """
        return self._channel.principal

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Tell the client how far along the call is; a no-op unless it asked for progress.

        ``progress`` must grow with every call (the protocol requires it); ``total`` is
        optional when the end is unknown. ``message`` reaches clients from 2025-03-26 on.

        Example::

            await ctx.report_progress(3, 10, message="3 of 10 files")
        """
        _check_number("progress", progress)
        if total is not None:
            _check_number("total", total)
        if self._last_progress is not None and progress <= self._last_progress:
            raise ValueError(f"progress must increase: got {progress} after {self._last_progress}")
        self._last_progress = progress
        token = self._channel.progress_token
        if token is None:
            return
        params: dict[str, Any] = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None and self._channel.revision >= PROGRESS_MESSAGE_SINCE:
            params["message"] = message
        await self._channel.notify("notifications/progress", params)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """Send a log message to the client, if it asked for this level or a lower one.

        ``level`` is one of debug, info, notice, warning, error, critical, alert, emergency;
        ``data`` is any JSON-serialisable value (a string, a dict, a pydantic model...);
        anything else is sent as its ``str()``.

        Example::

            await ctx.log("warning", {"skipped": path, "why": "not UTF-8"}, logger="indexer")
        """
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
        if not self._channel.wants_log(level):
            return
        # str() for anything JSON cannot hold: a log line is never worth failing a call.
        params: dict[str, Any] = {"level": level, "data": to_jsonable_python(data, fallback=str)}
        if logger is not None:
            params["logger"] = logger
        await self._channel.notify("notifications/message", params)

    def client_supports(self, capability: str) -> bool:
        """Whether the client declared ``capability``: "elicitation", "sampling" or "roots".

        Example::

            if ctx.client_supports("elicitation"):
                answer = await ctx.elicit("Overwrite the file?", CONFIRM)
        """
        return self._channel.client_supports(capability)

    async def ask(self, *questions: Question) -> list[Any]:
        """Ask the client several questions at once; their answers, in order.

        Each question is an ``mcpd.Elicit``, ``mcpd.Sample`` or ``mcpd.ListRoots``; the
        answers are what ``elicit``, ``sample`` and ``list_roots`` return. On 2026-07-28
        requests all questions travel in one ``input_required`` round trip.

        On stateless 2026-07-28 requests the handler is finished and run again once the
        client has answered, so code before an ``ask`` may run more than once: keep it free
        of side effects (see the plugin guide). On sessions (earlier revisions) the questions
        are real requests to the client and the handler simply waits.

        Example::

            name, roots = await ctx.ask(
                mcpd.Elicit("Your name?", NAME_SCHEMA, key="user_name"),
                mcpd.ListRoots(),
            )
        """
        for question in questions:
            if not isinstance(question, Elicit | Sample | ListRoots):
                raise TypeError(f"not a question: {question!r}")
            if not self._channel.client_supports(question.capability):
                raise ClientCapabilityMissing(question.capability)
        keyed = []
        for question in questions:
            keyed.append(
                (question.key or f"q{self._asked}", question.method, question.params(self.revision))
            )
            self._asked += 1
        if len({key for key, _, _ in keyed}) != len(keyed):
            raise ValueError("questions asked together need distinct keys")
        results = await self._channel.ask(keyed)
        return [
            question.interpret(result) for question, result in zip(questions, results, strict=True)
        ]

    async def elicit(
        self,
        message: str,
        schema: Mapping[str, Any] | type[BaseModel],
        *,
        key: str | None = None,
    ) -> Elicitation:
        """Ask the user for structured input through the client (form-mode elicitation).

        ``schema`` is a flat JSON Schema object (string, number, integer, boolean and enum
        properties) or a flat pydantic model class. Never ask for passwords or secrets this
        way. ``key`` names the question in 2026 ``inputRequests`` (default ``q0``...).

        Example::

            answer = await ctx.elicit("Which branch?", {
                "type": "object",
                "properties": {"branch": {"type": "string", "default": "main"}},
                "required": ["branch"],
            })
            if not answer.accepted:
                raise mcpd.ToolError("cancelled by the user")
            branch = answer.content["branch"]
        """
        (answer,) = await self.ask(Elicit(message, schema, key=key))
        return cast(Elicitation, answer)

    async def sample(
        self,
        messages: str | Sequence[Any],
        *,
        max_tokens: int,
        system_prompt: str | None = None,
        temperature: float | None = None,
        model_preferences: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Ask the client's model for a completion; the client's ``CreateMessageResult``.

        ``messages`` is a string (one user message) or a list of ``mcpd.PromptMessage``.

        Example::

            reply = await ctx.sample("Summarise: " + text, max_tokens=200)
            summary = reply["content"]["text"]
        """
        question = Sample(
            messages,
            max_tokens=max_tokens,
            system_prompt=system_prompt,
            temperature=temperature,
            model_preferences=model_preferences,
            key=key,
        )
        (answer,) = await self.ask(question)
        return cast(dict[str, Any], answer)

    async def list_roots(self, *, key: str | None = None) -> list[dict[str, Any]]:
        """The client's roots (``[{"uri": "file:///...", "name": ...}]``).

        Example::

            roots = [root["uri"] for root in await ctx.list_roots()]
        """
        (answer,) = await self.ask(ListRoots(key=key))
        return cast(list[dict[str, Any]], answer)

    async def close_stream(self, retry_ms: int | None = None) -> None:
        """Close the response's connection now and let the client reconnect for the rest.

        For long calls behind proxies that cut idle connections: on a resumable 2025-11-25
        session the client reconnects (after ``retry_ms``) and receives everything it missed.
        Elsewhere this does nothing. The call itself goes on either way.
        """
        await self._channel.close_stream(retry_ms)

    def check_cancelled(self) -> None:
        """In a sync tool, raise ``trio.Cancelled`` once the call has been cancelled.

        Sync tools run in a worker thread that trio cannot interrupt: call this regularly
        (in every loop iteration) so a cancelled call stops promptly and its ``finally``
        blocks run. In an async tool it does nothing; every ``await`` is already a
        cancellation point there.

        Example::

            @mcpd.tool
            def checksum(path: str, ctx: mcpd.Context) -> str:
                digest = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        ctx.check_cancelled()
                        digest.update(chunk)
                return digest.hexdigest()
        """
        if trio.lowlevel.in_trio_run():
            return  # an async tool: its awaits are the cancellation points
        try:
            trio.from_thread.check_cancelled()
        except RuntimeError:
            return  # not a trio worker thread (a plain unit test): nothing can cancel it


def _check_number(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
