"""``@mcpd.resource``, ``@mcpd.prompt`` and completion providers, without a daemon."""

from __future__ import annotations

import base64
import inspect
from collections.abc import Mapping
from typing import Annotated, Any

import pytest

import mcpd
from mcpd.plugin.completion import MAX_VALUES, Completers, Completion
from mcpd.plugin.context import Context
from mcpd.plugin.errors import InvalidArguments, ToolDefinitionError
from mcpd.plugin.prompt import Prompt
from mcpd.plugin.resource import Resource
from mcpd.plugin.testing import MemoryChannel

ICON = {"src": "https://example.invalid/i.png", "mimeType": "image/png"}


def template(uri: str) -> Resource:
    """A resource for ``uri`` whose function takes every template variable."""
    variables = [part.split("}")[0].lstrip("+") for part in uri.split("{")[1:]]

    def read(**kwargs: str) -> str:
        return "x"

    keyword = inspect.Parameter.KEYWORD_ONLY
    read.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, keyword) for name in variables]
    )
    return mcpd.resource(uri)(read)


# -- matching URIs against templates ------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri_template", "uri", "expected"),
    [
        ("notes://{name}", "notes://alpha", {"name": "alpha"}),
        ("notes://{name}", "notes://a/b", None),  # simple expansion stops at "/"
        ("notes://{name}", "notes://a?b", None),
        ("notes://{name}", "notes://", None),
        ("files://{+path}", "files://a/b/c.txt", {"path": "a/b/c.txt"}),
        ("files://{+path}", "files://a", {"path": "a"}),
        ("notes://{name}", "notes://hello%20world", {"name": "hello world"}),
        ("files://{+path}", "files://a%2Fb/c", {"path": "a/b/c"}),
        ("users://{org}/{user}", "users://acme/ada", {"org": "acme", "user": "ada"}),
        ("users://{org}/{user}", "users://acme", None),
        ("users://{org}/{user}/profile", "users://a/b/profile", {"org": "a", "user": "b"}),
        ("users://{org}/{user}/profile", "users://a/b/other", None),
        ("a.b://{v}", "aXb://1", None),  # literal parts are not patterns
        ("notes://{name}", "other://alpha", None),
    ],
)
def test_template_matching(uri_template: str, uri: str, expected: dict[str, str] | None) -> None:
    assert template(uri_template).match(uri) == expected


def test_fixed_uri_matches_only_itself() -> None:
    @mcpd.resource("config://app")
    def app() -> str:
        return "{}"

    assert not app.is_template
    assert app.match("config://app") == {}
    assert app.match("config://app/") is None
    assert app.variables == ()


@pytest.mark.parametrize(
    "uri",
    [
        "relative/path",
        "notes://{#frag}",
        "notes://{?q}",
        "notes://{/segments}",
        "notes://{name}/{name}",
        "notes://{name",
        "notes://name}",
    ],
)
def test_unsupported_or_malformed_uris_are_definition_errors(uri: str) -> None:
    with pytest.raises(ToolDefinitionError):
        mcpd.resource(uri)(lambda name="": "x")


def test_function_parameters_must_be_template_variables() -> None:
    with pytest.raises(ToolDefinitionError, match="not a template variable"):

        @mcpd.resource("notes://{name}")
        def wrong(name: str, other: str) -> str:
            return name

    with pytest.raises(ToolDefinitionError, match="no parameter"):

        @mcpd.resource("notes://{name}/{part}")
        def missing(name: str) -> str:
            return name


@pytest.mark.parametrize("size", [-1, 1.5, True, "3"])
def test_size_must_be_a_non_negative_int(size: Any) -> None:
    with pytest.raises(ToolDefinitionError, match="size"):
        mcpd.resource("config://app", size=size)(lambda: "x")


# -- definitions per revision --------------------------------------------------------------------


@mcpd.resource(
    "config://app",
    title="App config",
    mime_type="application/json",
    size=2,
    annotations={"audience": ["user"]},
    icons=[ICON],
)
def app_config() -> str:
    """The app's configuration."""
    return "{}"


@mcpd.resource("notes://{name}", title="Note", size=9, icons=[ICON])
def a_note(name: str) -> str:
    return name


