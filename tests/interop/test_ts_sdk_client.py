"""Interoperability with the official MCP TypeScript SDK client, in each way it connects.

``ts/client.mjs`` (the pinned ``@modelcontextprotocol/client``) runs one whole session per
mode and reports what it saw; these tests check it against the daemon's fixture plugin:

- ``legacy``: the client's default, a plain ``initialize`` (2025-11-25) with a session;
- ``auto``: ``server/discover`` first, which a 2026 server answers: 2026-07-28, no session;
- ``2026-07-28``: the version pinned, no fallback;
- ``sse``: the deprecated HTTP+SSE transport (``/sse`` + ``/messages``), initialize.

On a session the tools' questions (elicitation, sampling, roots) reach the client as
server-to-client requests; on 2026-07-28 as ``input_required`` results the SDK fulfils by
itself and retries. Either way the same handlers answer and the answers reach the tool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support.daemon import Daemon

pytestmark = pytest.mark.interop

MODES = ["legacy", "auto", "2026-07-28", "sse"]
# mode -> (negotiated protocol version, era as the SDK names it, whether it holds a session id)
EXPECTED = {
    "legacy": ("2025-11-25", "legacy", True),
    "auto": ("2026-07-28", "modern", False),
    "2026-07-28": ("2026-07-28", "modern", False),
    "sse": ("2025-11-25", "legacy", False),  # its session is the SSE connection, no header
}
PAGE_SIZE = 4  # the test daemon's [tools] page_size
FIXTURE_TOOLS = {"echo", "add", "fail", "ask_name", "ask_model", "ask_roots", "ask_three"}
SAMPLED = "hello from the TypeScript client"  # what client.mjs's sampling handler answers
ROOT = "file:///work/ts"  # the one root client.mjs's roots handler lists
NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}

Run = Callable[[str], dict[str, Any]]


def step(seen: dict[str, Any], name: str) -> Any:
    """The result of one of client.mjs's steps, failing with its error if it had one."""
    assert name in seen, f"{seen['mode']}: no {name!r} step in the client's report: {seen}"
    result = seen[name]
    if isinstance(result, dict) and "error" in result:
        pytest.fail(f"{seen['mode']}: {name} failed in the TypeScript client: {result}")
    return result


def logged_session(daemon: Daemon, mode: str) -> str:
    """The (shortened) id the daemon logs for the one session client.mjs opened in ``mode``."""
    client = f"mcpd-interop-ts-{mode}"
    first = daemon.wait_for("session.created", lambda e: e.get("client") == client)
    created = [e for e in daemon.events("session.created") if e.get("client") == client]
    assert created == [first]
    assert (first.get("transport") == "http+sse") is (mode == "sse"), first
    session: str = first["session"]
    return session


def text_of(result: dict[str, Any]) -> str:
    content = result["content"]
    assert len(content) == 1, content
    assert content[0]["type"] == "text", content
    text: str = content[0]["text"]
    return text


@pytest.mark.parametrize("mode", MODES)
def test_connects_in_the_expected_era(ts_run: Run, mode: str) -> None:
    seen = ts_run(mode)
    assert seen["sdk"] == "2.4.0"
    connected = step(seen, "connect")
    version, era, has_session = EXPECTED[mode]
    assert connected["protocolVersion"] == version
    assert connected["era"] == era
    assert (connected["sessionId"] is not None) is has_session, connected
    assert connected["serverInfo"]["name"] == "mcpd"
    assert {"tools", "resources", "prompts", "completions"} <= set(connected["capabilities"])


@pytest.mark.parametrize("mode", MODES)
def test_tools_list_and_call(ts_run: Run, mode: str) -> None:
    seen = ts_run(mode)
    tools = step(seen, "tools")
    pages = tools["pages"]
    assert len(pages) > 1, pages
    assert all(1 <= len(page) <= PAGE_SIZE for page in pages), pages
    assert all(len(page) == PAGE_SIZE for page in pages[:-1]), pages
    walked = [name for page in pages for name in page]
    assert tools["names"] == walked  # the SDK's own walk saw the same pages
    assert len(walked) == len(set(walked))
    assert set(walked) >= FIXTURE_TOOLS

    echo = step(seen, "echo")
    assert text_of(echo) == "hi from ts"
    assert not echo.get("isError")
    add = step(seen, "add")
    assert add["structuredContent"] == {"result": 7}
    assert not add.get("isError")
    fail = step(seen, "fail")
    assert fail["isError"] is True
    assert text_of(fail) == "nope"


