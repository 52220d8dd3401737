"""Asking the client for input (elicitation, sampling, roots), written once, served in both eras.

Legacy sessions: the server sends a real JSON-RPC request on the asking POST's SSE stream and
the client POSTs its response (202); the tool's result follows on the same stream.
2026-07-28: the server answers ``input_required`` with a sealed ``requestState``; the client
retries with ``inputResponses`` and the state.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import Legacy, P, messages_of
from support.daemon import Daemon, daemon_config, wait_for_file
from support.eras import ALL_CAPABILITIES, headers_for, modern_body
from support.events import EventReader, is_method, is_response

NAME_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
}
ACCEPT_ADA = {"action": "accept", "content": {"name": "Ada"}}
SAMPLED = {
    "role": "assistant",
    "content": {"type": "text", "text": "Hello"},
    "model": "test-model",
    "stopReason": "endTurn",
}
ROOTS = {"roots": [{"uri": "file:///a", "name": "a"}, {"uri": "file:///b"}]}


def _tag(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def text_of(result: dict[str, Any]) -> str:
    return result["content"][0]["text"]  # type: ignore[no-any-return]


# == legacy sessions: real server-to-client requests ============================================


class Asker:
    """A legacy session with a second HTTP connection for answering the server's questions."""

    def __init__(self, daemon: Daemon, capabilities: dict[str, Any]) -> None:
        self.main = httpx.Client(timeout=30)
        self.side = httpx.Client(timeout=30)
        self.client = Legacy(self.main, daemon.url).initialize(capabilities)
        self.url = daemon.url

    def close(self) -> None:
        self.main.close()
        self.side.close()

    @contextmanager
    def request(
        self, method: str, params: dict[str, Any], request_id: str = "call-1"
    ) -> Iterator[EventReader]:
        """POST a request and read its SSE stream while it runs."""
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        with self.main.stream("POST", self.url, json=body, headers=self.client.headers()) as r:
            assert r.status_code == 200
            yield EventReader(r)

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        return self.request("tools/call", {"name": name, "arguments": arguments or {}})

    def send(self, message: dict[str, Any]) -> httpx.Response:
        return self.side.post(self.url, json=message, headers=self.client.headers())

    def answer(self, question: dict[str, Any], result: dict[str, Any]) -> None:
        response = self.send({"jsonrpc": "2.0", "id": question["id"], "result": result})
        assert response.status_code == 202
        assert response.content == b""

    def answer_next(self, reader: EventReader, method: str, result: dict[str, Any]) -> Any:
        question = reader.until(lambda m: "method" in m and "id" in m)
        assert question["method"] == method, question
        self.answer(question, result)
        return question


@pytest.fixture
def asker(daemon: Daemon) -> Iterator[Asker]:
    session = Asker(daemon, ALL_CAPABILITIES)
    yield session
    session.close()


def test_legacy_elicitation_round_trip(asker: Asker) -> None:
    with asker.call("ask_name") as reader:
        question = reader.until(is_method("elicitation/create"))
        assert question["jsonrpc"] == "2.0"
        assert question["params"] == {
            "message": "What is your name?",
            "requestedSchema": NAME_SCHEMA,
        }
        asker.answer(question, ACCEPT_ADA)
        final = reader.until(is_response("call-1"))
        assert reader.rest() == []  # the stream ends after the response
    assert text_of(final["result"]) == "accept:Ada"
    assert final["result"].get("isError", False) is False


def test_legacy_elicitation_decline(asker: Asker) -> None:
    with asker.call("ask_name") as reader:
        asker.answer_next(reader, "elicitation/create", {"action": "decline"})
        final = reader.until(is_response("call-1"))
    assert text_of(final["result"]) == "decline:None"


def test_legacy_sampling_round_trip(asker: Asker) -> None:
    with asker.call("ask_model", {"prompt": "Hi"}) as reader:
        question = asker.answer_next(reader, "sampling/createMessage", SAMPLED)
        final = reader.until(is_response("call-1"))
    assert question["params"]["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "Hi"}}
    ]
    assert question["params"]["maxTokens"] == 50
    assert question["params"]["systemPrompt"] == "Be brief."
    assert text_of(final["result"]) == "Hello"


def test_legacy_roots_round_trip(asker: Asker) -> None:
    with asker.call("ask_roots") as reader:
        asker.answer_next(reader, "roots/list", ROOTS)
        final = reader.until(is_response("call-1"))
    assert text_of(final["result"]) == "file:///a,file:///b"


