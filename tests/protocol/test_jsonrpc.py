import pytest

from mcpd.protocol.errors import InvalidRequest, ParseError
from mcpd.protocol.jsonrpc import (
    Notification,
    Request,
    Response,
    Unencodable,
    dumps,
    error_message,
    parse_body,
    parse_message,
    result_message,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', Request(1, "ping", {})),
        (b'{"jsonrpc":"2.0","id":"a","method":"x","params":{"k":1}}', Request("a", "x", {"k": 1})),
        (
            b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
            Notification("notifications/initialized", {}),
        ),
        (b'{"jsonrpc":"2.0","id":3,"method":"x","params":null}', Request(3, "x", {})),
        (b'{"jsonrpc":"2.0","id":7,"result":{}}', Response(7, {}, None)),
        (
            b'{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"m"}}',
            Response(7, None, {"code": 1, "message": "m"}),
        ),
    ],
)
def test_parse_valid(body: bytes, expected: object) -> None:
    messages, batch = parse_body(body)
    assert messages == [expected]
    assert batch is False


def test_parse_batch() -> None:
    messages, batch = parse_body(
        b'[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]'
    )
    assert batch is True
    assert messages == [Request(1, "a", {}), Notification("b", {})]


@pytest.mark.parametrize("body", [b"{", b"", b"\xff", b"nul"])
def test_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_body(body)
    assert info.value.code == -32700
    assert info.value.http_status == 400


@pytest.mark.parametrize(
    "value",
    [
        [],
        "text",
        1,
        {"id": 1, "method": "x"},
        {"jsonrpc": "1.0", "id": 1, "method": "x"},
        {"jsonrpc": "2.0", "id": None, "method": "x"},
        {"jsonrpc": "2.0", "id": True, "method": "x"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "x"},
        {"jsonrpc": "2.0", "id": 1, "method": ""},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1, 2]},
        {"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}},
        {"jsonrpc": "2.0", "id": 1, "result": 3},
        {"jsonrpc": "2.0", "id": 1},
    ],
)
def test_invalid_request(value: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_message(value) if not isinstance(value, list) else parse_body(dumps(value))
    assert info.value.code == -32600


def test_framing_round_trip() -> None:
    assert dumps(result_message(1, {"a": 1})) == b'{"jsonrpc":"2.0","id":1,"result":{"a":1}}'
    error = error_message(None, InvalidRequest("bad"))
    assert error == {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "bad"}}


def test_dumps_sends_big_integers_exactly() -> None:
    assert dumps({"n": 123456789012345678901234567890}) == b'{"n":123456789012345678901234567890}'
    assert dumps({"n": -(2**70), "s": "é"}) == '{"n":-1180591620717411303424,"s":"é"}'.encode()


@pytest.mark.parametrize("bad", ["lone \ud800 surrogate", object(), {1j: 1}])
def test_dumps_refuses_what_json_cannot_carry(bad: object) -> None:
    with pytest.raises(Unencodable):
        dumps({"v": bad})


def test_dumps_writes_non_finite_floats_as_null() -> None:
    assert dumps({"v": float("nan")}) == b'{"v":null}'