@pytest.mark.parametrize("mode", MODES)
def test_resources_prompts_and_completion(ts_run: Run, mode: str) -> None:
    seen = ts_run(mode)
    uris = step(seen, "resources")["uris"]
    assert {"fixture://text", "fixture://binary", "fixture://numbers/5"} <= set(uris)
    assert len(uris) == len(set(uris))

    read = step(seen, "read")
    assert read["contents"] == [
        {"uri": "fixture://text", "mimeType": "text/plain", "text": "hello from the fixture"}
    ]
    prompt = step(seen, "prompt")
    assert prompt["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "Greet Ada in a warm way."}}
    ]
    completion = step(seen, "complete")["completion"]
    assert completion["values"] == ["formal", "friendly", "funny"]


@pytest.mark.parametrize("mode", MODES)
def test_tools_ask_the_client(ts_run: Run, interop_daemon: Daemon, mode: str) -> None:
    """Elicitation, sampling and roots answered by the client's handlers, in every mode."""
    seen = ts_run(mode)
    assert text_of(step(seen, "ask_name")) == "accept:Grace"
    assert text_of(step(seen, "ask_model")) == SAMPLED
    assert text_of(step(seen, "ask_roots")) == ROOT
    assert text_of(step(seen, "ask_three")) == f"accept:Grace|{SAMPLED}|{ROOT}"

    # What the handlers were asked: once by the single tools, once more by ask_three.
    asked = seen["asked"]
    assert (
        asked["elicitation"]
        == [{"message": "What is your name?", "requestedSchema": NAME_SCHEMA}] * 2
    )
    first, second = asked["sampling"]
    assert first["messages"] == [{"role": "user", "content": {"type": "text", "text": "Say hello"}}]
    assert first["maxTokens"] == 50
    assert first["systemPrompt"] == "Be brief."
    assert second["maxTokens"] == 10
    assert asked["roots"] == 2

    # How the questions travelled: a 2026 call first ends input_required, and the SDK's retry
    # carrying the answers completes it; on a session the call waits for the answers instead.
    def ask_three(outcome: str, session: str | None) -> Callable[[dict[str, Any]], bool]:
        return lambda e: (
            (e.get("tool"), e["outcome"], e.get("session"))
            == (
                "ask_three",
                outcome,
                session,
            )
        )

    if EXPECTED[mode][1] == "modern":
        interop_daemon.wait_for("tool.call", ask_three("input_required", None))
        interop_daemon.wait_for("audit", ask_three("ok", None))  # a success: its audit line
    else:
        session = logged_session(interop_daemon, mode)
        interop_daemon.wait_for("audit", ask_three("ok", session))
        calls = [e for e in interop_daemon.events("audit") if e.get("session") == session]
        assert [e["outcome"] for e in calls if e.get("tool") == "ask_three"] == ["ok"], calls


@pytest.mark.parametrize("mode", MODES)
def test_closes_cleanly(ts_run: Run, interop_daemon: Daemon, mode: str) -> None:
    seen = ts_run(mode)
    closed = step(seen, "close")
    assert seen["transportErrors"] == []  # none before closing
    # Closing may abort a POST of a handler's answer whose 202 is still on its way although the
    # daemon already acted on it (the tool's result came first): the client's race, harmless.
    assert all(e.startswith("AbortError:") for e in seen["closeErrors"]), seen["closeErrors"]
    _, _, has_session = EXPECTED[mode]
    assert closed["terminatedSession"] is has_session
    if EXPECTED[mode][1] == "modern":  # 2026-07-28 is stateless: no session at all
        client = f"mcpd-interop-ts-{mode}"
        assert not [
            e for e in interop_daemon.events("session.created") if e.get("client") == client
        ]
        return
    session = logged_session(interop_daemon, mode)
    if mode == "legacy":
        assert seen["connect"]["sessionId"].startswith(session)
        reason = "session deleted by the client"  # the SDK's terminateSession(): DELETE
    else:
        reason = "client disconnected"  # over HTTP+SSE the connection is the session
    ended = interop_daemon.wait_for("session.ended", lambda e: e.get("session") == session)
    assert ended["reason"] == reason