def test_legacy_three_questions_are_three_requests(asker: Asker) -> None:
    with asker.call("ask_three") as reader:
        first = asker.answer_next(reader, "elicitation/create", ACCEPT_ADA)
        second = asker.answer_next(reader, "sampling/createMessage", SAMPLED)
        third = asker.answer_next(reader, "roots/list", ROOTS)
        final = reader.until(is_response("call-1"))
    assert len({first["id"], second["id"], third["id"]}) == 3
    assert text_of(final["result"]) == "accept:Ada|Hello|file:///a,file:///b"


def test_legacy_resource_read_asks_on_its_stream(asker: Asker) -> None:
    with asker.request("resources/read", {"uri": "fixture://asks/rust"}) as reader:
        asker.answer_next(reader, "elicitation/create", ACCEPT_ADA)
        final = reader.until(is_response("call-1"))
    assert final["result"]["contents"] == [
        {"uri": "fixture://asks/rust", "text": "rust: accept:Ada"}
    ]


def test_legacy_prompt_get_asks_on_its_stream(asker: Asker) -> None:
    params = {"name": "interview", "arguments": {"topic": "tea"}}
    with asker.request("prompts/get", params) as reader:
        asker.answer_next(reader, "elicitation/create", ACCEPT_ADA)
        final = reader.until(is_response("call-1"))
    text = final["result"]["messages"][0]["content"]["text"]
    assert text == "Interview about tea: accept:Ada"


def test_legacy_error_answer_is_a_tool_error(asker: Asker) -> None:
    with asker.call("ask_name") as reader:
        question = reader.until(is_method("elicitation/create"))
        error = {"code": -1, "message": "user closed the dialog"}
        response = asker.send({"jsonrpc": "2.0", "id": question["id"], "error": error})
        assert response.status_code == 202
        final = reader.until(is_response("call-1"))
    assert final["result"]["isError"] is True
    assert "user closed the dialog" in text_of(final["result"])


@pytest.mark.parametrize(
    ("capabilities", "tool", "arguments", "missing"),
    [
        ({}, "ask_name", {}, "elicitation"),
        ({"elicitation": {}, "roots": {}}, "ask_model", {"prompt": "x"}, "sampling"),
        ({"elicitation": {}, "sampling": {}}, "ask_roots", {}, "roots"),
        ({"elicitation": {}, "roots": {}}, "ask_three", {}, "sampling"),
    ],
)
def test_legacy_undeclared_capability_is_never_asked(
    daemon: Daemon,
    http: httpx.Client,
    capabilities: dict[str, Any],
    tool: str,
    arguments: dict[str, Any],
    missing: str,
) -> None:
    client = Legacy(http, daemon.url).initialize(capabilities)
    response = client.request("tools/call", {"name": tool, "arguments": arguments})
    messages = messages_of(response)
    assert [m for m in messages if "method" in m] == []  # no request was sent to the client
    result = messages[-1]["result"]
    assert result["isError"] is True
    assert missing in text_of(result)


def test_legacy_cancelling_a_waiting_call_runs_its_finally(asker: Asker, markers: Path) -> None:
    tag = _tag("input-cancel")
    with asker.call("wait_for_answer", {"tag": tag}) as reader:
        question = reader.until(is_method("elicitation/create"))
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": "call-1", "reason": "user gave up"},
        }
        assert asker.send(cancel).status_code == 202
        marker = wait_for_marker(markers, tag)
        # The late answer is accepted and ignored.
        asker.answer(question, ACCEPT_ADA)
        rest = reader.rest()
        assert [m for m in rest if m.get("id") == "call-1"] == []
        # The server withdrew its question before ending the stream.
        withdrawn = [m for m in rest if m.get("method") == "notifications/cancelled"]
        assert [m["params"]["requestId"] for m in withdrawn] == [question["id"]]
    assert marker["outcome"] == "cancelled"
    assert "user gave up" in marker["reason"]
    assert asker.client.rpc("ping")["result"] == {}  # the session lives on
    asker.answer(question, ACCEPT_ADA)  # a second late answer: still 202


def test_legacy_delete_while_waiting_cancels_the_call(asker: Asker, markers: Path) -> None:
    tag = _tag("input-delete")
    with asker.call("wait_for_answer", {"tag": tag}) as reader:
        question = reader.until(is_method("elicitation/create"))
        deleted = asker.side.delete(asker.url, headers=asker.client.headers())
        assert deleted.status_code == 200
        marker = wait_for_marker(markers, tag)
        assert [m for m in reader.rest() if m.get("id") == "call-1"] == []
    assert marker["outcome"] == "cancelled"
    assert "session deleted" in marker["reason"]
    late = asker.send({"jsonrpc": "2.0", "id": question["id"], "result": ACCEPT_ADA})
    assert late.status_code == 404  # the session is gone


