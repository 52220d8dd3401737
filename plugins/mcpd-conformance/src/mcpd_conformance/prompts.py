"""The prompts the conformance scenarios get by name, with their completions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import mcpd
from mcpd_conformance.media import RED_PIXEL_PNG

ARG1_SUGGESTIONS = ("paris", "park", "party", "test", "testValue1")


@mcpd.prompt(description="A simple prompt without arguments (prompts-get-simple)")
def test_simple_prompt() -> str:
    return "This is a simple prompt for testing."


@mcpd.prompt(description="A prompt with two required arguments (prompts-get-with-args)")
def test_prompt_with_arguments(
    arg1: Annotated[str, "First test argument"],
    arg2: Annotated[str, "Second test argument"],
) -> list[mcpd.PromptMessage]:
    return [mcpd.PromptMessage("user", f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]


@test_prompt_with_arguments.complete("arg1")
def _complete_arg1(value: str, context: Mapping[str, str]) -> list[str]:
    return [word for word in ARG1_SUGGESTIONS if word.startswith(value)]


@mcpd.prompt(description="A prompt embedding a resource (prompts-get-embedded-resource)")
def test_prompt_with_embedded_resource(
    resourceUri: Annotated[str, "URI of the resource to embed"],
) -> list[mcpd.PromptMessage]:
    embedded = mcpd.EmbeddedResource(
        resourceUri, text="Embedded resource content for testing.", mime_type="text/plain"
    )
    return [
        mcpd.PromptMessage("user", embedded),
        mcpd.PromptMessage("user", "Please process the embedded resource above."),
    ]


@mcpd.prompt(description="A prompt with an image (prompts-get-with-image)")
def test_prompt_with_image() -> list[mcpd.PromptMessage]:
    return [
        mcpd.PromptMessage("user", mcpd.Image(RED_PIXEL_PNG, "image/png")),
        mcpd.PromptMessage("user", "Please analyze the image above."),
    ]


@mcpd.prompt(
    description=(
        "A prompt that first asks the user for context (input-required-result-non-tool-request)"
    )
)
async def test_input_required_result_prompt(ctx: mcpd.Context) -> list[mcpd.PromptMessage]:
    answer = await ctx.elicit(
        "What context should the prompt use?",
        {"type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"]},
    )
    context = answer.content.get("context") if answer.accepted and answer.content else None
    return [mcpd.PromptMessage("user", f"Use this context: {context or 'none given'}")]


PROMPTS = (
    test_simple_prompt,
    test_prompt_with_arguments,
    test_prompt_with_embedded_resource,
    test_prompt_with_image,
    test_input_required_result_prompt,
)
