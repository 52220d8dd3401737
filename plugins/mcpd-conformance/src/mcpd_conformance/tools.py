"""The tools the conformance scenarios call by name, grouped by the scenario that needs them.

Texts and schemas follow the scenario descriptions of the harness where a check looks at them;
everything else is free-form. Tools that ask the client for input (``ctx.elicit``,
``ctx.sample``, ``ctx.list_roots``) are written once for both protocol eras: on a 2025-11-25
session the daemon sends real server-to-client requests, on stateless 2026-07-28 requests it
answers ``input_required`` and runs the tool again with the client's answers. Code before an
``await ctx.<ask>`` may therefore run more than once, so none of it has side effects.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import trio
from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

import mcpd
from mcpd_conformance.media import RED_PIXEL_PNG, SILENCE_WAV

# Gap between the log messages / progress steps: long enough for a client to see them arrive
# one by one, short enough to keep the suite fast.
STEP_SECONDS = 0.05


def _sampled_text(reply: dict[str, Any]) -> str:
    """The text of a CreateMessageResult (a single block or a list of blocks)."""
    content = reply.get("content")
    blocks = content if isinstance(content, list) else [content]
    texts = [b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return " ".join(texts) if texts else json.dumps(content)


def _describe(answer: Any) -> str:
    return f"action={answer.action}, content={json.dumps(answer.content, sort_keys=True)}"


# -- content types: tools-call-simple-text, -image, -audio, -embedded-resource, -mixed-content --


@mcpd.tool
def test_simple_text() -> str:
    """Return a fixed text block (no arguments)."""
    return "This is a simple text response for testing."


@mcpd.tool
def test_image_content() -> mcpd.Image:
    """Return a 1x1 red PNG image block."""
    return mcpd.Image(RED_PIXEL_PNG, "image/png")


@mcpd.tool
def test_audio_content() -> mcpd.Audio:
    """Return a short silent WAV clip as an audio block (mimeType audio/wav)."""
    return mcpd.Audio(SILENCE_WAV, "audio/wav")


@mcpd.tool
def test_embedded_resource() -> mcpd.EmbeddedResource:
    """Return an embedded text resource, test://embedded-resource."""
    return mcpd.EmbeddedResource(
        "test://embedded-resource",
        text="This is an embedded resource content.",
        mime_type="text/plain",
    )


@mcpd.tool
def test_multiple_content_types() -> list[str | mcpd.Image | mcpd.EmbeddedResource]:
    """Return a text, an image and an embedded JSON resource in one result."""
    return [
        "Multiple content types test:",
        mcpd.Image(RED_PIXEL_PNG, "image/png"),
        mcpd.EmbeddedResource(
            "test://mixed-content-resource",
            text=json.dumps({"test": "data", "value": 123}),
            mime_type="application/json",
        ),
    ]


# -- errors, logging, progress: tools-call-error, -with-logging, -with-progress -----------------


@mcpd.tool
def test_error_handling() -> str:
    """Always fail with a tool error (an isError result, not a protocol error)."""
    raise mcpd.ToolError("This tool intentionally returns an error for testing")


@mcpd.tool
async def test_tool_with_logging(ctx: mcpd.Context) -> str:
    """Send three info log messages about 50 ms apart, then return."""
    await ctx.log("info", "Tool execution started")
    await trio.sleep(STEP_SECONDS)
    await ctx.log("info", "Tool processing data")
    await trio.sleep(STEP_SECONDS)
    await ctx.log("info", "Tool execution completed")
    return "Tool with logging executed successfully"


@mcpd.tool
async def test_tool_with_progress(ctx: mcpd.Context) -> str:
    """Report progress 0, 50 and 100 of 100, about 50 ms apart, then return."""
    await ctx.report_progress(0, 100)
    await trio.sleep(STEP_SECONDS)
    await ctx.report_progress(50, 100)
    await trio.sleep(STEP_SECONDS)
    await ctx.report_progress(100, 100)
    return "Tool with progress executed successfully"


# -- asking the client, 2025-11-25 sessions: tools-call-sampling, -elicitation, sep1034/1330 ----


@mcpd.tool
async def test_sampling(
    prompt: Annotated[str, "The prompt to send to the client's model"], ctx: mcpd.Context
) -> str:
    """Ask the client's model (sampling/createMessage) and return its answer."""
    reply = await ctx.sample(prompt, max_tokens=100)
    return f"LLM response: {_sampled_text(reply)}"


ELICITATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}


@mcpd.tool
async def test_elicitation(
    message: Annotated[str, "The message to show the user"], ctx: mcpd.Context
) -> str:
    """Ask the user for a username and an e-mail address (elicitation/create)."""
    answer = await ctx.elicit(message, ELICITATION_SCHEMA)
    return f"User response: {_describe(answer)}"


SEP1034_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
    "required": [],
}