def test_legacy_answered_wait_completes(asker: Asker, markers: Path) -> None:
    tag = _tag("input-done")
    with asker.call("wait_for_answer", {"tag": tag}) as reader:
        asker.answer_next(reader, "elicitation/create", ACCEPT_ADA)
        final = reader.until(is_response("call-1"))
    assert text_of(final["result"]) == "accept:Ada"
    assert wait_for_marker(markers, tag)["outcome"] == "completed"


def wait_for_marker(markers: Path, tag: str) -> dict[str, Any]:
    return wait_for_file(markers / f"{tag}.json")


# == 2026-07-28: input_required and requestState ===============================================


class Modern:
    """Stateless requests with all three client capabilities declared (unless told otherwise)."""

    def __init__(self, http: httpx.Client, url: str) -> None:
        self.http = http
        self.url = url
        self.ids = 0

    def post(
        self, method: str, params: dict[str, Any], capabilities: dict[str, Any] | None = None
    ) -> httpx.Response:
        self.ids += 1
        caps = ALL_CAPABILITIES if capabilities is None else capabilities
        body = modern_body(method, params, request_id=self.ids, capabilities=caps)
        return self.http.post(self.url, json=body, headers=headers_for(body))

    def send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The final message of a request (a result or an error)."""
        return messages_of(self.post(method, params))[-1]

    def result(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        message = self.send(method, params)
        assert "result" in message, message
        return message["result"]  # type: ignore[no-any-return]


@pytest.fixture
def modern(daemon: Daemon, http: httpx.Client) -> Modern:
    return Modern(http, daemon.url)


ASK_NAME = {"name": "ask_name", "arguments": {}}


def retry(
    params: dict[str, Any], state: str | None, answers: dict[str, Any] | None
) -> dict[str, Any]:
    again = dict(params)
    if state is not None:
        again["requestState"] = state
    if answers is not None:
        again["inputResponses"] = answers
    return again


def assert_input_required(result: dict[str, Any]) -> dict[str, Any]:
    assert result["resultType"] == "input_required"
    assert isinstance(result["requestState"], str)
    assert result["requestState"]
    assert "ttlMs" not in result  # cache fields belong to complete results only
    assert "cacheScope" not in result
    assert result["_meta"][P + "serverInfo"]["name"] == "mcpd"
    return result["inputRequests"]  # type: ignore[no-any-return]


def test_modern_elicitation_input_required_then_complete(modern: Modern) -> None:
    first = modern.result("tools/call", ASK_NAME)
    assert assert_input_required(first) == {
        "q0": {
            "method": "elicitation/create",
            "params": {"message": "What is your name?", "requestedSchema": NAME_SCHEMA},
        }
    }
    done = modern.result("tools/call", retry(ASK_NAME, first["requestState"], {"q0": ACCEPT_ADA}))
    assert done["resultType"] == "complete"
    assert text_of(done) == "accept:Ada"
    assert "requestState" not in done
    assert "inputRequests" not in done


def test_modern_sampling_and_roots(modern: Modern) -> None:
    params = {"name": "ask_model", "arguments": {"prompt": "Hi"}}
    first = modern.result("tools/call", params)
    requests = assert_input_required(first)
    assert requests["q0"]["method"] == "sampling/createMessage"
    assert requests["q0"]["params"]["maxTokens"] == 50
    done = modern.result("tools/call", retry(params, first["requestState"], {"q0": SAMPLED}))
    assert text_of(done) == "Hello"
    roots = {"name": "ask_roots", "arguments": {}}
    first = modern.result("tools/call", roots)
    assert assert_input_required(first) == {"q0": {"method": "roots/list", "params": {}}}
    done = modern.result("tools/call", retry(roots, first["requestState"], {"q0": ROOTS}))
    assert text_of(done) == "file:///a,file:///b"


def test_modern_two_rounds_carry_the_first_answer(modern: Modern) -> None:
    params = {"name": "ask_twice", "arguments": {}}
    first = modern.result("tools/call", params)
    assert set(assert_input_required(first)) == {"q0"}
    answer_one = {"action": "accept", "content": {"name": "One"}}
    second = modern.result("tools/call", retry(params, first["requestState"], {"q0": answer_one}))
    requests = assert_input_required(second)
    assert set(requests) == {"q1"}
    assert requests["q1"]["params"]["message"] == "Second name?"
    assert second["requestState"] != first["requestState"]
    answer_two = {"action": "accept", "content": {"name": "Two"}}
    done = modern.result("tools/call", retry(params, second["requestState"], {"q1": answer_two}))
    assert text_of(done) == "accept:One+accept:Two"


def test_modern_ask_three_is_one_round(modern: Modern) -> None:
    params = {"name": "ask_three", "arguments": {}}
    first = modern.result("tools/call", params)
    requests = assert_input_required(first)
    assert {key: request["method"] for key, request in requests.items()} == {
        "name": "elicitation/create",
        "q1": "sampling/createMessage",
        "q2": "roots/list",
    }
    answers = {"name": ACCEPT_ADA, "q1": SAMPLED, "q2": ROOTS}
    done = modern.result("tools/call", retry(params, first["requestState"], answers))
    assert text_of(done) == "accept:Ada|Hello|file:///a,file:///b"


def test_modern_partial_answers_ask_again_for_the_rest(modern: Modern) -> None:
    params = {"name": "ask_three", "arguments": {}}
    first = modern.result("tools/call", params)
    second = modern.result("tools/call", retry(params, first["requestState"], {"q1": SAMPLED}))
    assert set(assert_input_required(second)) == {"name", "q2"}
    answers = {"name": ACCEPT_ADA, "q2": ROOTS}
    done = modern.result("tools/call", retry(params, second["requestState"], answers))
    assert text_of(done) == "accept:Ada|Hello|file:///a,file:///b"


def _tamper_body(state: str) -> str:
    body, mac = state.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[raw.index(b'"e":') + 4] ^= 1  # one digit of the expiry
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=") + "." + mac


def _tamper_mac(state: str) -> str:
    body, mac = state.split(".")
    flipped = "A" if mac[0] != "A" else "B"
    return body + "." + flipped + mac[1:]


@pytest.mark.parametrize(
    "forge",
    [_tamper_body, _tamper_mac, lambda state: state[:-3], lambda state: "garbage", lambda s: 7],
)
def test_modern_tampered_request_state_is_refused(modern: Modern, forge: Any) -> None:
    first = modern.result("tools/call", ASK_NAME)
    error = modern.send("tools/call", retry(ASK_NAME, forge(first["requestState"]), {}))
    assert error["error"]["code"] == -32602


def test_modern_replayed_request_state_is_refused(modern: Modern) -> None:
    first = modern.result("tools/call", ASK_NAME)
    again = retry(ASK_NAME, first["requestState"], {"q0": ACCEPT_ADA})
    assert text_of(modern.result("tools/call", again)) == "accept:Ada"
    replay = modern.send("tools/call", again)
    assert replay["error"]["code"] == -32602
    assert "already used" in replay["error"]["message"]


def test_modern_request_state_is_bound_to_its_request(modern: Modern) -> None:
    params = {"name": "ask_model", "arguments": {"prompt": "one"}}
    first = modern.result("tools/call", params)
    state = first["requestState"]
    other_arguments = {"name": "ask_model", "arguments": {"prompt": "two"}}
    error = modern.send("tools/call", retry(other_arguments, state, {"q0": SAMPLED}))
    assert error["error"]["code"] == -32602
    other_tool = {"name": "ask_twice", "arguments": {}}
    assert modern.send("tools/call", retry(other_tool, state, {}))["error"]["code"] == -32602
    other_method = {"uri": "fixture://asks/x"}
    assert modern.send("resources/read", retry(other_method, state, {}))["error"]["code"] == -32602


@pytest.mark.parametrize(
    ("tool", "arguments", "declared", "missing"),
    [
        ("ask_name", {}, {}, "elicitation"),
        ("ask_model", {"prompt": "x"}, {"elicitation": {}, "roots": {}}, "sampling"),
        ("ask_roots", {}, {"elicitation": {}, "sampling": {}}, "roots"),
    ],
)
def test_modern_undeclared_capability_is_32021_and_400(
    modern: Modern, tool: str, arguments: dict[str, Any], declared: dict[str, Any], missing: str
) -> None:
    response = modern.post("tools/call", {"name": tool, "arguments": arguments}, declared)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32021
    assert error["data"]["requiredCapabilities"] == {missing: {}}


def test_modern_resource_read_asks_with_input_required(modern: Modern) -> None:
    params = {"uri": "fixture://asks/rust"}
    first = modern.result("resources/read", params)
    requests = assert_input_required(first)
    assert requests["about"]["method"] == "elicitation/create"
    done = modern.result(
        "resources/read", retry(params, first["requestState"], {"about": ACCEPT_ADA})
    )
    assert done["resultType"] == "complete"
    assert done["contents"] == [{"uri": "fixture://asks/rust", "text": "rust: accept:Ada"}]
    assert "ttlMs" in done


def test_modern_prompt_get_asks_with_input_required(modern: Modern) -> None:
    params = {"name": "interview", "arguments": {"topic": "tea"}}
    first = modern.result("prompts/get", params)
    assert set(assert_input_required(first)) == {"view"}
    done = modern.result("prompts/get", retry(params, first["requestState"], {"view": ACCEPT_ADA}))
    assert done["resultType"] == "complete"
    assert done["messages"][0]["content"]["text"] == "Interview about tea: accept:Ada"


def test_modern_resource_read_without_capability_is_32021(modern: Modern) -> None:
    response = modern.post("resources/read", {"uri": "fixture://asks/rust"}, {})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32021
    assert error["data"]["requiredCapabilities"] == {"elicitation": {}}


@pytest.mark.parametrize(
    "method",
    ["tools/list", "resources/list", "resources/templates/list", "prompts/list", "server/discover"],
)
def test_modern_lists_are_never_input_required(modern: Modern, method: str) -> None:
    result = modern.result(method, {})
    assert result["resultType"] == "complete"
    assert "inputRequests" not in result
    assert "requestState" not in result


def tools_config(tmp_path: Path, markers: Path, line: str) -> Path:
    """The test daemon's config with one more ``[tools]`` setting."""
    config = daemon_config(tmp_path / "mcpd.toml", markers)
    config.write_text(config.read_text().replace("page_size = 4", f"page_size = 4\n{line}"))
    return config


