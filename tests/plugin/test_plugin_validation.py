"""Argument validation: what gets through, and the message when it does not."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import pydantic
import pytest

import mcpd
from mcpd.plugin.errors import InvalidArguments


class Window(pydantic.BaseModel):
    start: datetime.date
    days: int


@mcpd.tool
def book(
    room: str,
    window: Window,
    guests: Annotated[int, pydantic.Field(ge=1, le=4)] = 1,
    note: str | None = None,
) -> str:
    return room


@mcpd.tool
def nothing() -> str:
    return "nothing"


def test_valid_arguments_are_parsed_into_python_values() -> None:
    validated = book.validate_arguments({"room": "A", "window": {"start": "2025-01-31", "days": 2}})
    assert validated == {"room": "A", "window": Window(start=datetime.date(2025, 1, 31), days=2)}


def test_omitted_optional_arguments_are_left_to_the_function_defaults() -> None:
    assert "guests" not in book.validate_arguments(
        {"room": "A", "window": {"start": "2025-01-31", "days": 2}}
    )


@pytest.mark.parametrize("arguments", [None, {}])
def test_no_arguments_for_a_tool_without_parameters(arguments: dict[str, Any] | None) -> None:
    assert nothing.validate_arguments(arguments) == {}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"window": {"start": "2025-01-31", "days": 1}}, "room: required argument is missing"),
        ({"room": 7, "window": {"start": "2025-01-31", "days": 1}}, "room: Input should be"),
        ({"room": "A", "window": {"start": "soon", "days": 1}}, "window.start: Input should be"),
        (
            {"room": "A", "window": {"start": "2025-01-31", "days": 1}, "guests": 9},
            "guests: Input should be less than or equal to 4",
        ),
        (
            {"room": "A", "window": {"start": "2025-01-31", "days": 1}, "colour": "red"},
            "colour: unexpected argument",
        ),
    ],
)
def test_errors_name_the_bad_field(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArguments, match=message):
        book.validate_arguments(arguments)


def test_unknown_arguments_are_rejected_even_for_tools_without_parameters() -> None:
    with pytest.raises(InvalidArguments, match="surprise: unexpected argument"):
        nothing.validate_arguments({"surprise": 1})


def test_every_error_is_reported_up_to_a_limit() -> None:
    with pytest.raises(InvalidArguments) as caught:
        nothing.validate_arguments({f"extra{i}": i for i in range(8)})
    assert caught.value.message.count("unexpected argument") == 5
    assert caught.value.message.endswith("and 3 more")


def test_the_message_does_not_echo_the_input() -> None:
    with pytest.raises(InvalidArguments) as caught:
        book.validate_arguments({"room": "secret-token-123", "window": "x"})
    assert "secret-token-123" not in caught.value.message
