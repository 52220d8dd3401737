"""What a contained plugin failure lets through, and how it is described in the log."""

from __future__ import annotations

import pytest
import trio

from mcpd.runtime.containment import failure_fields, passes_through
from mcpd.runtime.inputs import InputRequired


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


async def test_cancellations_and_input_requests_pass_through() -> None:
    seen: list[BaseException] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.sleep(1)
        except trio.Cancelled as cancelled:
            seen.append(cancelled)
            raise
    (cancelled,) = seen
    assert passes_through(cancelled)
    assert passes_through(BaseExceptionGroup("both", [cancelled, InputRequired({})]))
    assert not passes_through(BaseExceptionGroup("mixed", [cancelled, SystemExit()]))
    assert passes_through(InputRequired({"q": {"method": "roots/list", "params": {}}}))


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), SystemExit(1), GeneratorExit(), ValueError()]
)
def test_everything_else_is_contained(error: BaseException) -> None:
    assert not passes_through(error)


def test_failure_fields_name_type_and_place_but_not_the_text() -> None:
    error = _raised(ValueError("token=hunter2"))
    fields = failure_fields(error, with_message=False)
    assert fields["error_type"] == "ValueError"
    assert "test_plugin_faults.py:" in fields["location"]
    assert all("hunter2" not in str(value) for value in fields.values())
    assert failure_fields(error, with_message=True)["error"] == "token=hunter2"


def test_failure_fields_of_a_group_describe_its_leaves() -> None:
    group = _raised(BaseExceptionGroup("g", [_raised(SystemExit(3)), _raised(KeyError("k"))]))
    fields = failure_fields(group, with_message=False)
    assert fields["error_type"] == "BaseExceptionGroup"
    assert fields["exceptions"] == ["SystemExit", "KeyError"]
    assert "test_plugin_faults.py:" in fields["location"]


def test_an_unprintable_exception_is_still_described() -> None:
    class Mute(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    fields = failure_fields(_raised(Mute()), with_message=True)
    assert fields["error"] == "<unprintable>"
    assert fields["error_type"].endswith("Mute")