@pytest.mark.parametrize(
    ("revision", "title", "icons"),
    [
        ("2024-11-05", False, False),
        ("2025-03-26", False, False),
        ("2025-06-18", True, False),
        ("2025-11-25", True, True),
        ("2026-07-28", True, True),
    ],
)
def test_resource_definition_per_revision(revision: str, title: bool, icons: bool) -> None:
    entry = app_config.definition(revision)
    expected: dict[str, Any] = {
        "uri": "config://app",
        "name": "app_config",
        "description": "The app's configuration.",
        "mimeType": "application/json",
        "size": 2,
        "annotations": {"audience": ["user"]},
    }
    if title:
        expected["title"] = "App config"
    if icons:
        expected["icons"] = [ICON]
    assert entry == expected


def test_template_definition_has_uri_template_and_no_size() -> None:
    entry = a_note.definition("2025-11-25")
    assert entry == {
        "uriTemplate": "notes://{name}",
        "name": "a_note",
        "title": "Note",
        "icons": [ICON],
    }
    assert a_note.is_template


# -- reading and rendering -----------------------------------------------------------------------


async def test_read_passes_variables_and_context() -> None:
    seen: dict[str, Any] = {}

    @mcpd.resource("notes://{name}")
    async def note(name: str, ctx: mcpd.Context) -> str:
        seen["ctx"] = ctx
        return f"note {name}"

    context = Context(MemoryChannel())
    assert await note.read("notes://a", {"name": "a"}, context) == "note a"
    assert seen["ctx"] is context


async def test_sync_read_runs_in_a_thread() -> None:
    @mcpd.resource("files://{+path}")
    def file(path: str) -> bytes:
        return path.encode()

    assert await file.read("files://a/b", {"path": "a/b"}, Context(MemoryChannel())) == b"a/b"


def test_render_text_blob_and_contents() -> None:
    @mcpd.resource("data://x", mime_type="text/plain")
    def data() -> str:
        return "x"

    assert data.render("hi", "data://x") == [
        {"uri": "data://x", "mimeType": "text/plain", "text": "hi"}
    ]
    (blob,) = data.render(b"\x00\x01", "data://x")
    assert base64.b64decode(blob["blob"]) == b"\x00\x01"
    assert "text" not in blob
    several = data.render(
        [
            mcpd.ResourceContents(text="a"),
            mcpd.ResourceContents(blob=b"b", mime_type="image/png", uri="data://x/b"),
        ],
        "data://x",
    )
    assert several == [
        {"uri": "data://x", "mimeType": "text/plain", "text": "a"},
        {"uri": "data://x/b", "mimeType": "image/png", "blob": "Yg=="},
    ]
    with pytest.raises(TypeError):
        data.render(42, "data://x")


@pytest.mark.parametrize(
    "options", [{}, {"text": "a", "blob": b"b"}, {"blob": "text"}, {"text": b"bytes"}]
)
def test_resource_contents_need_exactly_one_well_typed_body(options: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        mcpd.ResourceContents(**options)


def test_resource_not_found_carries_the_uri() -> None:
    error = mcpd.ResourceNotFound("notes://zeta")
    assert error.uri == "notes://zeta"
    assert "notes://zeta" in str(error)


# -- prompts -------------------------------------------------------------------------------------


@mcpd.prompt(title="Review", icons=[ICON])
def review(
    code: Annotated[str, "the code to review"], ctx: mcpd.Context, focus: str = "bugs"
) -> str:
    """Ask for a review."""
    return f"Review for {focus}:\n{code}"


@pytest.mark.parametrize(
    ("revision", "title", "icons"),
    [("2025-03-26", False, False), ("2025-06-18", True, False), ("2025-11-25", True, True)],
)
def test_prompt_definition_per_revision(revision: str, title: bool, icons: bool) -> None:
    entry = review.definition(revision)
    assert entry["name"] == "review"
    assert entry["description"] == "Ask for a review."
    assert entry["arguments"] == [
        {"name": "code", "description": "the code to review", "required": True},
        {"name": "focus"},
    ]
    assert ("title" in entry) is title
    assert ("icons" in entry) is icons


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "code: required argument is missing"),
        (None, "code: required argument is missing"),
        ({"code": "x", "tone": "y"}, "tone: unexpected argument"),
        ({"code": 5}, "code: must be a string"),
        ({"code": "x", "focus": None}, "focus: must be a string"),
        (["code"], "arguments must be an object"),
    ],
)
def test_prompt_argument_validation(arguments: Any, problem: str) -> None:
    with pytest.raises(InvalidArguments, match=problem):
        review.validate_arguments(arguments)