@mcpd.tool
async def test_elicitation_sep1034_defaults(ctx: mcpd.Context) -> str:
    """Elicit a form whose every primitive field has a default (SEP-1034)."""
    message = "Please review and update the form fields with defaults"
    answer = await ctx.elicit(message, SEP1034_SCHEMA)
    return f"Elicitation completed: {_describe(answer)}"


def _titled(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"const": value, "title": title} for value, title in pairs]


SEP1330_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "untitledSingle": {
            "type": "string",
            "description": "Select one option",
            "enum": ["option1", "option2", "option3"],
        },
        "titledSingle": {
            "type": "string",
            "description": "Select one option with titles",
            "oneOf": _titled(
                ("value1", "First Option"), ("value2", "Second Option"), ("value3", "Third Option")
            ),
        },
        "legacyEnum": {
            "type": "string",
            "description": "Select one option (legacy)",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "description": "Select multiple options",
            "minItems": 1,
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "description": "Select multiple options with titles",
            "minItems": 1,
            "items": {
                "anyOf": _titled(
                    ("value1", "First Choice"),
                    ("value2", "Second Choice"),
                    ("value3", "Third Choice"),
                )
            },
        },
    },
    "required": [],
}


@mcpd.tool
async def test_elicitation_sep1330_enums(ctx: mcpd.Context) -> str:
    """Elicit a form with all five enum shapes of SEP-1330."""
    answer = await ctx.elicit("Please select options from the enum fields", SEP1330_SCHEMA)
    return f"Elicitation completed: {_describe(answer)}"


# -- json-schema-2020-12: the input schema keeps $schema, $defs.address, additionalProperties ---

# The $defs key is the type's __name__, hence the lower-case "address". "$anchor" is the one keyword
# of the reference schema a type hint can carry; allOf/anyOf and if/then/else at the root
# cannot be expressed through mcpd's schema-from-type-hints (see README).
Address = with_config(ConfigDict(json_schema_extra={"$anchor": "addressDef"}))(
    TypedDict("address", {"street": str, "city": str}, total=False)
)


@mcpd.tool(description="Tool with JSON Schema 2020-12 features")
def json_schema_2020_12_tool(
    name: Annotated[str | None, "Contact name"] = None,
    address: Annotated[Address | None, "Postal address"] = None,  # type: ignore[valid-type]
    contactMethod: Annotated[Literal["phone", "email"] | None, "Preferred contact method"] = None,
    phone: Annotated[str | None, "Phone number"] = None,
    email: Annotated[str | None, "E-mail address"] = None,
) -> str:
    """Echo the contact details it was given."""
    given = {"name": name, "address": address, "contactMethod": contactMethod}
    given.update(phone=phone, email=email)
    return "Received: " + json.dumps({k: v for k, v in given.items() if v is not None})


# -- server-sse-polling (2025-11-25, pending): close the SSE connection mid-call ----------------


@mcpd.tool
async def test_reconnection(ctx: mcpd.Context) -> str:
    """Close this call's SSE connection, then finish; the client resumes with Last-Event-ID."""
    await ctx.close_stream(retry_ms=500)
    await trio.sleep(0.2)
    return "Reconnection test completed"


# -- server-stateless (2026-07-28) diagnostics -----------------------------------------------------


@mcpd.tool
async def test_missing_capability(ctx: mcpd.Context) -> str:
    """Needs the client's sampling capability; a client without it gets error -32021."""
    reply = await ctx.sample("Reply with the word 'ok'.", max_tokens=10)
    return f"Sampling available: {_sampled_text(reply)}"


@mcpd.tool
async def test_streaming_elicitation(ctx: mcpd.Context) -> str:
    """Ask for input mid-call; on 2026-07-28 this must come back as input_required."""
    answer = await ctx.elicit(
        "Continue?",
        {"type": "object", "properties": {"proceed": {"type": "boolean"}}, "required": ["proceed"]},
    )
    return f"Streaming elicitation finished: {_describe(answer)}"


@mcpd.tool
async def test_logging_tool(ctx: mcpd.Context) -> str:
    """Log three messages; a request that set no log level must receive none of them."""
    for step in ("started", "working", "done"):
        await ctx.log("info", f"test_logging_tool {step}")
    return "Logging tool finished"


# -- input-required-result-* (2026-07-28 multi-round-trip requests) --------------------------------

NAME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
}
CONFIRM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
}
COLOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"color": {"type": "string"}},
    "required": ["color"],
}


def _content_value(answer: Any, key: str, fallback: str) -> str:
    if answer.accepted and answer.content and key in answer.content:
        return str(answer.content[key])
    return fallback


@mcpd.tool
async def test_input_required_result_elicitation(ctx: mcpd.Context) -> str:
    """Ask the user's name (one elicitation), then greet them."""
    # The suite expects this exact key in inputRequests.
    answer = await ctx.elicit("What is your name?", NAME_SCHEMA, key="user_name")
    return f"Hello, {_content_value(answer, 'name', 'stranger')}!"


