"""Multi-round-trip input (2026): sealed ``requestState`` tokens and the answers of a round."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

import mcpd
from mcpd.plugin.context import Context, Elicitation
from mcpd.protocol.errors import InvalidParams
from mcpd.runtime import inputs
from mcpd.runtime.inputs import (
    InputRequired,
    InputRound,
    RequestStates,
    input_required_result,
    params_digest,
)

METHOD = "tools/call"
PARAMS: dict[str, Any] = {"name": "ask", "arguments": {"x": 1}}
ANSWERS: dict[str, Any] = {"q0": {"action": "accept", "content": {"name": "Ada"}}}
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string"}}}


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def states(ttl: float = 60.0, clock: Clock | None = None, key: bytes = b"k" * 32) -> RequestStates:
    return RequestStates(ttl, key=key, clock=clock or Clock())


def _split(token: str) -> tuple[dict[str, Any], str]:
    body, mac = token.split(".")
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return payload, mac


def _join(payload: dict[str, Any], mac: str) -> str:
    body = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
    return f"{body}.{mac}"


# -- RequestStates ----------------------------------------------------------------------------


def test_seal_then_open_returns_the_answers() -> None:
    sealer = states()
    token = sealer.seal(METHOD, PARAMS, ANSWERS)
    assert isinstance(token, str)
    assert sealer.open(token, METHOD, PARAMS) == ANSWERS


def test_round_keys_do_not_change_what_a_state_is_for() -> None:
    sealer = states()
    token = sealer.seal(METHOD, PARAMS, {})
    retry = {**PARAMS, "_meta": {"other": 1}, "inputResponses": {"q0": {}}, "requestState": token}
    assert sealer.open(token, METHOD, retry) == {}


def test_each_seal_is_distinct() -> None:
    sealer = states()
    assert sealer.seal(METHOD, PARAMS, {}) != sealer.seal(METHOD, PARAMS, {})


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: {**p, "a": {"q0": {"action": "decline"}}}, id="forged-answer"),
        pytest.param(lambda p: {**p, "e": p["e"] + 3600}, id="longer-expiry"),
        pytest.param(lambda p: {**p, "m": "prompts/get"}, id="other-method"),
    ],
)
def test_a_changed_body_fails_the_integrity_check(change: Any) -> None:
    sealer = states()
    payload, mac = _split(sealer.seal(METHOD, PARAMS, ANSWERS))
    with pytest.raises(InvalidParams, match="integrity"):
        sealer.open(_join(change(payload), mac), METHOD, PARAMS)


def test_a_changed_mac_fails_the_integrity_check() -> None:
    sealer = states()
    body, mac = sealer.seal(METHOD, PARAMS, ANSWERS).split(".")
    forged = ("A" if mac[0] != "A" else "B") + mac[1:]
    with pytest.raises(InvalidParams, match="integrity"):
        sealer.open(f"{body}.{forged}", METHOD, PARAMS)


def test_another_daemons_state_is_refused() -> None:
    token = states(key=b"a" * 32).seal(METHOD, PARAMS, ANSWERS)
    with pytest.raises(InvalidParams):
        states(key=b"b" * 32).open(token, METHOD, PARAMS)


def test_default_keys_differ_per_instance() -> None:
    token = RequestStates(60).seal(METHOD, PARAMS, ANSWERS)
    with pytest.raises(InvalidParams):
        RequestStates(60).open(token, METHOD, PARAMS)


@pytest.mark.parametrize("token", [None, 7, "", "no-dot", "a.b.c", "!!!.???", "e30.e30"])
def test_malformed_tokens_are_refused(token: object) -> None:
    with pytest.raises(InvalidParams):
        states().open(token, METHOD, PARAMS)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("prompts/get", PARAMS),
        (METHOD, {**PARAMS, "arguments": {"x": 2}}),
        (METHOD, {**PARAMS, "name": "other"}),
        (METHOD, {"name": "ask"}),
    ],
)
def test_a_state_is_bound_to_its_method_and_params(method: str, params: dict[str, Any]) -> None:
    sealer = states()
    token = sealer.seal(METHOD, PARAMS, ANSWERS)
    with pytest.raises(InvalidParams, match="different request"):
        sealer.open(token, method, params)
    # A refused attempt does not use the state up.
    assert sealer.open(token, METHOD, PARAMS) == ANSWERS


def test_a_state_expires_after_its_ttl() -> None:
    clock = Clock()
    sealer = states(ttl=30, clock=clock)
    fresh = sealer.seal(METHOD, PARAMS, {})
    late = sealer.seal(METHOD, PARAMS, {})
    clock.now += 30
    assert sealer.open(fresh, METHOD, PARAMS) == {}  # exactly at the expiry: still valid
    clock.now += 0.001
    with pytest.raises(InvalidParams, match="expired"):
        sealer.open(late, METHOD, PARAMS)


def test_a_state_opens_once() -> None:
    sealer = states()
    token = sealer.seal(METHOD, PARAMS, ANSWERS)
    sealer.open(token, METHOD, PARAMS)
    with pytest.raises(InvalidParams, match="already used"):
        sealer.open(token, METHOD, PARAMS)


def test_the_spent_table_is_bounded_dropping_expired_nonces_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inputs, "MAX_SPENT", 8)
    clock = Clock()
    sealer = states(ttl=10, clock=clock)
    old = [sealer.seal(METHOD, PARAMS, {}) for _ in range(8)]
    for token in old:
        sealer.open(token, METHOD, PARAMS)
    clock.now += 5
    recent = sealer.seal(METHOD, PARAMS, {})
    clock.now += 6  # the old ones have expired, the recent one has not
    sealer.open(recent, METHOD, PARAMS)
    assert len(sealer._spent) == 1  # only the live nonce is remembered
    with pytest.raises(InvalidParams, match="already used"):
        sealer.open(recent, METHOD, PARAMS)
    for token in old:  # forgotten, but expired: still refused
        with pytest.raises(InvalidParams, match="expired"):
            sealer.open(token, METHOD, PARAMS)


def test_a_full_table_of_live_nonces_refuses_rather_than_forgets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inputs, "MAX_SPENT", 8)
    clock = Clock()
    sealer = states(ttl=1_000, clock=clock)
    tokens = []
    for _ in range(8):
        clock.now += 1
        token = sealer.seal(METHOD, PARAMS, {})
        sealer.open(token, METHOD, PARAMS)
        tokens.append(token)
    extra = sealer.seal(METHOD, PARAMS, {})
    with pytest.raises(inputs.ServerBusy):
        sealer.open(extra, METHOD, PARAMS)
    assert len(sealer._spent) == 8
    for token in tokens:  # every used state stays used
        with pytest.raises(InvalidParams, match="already used"):
            sealer.open(token, METHOD, PARAMS)
    clock.now += 1_000  # once the first ones expire, there is room again
    assert sealer.open(extra, METHOD, PARAMS) == {}


def test_params_digest_ignores_key_order_and_round_keys() -> None:
    assert params_digest({"a": 1, "b": {"c": 2, "d": 3}}) == params_digest(
        {"b": {"d": 3, "c": 2}, "a": 1, "_meta": {"x": 1}, "requestState": "s"}
    )
    assert params_digest({"a": 1}) != params_digest({"a": 2})


# -- InputRound -------------------------------------------------------------------------------


QUESTIONS = [
    ("q0", "elicitation/create", {"message": "a"}),
    ("q1", "sampling/createMessage", {"maxTokens": 1}),
    ("q2", "roots/list", {}),
]


def test_answers_come_back_in_asking_order() -> None:
    answers = {"q0": {"a": 0}, "q1": {"a": 1}, "q2": {"a": 2}}
    assert InputRound(answers).answer(QUESTIONS) == [{"a": 0}, {"a": 1}, {"a": 2}]


def test_every_missing_answer_is_required_at_once() -> None:
    with pytest.raises(InputRequired) as raised:
        InputRound({"q1": {"a": 1}, "q2": "not an object"}).answer(QUESTIONS)
    assert raised.value.requests == {
        "q0": {"method": "elicitation/create", "params": {"message": "a"}},
        "q2": {"method": "roots/list", "params": {}},
    }


def test_start_without_state_uses_only_this_rounds_answers() -> None:
    params = {**PARAMS, "inputResponses": {"q0": {"a": 0}, "q1": "junk"}}
    assert InputRound.start(states(), METHOD, params).answers == {"q0": {"a": 0}}


def test_start_merges_sealed_and_new_answers() -> None:
    sealer = states()
    token = sealer.seal(METHOD, PARAMS, {"q0": {"a": 0}})
    params = {**PARAMS, "requestState": token, "inputResponses": {"q1": {"a": 1}}}
    assert InputRound.start(sealer, METHOD, params).answers == {"q0": {"a": 0}, "q1": {"a": 1}}


@pytest.mark.parametrize("responses", [[], "x", 5])
def test_start_refuses_input_responses_that_are_not_an_object(responses: object) -> None:
    with pytest.raises(InvalidParams):
        InputRound.start(states(), METHOD, {**PARAMS, "inputResponses": responses})


def test_start_refuses_a_bad_state() -> None:
    with pytest.raises(InvalidParams):
        InputRound.start(states(), METHOD, {**PARAMS, "requestState": "forged.state"})


def test_input_required_result_seals_the_answers_so_far() -> None:
    sealer = states()
    need = InputRequired({"q1": {"method": "roots/list", "params": {}}})
    result = input_required_result(sealer, METHOD, PARAMS, need, {"q0": {"a": 0}})
    assert result["resultType"] == "input_required"
    assert result["inputRequests"] == need.requests
    assert sealer.open(result["requestState"], METHOD, PARAMS) == {"q0": {"a": 0}}


# -- keys as a handler's Context assigns them --------------------------------------------------


class RoundChannel:
    """The slice of a request a ``Context`` needs, answering questions from an InputRound."""

    request_id = 1
    revision = "2026-07-28"
    progress_token = None
    session_id = None

    def __init__(self, answers: dict[str, Any]) -> None:
        self.round = InputRound(answers)

    def wants_log(self, level: str) -> bool:
        return False

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        raise AssertionError("nothing is sent")

    def client_supports(self, capability: str) -> bool:
        return True

    async def ask(self, questions: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        return self.round.answer(questions)

    async def close_stream(self, retry_ms: int | None) -> None:
        return None


ACCEPTED = {"action": "accept", "content": {"name": "Ada"}}


async def test_positional_keys_count_every_question_of_the_request() -> None:
    ctx = Context(RoundChannel({"q0": ACCEPTED}))
    first = await ctx.elicit("first?", SCHEMA)
    assert first == Elicitation("accept", {"name": "Ada"})
    with pytest.raises(InputRequired) as raised:
        await ctx.elicit("second?", SCHEMA)
    assert list(raised.value.requests) == ["q1"]
    assert raised.value.requests["q1"]["params"]["message"] == "second?"


async def test_explicit_keys_name_their_questions() -> None:
    ctx = Context(RoundChannel({}))
    with pytest.raises(InputRequired) as raised:
        await ctx.ask(
            mcpd.Elicit("name?", SCHEMA, key="name"),
            mcpd.Sample("hi", max_tokens=5),
            mcpd.ListRoots(),
        )
    assert {key: r["method"] for key, r in raised.value.requests.items()} == {
        "name": "elicitation/create",
        "q1": "sampling/createMessage",
        "q2": "roots/list",
    }


async def test_the_same_code_asks_the_same_keys_in_the_next_round() -> None:
    answers = {"name": ACCEPTED, "q1": {"content": {"type": "text", "text": "yo"}}}
    ctx = Context(RoundChannel(answers))
    with pytest.raises(InputRequired) as raised:
        await ctx.ask(
            mcpd.Elicit("name?", SCHEMA, key="name"),
            mcpd.Sample("hi", max_tokens=5),
            mcpd.ListRoots(),
        )
    assert list(raised.value.requests) == ["q2"]  # only what is still unanswered


async def test_questions_asked_together_need_distinct_keys() -> None:
    ctx = Context(RoundChannel({}))
    with pytest.raises(ValueError, match="distinct keys"):
        await ctx.ask(mcpd.ListRoots(key="k"), mcpd.ListRoots(key="k"))
