"""The fixtures as the conformance suite sees them: names, schemas, texts and the questions
each tool asks the client. No daemon needed: tools run through mcpd's own validate/invoke/
render path with an in-memory request (``mcpd.plugin.testing``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import mcpd_conformance
import pytest
from mcpd_conformance import media, prompts, resources, tools

from mcpd.plugin.testing import MemoryChannel, call_tool

SAMPLED = {
    "role": "assistant",
    "content": {"type": "text", "text": "This is a test response from the client"},
    "model": "test-model",
    "stopReason": "endTurn",
}
ROOTS = {"roots": [{"uri": "file:///test/root", "name": "Test Root"}]}


def accept(**content: Any) -> dict[str, Any]:
    return {"action": "accept", "content": content}


def answering(**answers: dict[str, Any]) -> MemoryChannel:
    """A request whose client answers: elicitation=..., sampling=..., roots=..."""
    methods = {
        "elicitation": "elicitation/create",
        "sampling": "sampling/createMessage",
        "roots": "roots/list",
    }
    return MemoryChannel(answers={methods[kind]: result for kind, result in answers.items()})


def text_of(result: dict[str, Any]) -> str:
    return " ".join(block["text"] for block in result["content"] if block["type"] == "text")


# -- what the plugin serves ------------------------------------------------------------------


def test_hooks_serve_exactly_the_suite_fixtures() -> None:
    tool_names = [t.name for t in mcpd_conformance.register_tools()]
    assert tool_names[0] == "test_simple_text"  # http-header-validation calls the first tool
    assert set(tool_names) == {
        "test_simple_text", "test_image_content", "test_audio_content",
        "test_embedded_resource", "test_multiple_content_types", "test_error_handling",
        "test_tool_with_logging", "test_tool_with_progress", "test_sampling",
        "test_elicitation", "test_elicitation_sep1034_defaults",
        "test_elicitation_sep1330_enums", "json_schema_2020_12_tool", "test_reconnection",
        "test_missing_capability", "test_streaming_elicitation", "test_logging_tool",
        "test_input_required_result_elicitation", "test_input_required_result_sampling",
        "test_input_required_result_list_roots", "test_input_required_result_request_state",
        "test_input_required_result_multiple_inputs", "test_input_required_result_multi_round",
        "test_input_required_result_tampered_state", "test_input_required_result_capabilities",
        "test_custom_header",
        "test_trigger_tool_change",
        "test_trigger_prompt_change",
    }  # fmt: skip
    uris = [r.definition("2025-11-25").get("uri") for r in mcpd_conformance.register_resources()]
    assert uris[0] == "test://static-text"  # the caching scenario reads the first one
    assert set(uris) == {
        "test://static-text", "test://static-binary", "test://watched-resource",
        "test://embedded-resource", None,  # None: the template
    }  # fmt: skip
    assert {p.name for p in mcpd_conformance.register_prompts()} == {
        "test_simple_prompt", "test_prompt_with_arguments", "test_prompt_with_embedded_resource",
        "test_prompt_with_image", "test_input_required_result_prompt",
    }  # fmt: skip


@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
def test_every_tool_and_prompt_is_described(revision: str) -> None:
    for tool in tools.TOOLS:
        definition = tool.definition(revision)
        assert definition["description"], tool.name
        assert definition["inputSchema"]["type"] == "object"
    for prompt in prompts.PROMPTS:
        assert prompt.definition(revision)["description"], prompt.name


# -- content tools ---------------------------------------------------------------------------


async def test_simple_text_needs_no_arguments() -> None:
    result = await call_tool(tools.test_simple_text, None)
    assert text_of(result) == "This is a simple text response for testing."


async def test_image_is_a_png() -> None:
    (block,) = (await call_tool(tools.test_image_content, {}))["content"]
    assert block["type"] == "image"
    assert block["mimeType"] == "image/png"
    assert base64.b64decode(block["data"]).startswith(b"\x89PNG\r\n\x1a\n")


async def test_audio_is_a_wav() -> None:
    (block,) = (await call_tool(tools.test_audio_content, {}))["content"]
    assert block["type"] == "audio"
    assert block["mimeType"] == "audio/wav"
    assert base64.b64decode(block["data"])[:4] == b"RIFF"


async def test_embedded_resource_has_uri_mime_type_and_text() -> None:
    (block,) = (await call_tool(tools.test_embedded_resource, {}))["content"]
    assert block == {
        "type": "resource",
        "resource": {
            "uri": "test://embedded-resource",
            "mimeType": "text/plain",
            "text": "This is an embedded resource content.",
        },
    }


async def test_mixed_content_has_text_image_and_resource() -> None:
    content = (await call_tool(tools.test_multiple_content_types, {}))["content"]
    assert [block["type"] for block in content] == ["text", "image", "resource"]
    assert json.loads(content[2]["resource"]["text"]) == {"test": "data", "value": 123}


async def test_error_handling_is_an_is_error_result() -> None:
    result = await call_tool(tools.test_error_handling, {})
    assert result["isError"] is True
    assert result["content"][0]["text"]


# -- logging and progress --------------------------------------------------------------------


async def test_logging_sends_three_info_messages_apart(autojump_clock: Any) -> None:
    channel = MemoryChannel(log_level="debug")
    await call_tool(tools.test_tool_with_logging, {}, channel=channel)
    assert [log["data"] for log in channel.logs] == [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ]
    assert {log["level"] for log in channel.logs} == {"info"}


async def test_progress_goes_0_50_100_of_100(autojump_clock: Any) -> None:
    channel = MemoryChannel(progress_token="progress-test-1")
    await call_tool(tools.test_tool_with_progress, {}, channel=channel)
    assert [(p["progress"], p["total"]) for p in channel.progress] == [
        (0, 100),
        (50, 100),
        (100, 100),
    ]
    assert {p["progressToken"] for p in channel.progress} == {"progress-test-1"}


async def test_logging_tool_is_silent_without_a_log_level() -> None:
    channel = MemoryChannel(log_level=None)
    result = await call_tool(tools.test_logging_tool, {}, channel=channel)
    assert channel.logs == []
    assert text_of(result)


# -- asking the client (legacy sessions) -----------------------------------------------------


async def test_sampling_asks_the_client_and_returns_its_text() -> None:
    channel = answering(sampling=SAMPLED)
    result = await call_tool(tools.test_sampling, {"prompt": "Test prompt"}, channel=channel)
    assert text_of(result) == "LLM response: This is a test response from the client"
    ((method, params),) = channel.asked
    assert method == "sampling/createMessage"
    assert params["maxTokens"] == 100
    assert params["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "Test prompt"}}
    ]


async def test_elicitation_asks_for_username_and_email() -> None:
    channel = answering(elicitation=accept(username="testuser", email="test@example.com"))
    result = await call_tool(tools.test_elicitation, {"message": "Who?"}, channel=channel)
    assert "testuser" in text_of(result)
    ((method, params),) = channel.asked
    assert method == "elicitation/create"
    assert params["message"] == "Who?"
    assert params["requestedSchema"]["required"] == ["username", "email"]


async def test_sep1034_defaults_schema() -> None:
    channel = answering(elicitation=accept(name="Jane Smith"))
    await call_tool(tools.test_elicitation_sep1034_defaults, {}, channel=channel)
    properties = channel.asked[0][1]["requestedSchema"]["properties"]
    assert {k: (v["type"], v["default"]) for k, v in properties.items()} == {
        "name": ("string", "John Doe"),
        "age": ("integer", 30),
        "score": ("number", 95.5),
        "status": ("string", "active"),
        "verified": ("boolean", True),
    }
    assert properties["status"]["enum"] == ["active", "inactive", "pending"]


async def test_sep1330_enum_shapes() -> None:
    channel = answering(elicitation=accept(untitledSingle="option1"))
    await call_tool(tools.test_elicitation_sep1330_enums, {}, channel=channel)
    p = channel.asked[0][1]["requestedSchema"]["properties"]
    assert p["untitledSingle"]["type"] == "string"
    assert "oneOf" not in p["untitledSingle"]
    assert "enumNames" not in p["untitledSingle"]
    assert "enum" not in p["titledSingle"]
    assert all({"const", "title"} <= set(o) for o in p["titledSingle"]["oneOf"])
    assert len(p["legacyEnum"]["enumNames"]) == len(p["legacyEnum"]["enum"])
    assert p["untitledMulti"]["type"] == "array"
    assert p["untitledMulti"]["items"]["type"] == "string"
    assert "anyOf" not in p["untitledMulti"]["items"]
    assert p["titledMulti"]["type"] == "array"
    assert "enum" not in p["titledMulti"]["items"]
    assert all({"const", "title"} <= set(o) for o in p["titledMulti"]["items"]["anyOf"])


# -- schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("revision", ["2025-11-25", "2026-07-28"])
def test_json_schema_2020_12_tool_keeps_its_keywords(revision: str) -> None:
    schema = tools.json_schema_2020_12_tool.definition(revision)["inputSchema"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["address"]["$anchor"] == "addressDef"
    assert set(schema["$defs"]["address"]["properties"]) == {"street", "city"}
    assert set(schema["properties"]) == {"name", "address", "contactMethod", "phone", "email"}


def test_custom_header_argument_is_marked() -> None:
    schema = tools.test_custom_header.definition("2026-07-28")["inputSchema"]
    assert schema["properties"]["region"]["x-mcp-header"] == "Region"
    assert schema["properties"]["region"]["type"] == "string"


# -- stream control and capabilities ---------------------------------------------------------


async def test_reconnection_closes_its_stream_then_finishes(autojump_clock: Any) -> None:
    channel = MemoryChannel()
    result = await call_tool(tools.test_reconnection, {}, channel=channel)
    assert channel.streams_closed == 1
    assert "isError" not in result
    assert text_of(result)


async def test_missing_capability_needs_sampling() -> None:
    channel = MemoryChannel(capabilities=frozenset())
    # In the daemon a 2026 request gets -32021 instead; in a session, this isError result.
    result = await call_tool(tools.test_missing_capability, {}, channel=channel)
    assert result["isError"] is True
    assert "sampling" in text_of(result)
    assert channel.asked == []


# -- multi-round-trip tools ------------------------------------------------------------------


async def test_input_required_elicitation_greets_by_name() -> None:
    channel = answering(elicitation=accept(name="Alice"))
    result = await call_tool(tools.test_input_required_result_elicitation, {}, channel=channel)
    assert text_of(result) == "Hello, Alice!"
    assert channel.asked[0][1]["requestedSchema"] == tools.NAME_SCHEMA


async def test_input_required_sampling_and_roots() -> None:
    channel = answering(sampling=SAMPLED, roots=ROOTS)
    sampled = await call_tool(tools.test_input_required_result_sampling, {}, channel=channel)
    assert "test response" in text_of(sampled)
    listed = await call_tool(tools.test_input_required_result_list_roots, {}, channel=channel)
    assert "file:///test/root" in text_of(listed)
    assert [method for method, _ in channel.asked] == ["sampling/createMessage", "roots/list"]


async def test_request_state_tool_says_state_ok() -> None:
    channel = answering(elicitation=accept(ok=True))
    result = await call_tool(tools.test_input_required_result_request_state, {}, channel=channel)
    assert "state-ok" in text_of(result)


async def test_multiple_inputs_asks_all_three_kinds() -> None:
    channel = answering(elicitation=accept(name="Alice"), sampling=SAMPLED, roots=ROOTS)
    result = await call_tool(tools.test_input_required_result_multiple_inputs, {}, channel=channel)
    assert sorted(method for method, _ in channel.asked) == [
        "elicitation/create",
        "roots/list",
        "sampling/createMessage",
    ]
    assert "name=Alice" in text_of(result)


async def test_multi_round_asks_two_questions_in_order() -> None:
    channel = answering(elicitation=accept(name="Alice", color="blue"))
    result = await call_tool(tools.test_input_required_result_multi_round, {}, channel=channel)
    assert [params["message"] for _, params in channel.asked] == [
        "Step 1: What is your name?",
        "Step 2: What is your favorite color?",
    ]
    assert text_of(result) == "Alice's favorite color is blue"


async def test_capabilities_tool_never_elicits() -> None:
    channel = MemoryChannel(capabilities=frozenset({"sampling"}), answers={
        "sampling/createMessage": SAMPLED,
    })  # fmt: skip
    await call_tool(tools.test_input_required_result_capabilities, {}, channel=channel)
    assert [method for method, _ in channel.asked] == ["sampling/createMessage"]


# -- resources -------------------------------------------------------------------------------


def test_static_resources() -> None:
    assert resources.static_text() == "This is the content of the static text resource."
    assert resources.static_binary() == media.RED_PIXEL_PNG
    assert resources.embedded_resource() == "This is an embedded resource content."
    assert resources.watched_resource()


def test_template_substitutes_the_id() -> None:
    data = json.loads(resources.template_data(id="123"))
    assert data == {"id": "123", "templateTest": True, "data": "Data for ID: 123"}
    assert resources.template_data.match("test://template/123/data") == {"id": "123"}


def test_template_id_completion() -> None:
    assert resources._complete_template_id("1", {}) == ["1", "123"]


# -- prompts ---------------------------------------------------------------------------------


def test_prompt_with_arguments_uses_both() -> None:
    (message,) = prompts.test_prompt_with_arguments(arg1="testValue1", arg2="testValue2")
    rendered = json.dumps(message.to_dict("2025-11-25"))
    assert "testValue1" in rendered
    assert "testValue2" in rendered


def test_arg1_completion() -> None:
    assert prompts._complete_arg1("te", {}) == ["test", "testValue1"]
    assert prompts._complete_arg1("", {}) == list(prompts.ARG1_SUGGESTIONS)


def test_prompt_with_embedded_resource_embeds_the_uri() -> None:
    first, second = prompts.test_prompt_with_embedded_resource(
        resourceUri="test://example-resource"
    )
    block = first.to_dict("2025-11-25")["content"]
    assert block["type"] == "resource"
    assert block["resource"]["uri"] == "test://example-resource"
    assert second.to_dict("2025-11-25")["content"]["type"] == "text"


def test_prompt_with_image_has_an_image() -> None:
    image, _ = prompts.test_prompt_with_image()
    block = image.to_dict("2025-11-25")["content"]
    assert block["type"] == "image"
    assert block["mimeType"] == "image/png"
    assert block["data"]


def test_simple_prompt() -> None:
    assert prompts.test_simple_prompt() == "This is a simple prompt for testing."
