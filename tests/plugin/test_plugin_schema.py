"""Input and output schemas generated from type hints."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import pydantic
import pytest
from typing_extensions import TypedDict

import mcpd
from mcpd.plugin.errors import ToolDefinitionError
from mcpd.plugin.schema import JSON_SCHEMA_DIALECT
from mcpd.plugin.tool import Tool, ToolAnnotations


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(pydantic.BaseModel):
    x: int
    y: int = 0


class Totals(TypedDict):
    count: int
    names: list[str]


@dataclasses.dataclass
class Pair:
    left: str
    right: str


@mcpd.tool
def documented(
    query: Annotated[str, "What to look for"],
    ctx: mcpd.Context,
    *,
    limit: Annotated[int, pydantic.Field(ge=1, le=50, description="At most this many")] = 10,
    colour: Colour = Colour.RED,
    near: Point | None = None,
    mode: Literal["fast", "exact"] = "fast",
) -> str:
    """Search the things.

    Longer explanation, kept in the description.
    """
    return query


def properties(tool: Tool) -> dict[str, Any]:
    props: dict[str, Any] = tool.input_schema["properties"]
    return props


def test_input_schema_is_an_object_schema_in_2020_12() -> None:
    schema = documented.input_schema
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert "title" not in schema


def test_context_parameter_is_injected_not_described() -> None:
    assert list(properties(documented)) == ["query", "limit", "colour", "near", "mode"]
    assert documented.inputs.context == "ctx"


def test_required_are_the_parameters_without_defaults() -> None:
    assert documented.input_schema["required"] == ["query"]


def test_annotated_string_and_field_descriptions() -> None:
    props = properties(documented)
    assert props["query"] == {"type": "string", "description": "What to look for"}
    assert props["limit"] == {
        "type": "integer",
        "description": "At most this many",
        "minimum": 1,
        "maximum": 50,
        "default": 10,
    }


def test_defaults_enums_literals_and_nested_models() -> None:
    props = properties(documented)
    assert props["colour"]["default"] == "red"
    assert props["mode"] == {"enum": ["fast", "exact"], "type": "string", "default": "fast"}
    assert props["near"]["default"] is None
    assert {"$ref": "#/$defs/Point"} in props["near"]["anyOf"]
    assert documented.input_schema["$defs"]["Point"]["required"] == ["x"]


def test_description_is_the_cleaned_docstring() -> None:
    assert (
        documented.description
        == "Search the things.\n\nLonger explanation, kept in the description."
    )


def test_explicit_description_and_name_win() -> None:
    @mcpd.tool(name="other.name", description="Explicit.")
    def named() -> str:
        """Docstring."""
        return ""

    assert (named.name, named.description) == ("other.name", "Explicit.")


def test_no_docstring_no_description() -> None:
    def bare() -> str:
        return ""

    assert mcpd.tool(bare).description is None


def test_parameter_names_pydantic_reserves_are_fine() -> None:
    @mcpd.tool
    def reserved(json: str, schema: int, model_config: bool, _private: float = 1.0) -> str:
        return json

    assert list(properties(reserved)) == ["json", "schema", "model_config", "_private"]
    validated = reserved.validate_arguments({"json": "j", "schema": 1, "model_config": True})
    assert validated == {"json": "j", "schema": 1, "model_config": True}


def test_unannotated_parameter_accepts_anything() -> None:
    @mcpd.tool
    def loose(value) -> str:  # type: ignore[no-untyped-def]
        return str(value)

    assert properties(loose) == {"value": {}}


def test_non_json_default_is_left_out_of_the_schema() -> None:
    @mcpd.tool
    def odd_default(tags: frozenset[str] = frozenset({"a"})) -> str:
        return ",".join(sorted(tags))

    assert properties(odd_default)["tags"]["type"] == "array"


# -- output schemas ----------------------------------------------------------------------------


def _output(annotation: Any) -> dict[str, Any] | None:
    def fn() -> None:
        return None

    fn.__annotations__ = {"return": annotation}
    schema = mcpd.tool(fn).output_schema
    return None if schema is None else dict(schema)


@pytest.mark.parametrize(
    "annotation",
    [
        str,
        None,
        Any,
        str | None,
        mcpd.Image,
        mcpd.Audio,
        mcpd.EmbeddedResource,
        mcpd.ResourceLink,
        list[mcpd.Image],
        list[mcpd.Image | str],
        Sequence[mcpd.ResourceLink],
        mcpd.Image | str,
    ],
)
def test_text_and_content_returns_have_no_output_schema(annotation: Any) -> None:
    assert _output(annotation) is None


def test_no_return_annotation_has_no_output_schema() -> None:
    def fn():  # type: ignore[no-untyped-def]
        return 1

    assert mcpd.tool(fn).output_schema is None


@pytest.mark.parametrize(
    ("annotation", "required"),
    [(Totals, ["count", "names"]), (Point, ["x"]), (Pair, ["left", "right"])],
)
def test_object_returns_are_published_as_they_are(annotation: Any, required: list[str]) -> None:
    schema = _output(annotation)
    assert schema is not None
    assert schema["type"] == "object"
    assert schema["required"] == required
    assert schema["$schema"] == JSON_SCHEMA_DIALECT


def test_dict_return_is_an_open_object() -> None:
    assert _output(dict[str, Any]) == {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "additionalProperties": True,
    }


@pytest.mark.parametrize(
    ("annotation", "inner"),
    [
        (int, {"type": "integer"}),
        (list[str], {"type": "array", "items": {"type": "string"}}),
        (bool, {"type": "boolean"}),
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    ],
)
def test_non_object_returns_are_wrapped_in_result(annotation: Any, inner: dict[str, Any]) -> None:
    assert _output(annotation) == {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": {"result": inner},
        "required": ["result"],
    }


def test_wrapped_definitions_move_to_the_root() -> None:
    schema = _output(list[Point])
    assert schema is not None
    assert schema["properties"]["result"]["items"] == {"$ref": "#/$defs/Point"}
    assert "Point" in schema["$defs"]


# -- what cannot be a tool ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "has space", "x" * 129, "slash/name", "naïve"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ToolDefinitionError, match="invalid tool name"):
        mcpd.tool(name=name)(_noop)


def test_longest_valid_name() -> None:
    assert mcpd.tool(name="a-b_c.D9" + "x" * 120)(_noop).name.startswith("a-b_c.D9")


def _noop() -> str:
    return ""


def _variadic(*words: str) -> str:
    return ""


def _keywords(**options: str) -> str:
    return ""


def _positional_only(a: int, /) -> str:
    return ""


async def _agen() -> Any:
    yield 1


@pytest.mark.parametrize("fn", [_variadic, _keywords, _positional_only, _agen, int])
def test_functions_that_cannot_be_tools(fn: Any) -> None:
    with pytest.raises(ToolDefinitionError):
        mcpd.tool(fn)


def test_unschemable_parameter_type_is_a_definition_error() -> None:
    class Opaque:
        pass

    def takes(thing: Opaque) -> str:
        return ""

    takes.__annotations__ = {"thing": Opaque, "return": str}
    with pytest.raises(ToolDefinitionError, match="takes"):
        mcpd.tool(takes)


def test_unresolvable_annotation_is_a_definition_error() -> None:
    def takes(thing: NotDefinedAnywhere) -> str:  # type: ignore[name-defined]  # noqa: F821
        return ""

    with pytest.raises(ToolDefinitionError, match="TYPE_CHECKING"):
        mcpd.tool(takes)


def test_a_tool_cannot_be_decorated_twice() -> None:
    with pytest.raises(ToolDefinitionError, match="already a tool"):
        mcpd.tool(documented)


@pytest.mark.parametrize("timeout", [0, -1, True, "5"])
def test_timeout_must_be_positive(timeout: Any) -> None:
    with pytest.raises(ToolDefinitionError, match="timeout"):
        mcpd.tool(timeout=timeout)(_noop)


def test_unknown_annotation_keys_are_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="readonlyHint"):
        mcpd.tool(annotations={"readonlyHint": True})(_noop)


def test_icons_need_a_src() -> None:
    with pytest.raises(ToolDefinitionError, match="src"):
        mcpd.tool(icons=[{"mimeType": "image/png"}])(_noop)


def test_typed_annotations_become_camel_case() -> None:
    hints = ToolAnnotations(title="T", read_only_hint=True, open_world_hint=False)
    assert mcpd.tool(annotations=hints)(_noop).annotations == {
        "title": "T",
        "readOnlyHint": True,
        "openWorldHint": False,
    }


def test_a_tool_is_still_callable_as_its_function() -> None:
    assert documented("text", None) == "text"