def test_modern_expired_request_state_is_refused(
    tmp_path: Path, plugin_site: Path, markers: Path, http: httpx.Client
) -> None:
    """A daemon whose states expire a microsecond after they are made: any retry is late."""
    config = tools_config(tmp_path, markers, "input_timeout_seconds = 0.000001")
    daemon = Daemon.start(config, pythonpath=plugin_site)
    try:
        client = Modern(http, daemon.url)
        first = client.result("tools/call", ASK_NAME)
        late = client.send("tools/call", retry(ASK_NAME, first["requestState"], {"q0": ACCEPT_ADA}))
        assert late["error"]["code"] == -32602
        assert "expired" in late["error"]["message"]
    finally:
        assert daemon.stop() == 0


def test_legacy_unanswered_question_is_withdrawn_and_the_tool_told(
    tmp_path: Path, plugin_site: Path, markers: Path
) -> None:
    """A daemon that waits a microsecond for answers: every question goes unanswered."""
    config = tools_config(tmp_path, markers, "input_timeout_seconds = 0.000001")
    daemon = Daemon.start(config, pythonpath=plugin_site)
    asker = Asker(daemon, ALL_CAPABILITIES)
    try:
        with asker.call("ask_name") as reader:
            question = reader.until(is_method("elicitation/create"))
            withdrawn = reader.until(is_method("notifications/cancelled"))
            final = reader.until(is_response("call-1"))
        assert withdrawn["params"]["requestId"] == question["id"]
        assert final["result"]["isError"] is True
        assert "did not answer elicitation/create" in text_of(final["result"])
    finally:
        asker.close()
        assert daemon.stop() == 0