@mcpd.tool
async def test_input_required_result_sampling(ctx: mcpd.Context) -> str:
    """Ask the client's model one question, then return its answer."""
    reply = await ctx.sample("What is the capital of France?", max_tokens=100)
    return f"Sampling answer: {_sampled_text(reply)}"


@mcpd.tool
async def test_input_required_result_list_roots(ctx: mcpd.Context) -> str:
    """Ask for the client's roots, then list them."""
    roots = await ctx.list_roots()
    listed = ", ".join(f"{root.get('name', '?')} ({root.get('uri', '?')})" for root in roots)
    return f"Client roots: {listed or 'none'}"


@mcpd.tool
async def test_input_required_result_request_state(ctx: mcpd.Context) -> str:
    """Ask for a confirmation; finishing proves the daemon accepted the echoed requestState."""
    answer = await ctx.elicit("Please confirm", CONFIRM_SCHEMA)
    return f"state-ok: confirmed={_content_value(answer, 'ok', 'no answer')}"


@mcpd.tool
async def test_input_required_result_multiple_inputs(ctx: mcpd.Context) -> str:
    """Ask three questions at once (elicitation, sampling, roots), then combine the answers.

    ``ctx.ask`` sends them together: a 2026-07-28 client receives all three in a single
    input_required result.
    """
    answer, reply, roots = await ctx.ask(
        mcpd.Elicit("What is your name?", NAME_SCHEMA),
        mcpd.Sample("Generate a greeting", max_tokens=50),
        mcpd.ListRoots(),
    )
    name = _content_value(answer, "name", "?")
    return f"name={name}; greeting={_sampled_text(reply)}; roots={len(roots)}"


@mcpd.tool
def test_trigger_tool_change() -> str:
    """Tell listening clients that the tool list changed (subscriptions/listen checks)."""
    mcpd.list_changed("tools")
    return "announced notifications/tools/list_changed"


@mcpd.tool
def test_trigger_prompt_change() -> str:
    """Tell listening clients that the prompt list changed (subscriptions/listen checks)."""
    mcpd.list_changed("prompts")
    return "announced notifications/prompts/list_changed"


@mcpd.tool
async def test_input_required_result_multi_round(ctx: mcpd.Context) -> str:
    """Ask two questions one after the other (two input rounds), then answer."""
    name = _content_value(await ctx.elicit("Step 1: What is your name?", NAME_SCHEMA), "name", "?")
    color = _content_value(
        await ctx.elicit("Step 2: What is your favorite color?", COLOR_SCHEMA), "color", "?"
    )
    return f"{name}'s favorite color is {color}"


@mcpd.tool
async def test_input_required_result_tampered_state(ctx: mcpd.Context) -> str:
    """Ask for a confirmation; a retry with a tampered requestState must be rejected."""
    answer = await ctx.elicit("Please confirm", CONFIRM_SCHEMA)
    return f"Confirmed: {_content_value(answer, 'ok', 'no answer')}"


@mcpd.tool
async def test_input_required_result_capabilities(ctx: mcpd.Context) -> str:
    """Ask only for what the suite's client declares there (sampling), never elicitation."""
    reply = await ctx.sample("Say hello.", max_tokens=20)
    return f"Sampling answer: {_sampled_text(reply)}"


# -- http-custom-header-server-validation (2026-07-28, pending): an x-mcp-header argument -------


@mcpd.tool
def test_custom_header(
    region: Annotated[
        str,
        Field(
            description="Region, mirrored in the Mcp-Param-Region header",
            json_schema_extra={"x-mcp-header": "Region"},
        ),
    ],
) -> str:
    """Echo an argument that clients also send as the Mcp-Param-Region header."""
    return f"region={region}"


TOOLS = (
    # First on purpose: http-header-validation calls the first listed tool with {} arguments.
    test_simple_text,
    test_image_content,
    test_audio_content,
    test_embedded_resource,
    test_multiple_content_types,
    test_error_handling,
    test_tool_with_logging,
    test_tool_with_progress,
    test_sampling,
    test_elicitation,
    test_elicitation_sep1034_defaults,
    test_elicitation_sep1330_enums,
    json_schema_2020_12_tool,
    test_reconnection,
    test_missing_capability,
    test_streaming_elicitation,
    test_logging_tool,
    test_input_required_result_elicitation,
    test_input_required_result_sampling,
    test_input_required_result_list_roots,
    test_input_required_result_request_state,
    test_input_required_result_multiple_inputs,
    test_input_required_result_multi_round,
    test_input_required_result_tampered_state,
    test_input_required_result_capabilities,
    test_custom_header,
    test_trigger_tool_change,
    test_trigger_prompt_change,
)