def test_prompt_arguments_that_validate() -> None:
    assert review.validate_arguments({"code": "x"}) == {"code": "x"}
    assert review.validate_arguments({"code": "x", "focus": "style"}) == {
        "code": "x",
        "focus": "style",
    }


async def test_prompt_get_and_render() -> None:
    value = await review.get({"code": "x = 1"}, Context(MemoryChannel()))
    result = review.render(value, "2025-11-25")
    assert result == {
        "description": "Ask for a review.",
        "messages": [
            {"role": "user", "content": {"type": "text", "text": "Review for bugs:\nx = 1"}}
        ],
    }


def test_prompt_render_messages_and_bad_values() -> None:
    messages = [mcpd.PromptMessage("user", "q"), mcpd.PromptMessage("assistant", "a")]
    rendered = review.render(messages, "2025-11-25")["messages"]
    assert [m["role"] for m in rendered] == ["user", "assistant"]
    with pytest.raises(TypeError):
        review.render(42, "2025-11-25")
    with pytest.raises(ValueError, match="role"):
        mcpd.PromptMessage("system", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mcpd.PromptMessage("user", 42)


def test_prompt_definition_errors() -> None:
    with pytest.raises(ToolDefinitionError, match="must be a str"):

        @mcpd.prompt
        def numeric(count: int) -> str:
            return str(count)

    with pytest.raises(ToolDefinitionError, match="keyword"):

        @mcpd.prompt
        def variadic(*parts: str) -> str:
            return "".join(parts)

    with pytest.raises(ToolDefinitionError, match="invalid prompt name"):
        mcpd.prompt(name="has spaces")(lambda: "x")


def test_a_prompt_without_arguments_lists_none() -> None:
    @mcpd.prompt
    def hello() -> str:
        return "hi"

    assert isinstance(hello, Prompt)
    assert "arguments" not in hello.definition("2025-11-25")


# -- completion ----------------------------------------------------------------------------------


def test_completion_caps_at_100_with_total_and_has_more() -> None:
    values = [f"v{n}" for n in range(150)]
    result = Completion(values).to_result()
    assert result["values"] == values[:MAX_VALUES]
    assert result["total"] == 150
    assert result["hasMore"] is True


def test_completion_keeps_the_providers_total_and_has_more() -> None:
    assert Completion(["a"], total=40, has_more=True).to_result() == {
        "values": ["a"],
        "total": 40,
        "hasMore": True,
    }
    assert Completion([f"v{n}" for n in range(120)], total=500).to_result()["total"] == 500


def test_completion_within_the_cap_is_plain() -> None:
    assert Completion(["a", "b"]).to_result() == {"values": ["a", "b"]}
    assert Completion([f"v{n}" for n in range(100)]).to_result().keys() == {"values"}


async def test_completers_run_sync_and_async_providers() -> None:
    completers = Completers("prompt 'p'", ["lang", "level"])

    @completers.register("lang")
    def langs(value: str, context: Mapping[str, str]) -> list[str]:
        return [lang for lang in ("python", "perl", "rust") if lang.startswith(value)]

    @completers.register("level")
    async def levels(value: str, context: Mapping[str, str]) -> Completion:
        return Completion([f"{context.get('lang')}-{value}"], total=1)

    assert "lang" in completers
    assert (await completers.complete("lang", "p", {})).values == ("python", "perl")
    level = await completers.complete("level", "1", {"lang": "rust"})
    assert level == Completion(["rust-1"], total=1)


async def test_a_name_without_provider_completes_to_nothing() -> None:
    completers = Completers("prompt 'p'", ["lang"])
    assert (await completers.complete("lang", "x", {})).to_result() == {"values": []}


async def test_a_provider_must_return_a_list_of_str_or_completion() -> None:
    completers = Completers("prompt 'p'", ["lang"])
    completers.register("lang")(lambda value, context: "python")
    with pytest.raises(TypeError):
        await completers.complete("lang", "p", {})


def test_completers_only_for_known_names() -> None:
    with pytest.raises(ToolDefinitionError, match="cannot complete"):
        review.complete("nope")
    with pytest.raises(ToolDefinitionError, match="cannot complete"):
        a_note.complete("title")
    with pytest.raises(ToolDefinitionError, match="callable"):
        a_note.complete("name")("not callable")  # type: ignore[arg-type]