def test_a_configured_state_key_keeps_input_rounds_valid_across_a_restart(
    tmp_path: Path, plugin_site: Path, markers: Path, http: httpx.Client
) -> None:
    key = 'request_state_key = { "$env" = "MCPD_TEST_STATE_KEY" }'
    config = tools_config(tmp_path, markers, key)
    env = {"MCPD_TEST_STATE_KEY": "k" * 40}

    def first_round() -> str:
        daemon = Daemon.start(config, pythonpath=plugin_site, env=env)
        try:
            state = Modern(http, daemon.url).result("tools/call", ASK_NAME)["requestState"]
        finally:
            assert daemon.stop() == 0
        assert isinstance(state, str)
        return state

    def second_round(state: str, environ: dict[str, str]) -> dict[str, Any]:
        daemon = Daemon.start(config, pythonpath=plugin_site, env=environ)
        try:
            params = retry(ASK_NAME, state, {"q0": ACCEPT_ADA})
            return Modern(http, daemon.url).send("tools/call", params)
        finally:
            assert daemon.stop() == 0

    # The same key in the next process: the round the first one started completes.
    finished = second_round(first_round(), env)
    assert text_of(finished["result"]) == "accept:Ada"
    # Another key: the state is refused as not sealed by this daemon.
    refused = second_round(first_round(), {"MCPD_TEST_STATE_KEY": "x" * 40})
    assert refused["error"]["code"] == -32602
    assert "integrity" in refused["error"]["message"]
