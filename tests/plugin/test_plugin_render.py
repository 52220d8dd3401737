"""Return values as ``CallToolResult``s, per protocol revision."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
from pathlib import PurePosixPath
from typing import Any

import pydantic
import pytest
from structlog.testing import capture_logs
from typing_extensions import TypedDict

import mcpd
from mcpd.plugin.tool import Tool

PNG = b"\x89PNG\r\n\x1a\n-not-really"
WAV = b"RIFF....WAVE"
OLD, ANNOTATED, STRUCTURED, LATEST = "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"


class Weather(pydantic.BaseModel):
    city: str
    celsius: float
    at: datetime.datetime


class Count(TypedDict):
    n: int


@dataclasses.dataclass
class Span:
    start: int
    end: int


def returning(value: Any) -> Tool:
    """An undeclared tool (no return annotation) returning ``value``."""

    def fn():  # type: ignore[no-untyped-def]
        return value

    return mcpd.tool(name="t")(fn)


def declared(annotation: Any, value: Any) -> Tool:
    def fn() -> None:
        return value  # type: ignore[no-any-return]

    fn.__annotations__ = {"return": annotation}
    return mcpd.tool(name="t")(fn)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


@pytest.mark.parametrize("revision", [OLD, LATEST])
def test_string_is_one_text_block(revision: str) -> None:
    assert returning("hi").render("hi", revision) == {"content": [text("hi")]}


def test_none_is_no_content() -> None:
    assert returning(None).render(None, LATEST) == {"content": []}


@pytest.mark.parametrize("revision", [OLD, LATEST])
def test_image_is_base64(revision: str) -> None:
    result = returning(None).render(mcpd.Image(PNG, "image/png"), revision)
    block = result["content"][0]
    assert block == {"type": "image", "mimeType": "image/png", "data": block["data"]}
    assert base64.b64decode(block["data"]) == PNG


def test_audio_from_2025_03_26_and_described_before() -> None:
    clip = mcpd.Audio(WAV, "audio/wav")
    assert returning(None).render(clip, ANNOTATED)["content"][0] == {
        "type": "audio",
        "data": base64.b64encode(WAV).decode(),
        "mimeType": "audio/wav",
    }
    old = returning(None).render(clip, OLD)["content"][0]
    assert old == text(f"[audio omitted: audio/wav, {len(WAV)} bytes]")


def test_resource_link_from_2025_06_18_and_described_before() -> None:
    link = mcpd.ResourceLink(
        "file:///tmp/a.txt", name="a.txt", description="the file", mime_type="text/plain", size=3
    )
    assert returning(None).render(link, STRUCTURED)["content"][0] == {
        "type": "resource_link",
        "uri": "file:///tmp/a.txt",
        "name": "a.txt",
        "description": "the file",
        "mimeType": "text/plain",
        "size": 3,
    }
    assert returning(None).render(link, ANNOTATED)["content"][0] == text(
        "a.txt: file:///tmp/a.txt\nthe file"
    )


@pytest.mark.parametrize("revision", [OLD, LATEST])
def test_embedded_resources_text_and_blob(revision: str) -> None:
    as_text = mcpd.EmbeddedResource("memo://1", text="note", mime_type="text/plain")
    as_blob = mcpd.EmbeddedResource("memo://2", blob=b"\x00\x01")
    assert returning(None).render([as_text, as_blob], revision)["content"] == [
        {
            "type": "resource",
            "resource": {"uri": "memo://1", "mimeType": "text/plain", "text": "note"},
        },
        {"type": "resource", "resource": {"uri": "memo://2", "blob": "AAE="}},
    ]


def test_a_list_of_blocks_becomes_several_blocks_in_order() -> None:
    value = ["caption", mcpd.Image(PNG, "image/png"), "footer"]
    content = returning(None).render(value, LATEST)["content"]
    assert [block["type"] for block in content] == ["text", "image", "text"]


def test_declared_content_list_renders_as_blocks() -> None:
    tool = declared(list[mcpd.Image | str], None)
    assert tool.output_schema is None
    assert len(tool.render(["a", mcpd.Image(PNG, "image/png")], LATEST)["content"]) == 2


@pytest.mark.parametrize("revision", [STRUCTURED, LATEST, "2026-07-28"])
def test_wrapped_structured_result(revision: str) -> None:
    assert declared(int, 5).render(5, revision) == {
        "content": [text('{"result":5}')],
        "structuredContent": {"result": 5},
    }


@pytest.mark.parametrize("revision", [OLD, ANNOTATED])
def test_structured_result_is_bare_json_text_before_2025_06_18(revision: str) -> None:
    assert declared(int, 5).render(5, revision) == {"content": [text("5")]}
    assert declared(list[int], [1, 2]).render([1, 2], revision) == {"content": [text("[1,2]")]}


def test_model_result_uses_pydantic_serialisation() -> None:
    value = Weather(city="Oslo", celsius=-3.5, at=datetime.datetime(2025, 1, 2, 3, 4, 5))
    result = declared(Weather, value).render(value, LATEST)
    expected = {"city": "Oslo", "celsius": -3.5, "at": "2025-01-02T03:04:05"}
    assert result["structuredContent"] == expected
    assert json.loads(result["content"][0]["text"]) == expected


@pytest.mark.parametrize(
    ("annotation", "value", "structured"),
    [
        (Count, {"n": 1}, {"n": 1}),
        (Span, Span(1, 4), {"start": 1, "end": 4}),
        (dict[str, Any], {"a": [1]}, {"a": [1]}),
        (int | None, None, {"result": None}),
        (list[Span], [Span(0, 1)], {"result": [{"start": 0, "end": 1}]}),
    ],
)
def test_structured_shapes(annotation: Any, value: Any, structured: Any) -> None:
    assert declared(annotation, value).render(value, LATEST)["structuredContent"] == structured


def test_a_value_contradicting_the_declared_type_is_an_error_result() -> None:
    with capture_logs() as logs:
        result = declared(Count, {"n": "secret"}).render({"n": "secret"}, LATEST)
    assert result["isError"] is True
    assert "structuredContent" not in result
    assert logs[0]["event"] == "tool.bad_output"
    assert logs[0]["error"].startswith("n: Input should be a valid integer")
    assert "secret" not in str(logs) + str(result)


def test_undeclared_dicts_and_models_are_structured() -> None:
    span = Span(2, 3)
    assert returning(span).render(span, LATEST)["structuredContent"] == {"start": 2, "end": 3}
    assert returning(span).render(span, OLD) == {"content": [text('{"start":2,"end":3}')]}


def test_undeclared_non_objects_are_json_text_only() -> None:
    assert returning(None).render([1, "a"], LATEST) == {"content": [text('[1,"a"]')]}
    assert returning(None).render(4.5, LATEST) == {"content": [text("4.5")]}


def test_undeclared_odd_values_fall_back_to_their_string() -> None:
    value = {"path": PurePosixPath("/tmp/x")}
    assert returning(None).render(value, LATEST)["structuredContent"] == {"path": "/tmp/x"}


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: mcpd.Image("not bytes", "image/png"), "bytes"),  # type: ignore[arg-type]
        (lambda: mcpd.Image(PNG, "png"), "mime_type"),
        (lambda: mcpd.Audio(b"", "nonsense"), "mime_type"),
        (lambda: mcpd.EmbeddedResource("memo://x"), "exactly one"),
        (lambda: mcpd.EmbeddedResource("memo://x", text="a", blob=b"b"), "exactly one"),
        (lambda: mcpd.ResourceLink("memo://x", name="x", mime_type="bad"), "mime_type"),
    ],
)
def test_content_types_check_their_fields(factory: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        factory()
