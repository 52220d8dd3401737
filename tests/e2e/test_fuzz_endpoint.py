"""A bounded fuzz of the MCP endpoint over real HTTP, both eras: whatever a client sends, the
answer is never a 5xx, the daemon never dies, and no request is left in flight afterwards."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.client import Legacy
from support.daemon import WAIT, Daemon

P = "io.modelcontextprotocol/"
# Tools that answer at once whatever their arguments (slow ones would only wait out the fuzz).
TOOLS = ["echo", "echo_sync", "add", "fail", "crash", "settings_echo", "picture", "no_such_tool"]
METHODS = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "notifications/initialized",
    "notifications/cancelled",
]
VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28", "1999-01-01"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def params(draw: st.DrawFn, method: str, modern: bool) -> Any:
    value: dict[str, Any] = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3))
    if method == "tools/call":
        value["name"] = draw(st.sampled_from(TOOLS) | st.text(max_size=10))
        value["arguments"] = draw(json_values)
    elif method in ("resources/read", "resources/subscribe"):
        value["uri"] = draw(st.sampled_from(["fixture://text", "fixture://notes/a"]) | st.text())
    elif method == "initialize":
        value.update(
            protocolVersion=draw(st.sampled_from(VERSIONS)),
            capabilities=draw(json_values),
            clientInfo=draw(json_values),
        )
    if modern and draw(st.booleans()):
        value["_meta"] = {
            P + "protocolVersion": draw(st.sampled_from(VERSIONS)),
            P + "clientCapabilities": draw(json_values),
            P + "clientInfo": draw(json_values),
        }
    return value if draw(st.integers(0, 9)) else draw(json_values)


@st.composite
def messages(draw: st.DrawFn, modern: bool) -> Any:
    method = draw(st.sampled_from(METHODS) | st.text(max_size=20))
    message: dict[str, Any] = {
        "jsonrpc": draw(st.sampled_from(["2.0", "2.0", "1.0"])),
        "method": method,
    }
    if draw(st.integers(0, 4)):
        message["id"] = draw(
            st.integers(-5, 2**40) | st.text(max_size=8) | st.none() | st.booleans()
        )
    if draw(st.integers(0, 4)):
        message["params"] = draw(params(method, modern))
    return message


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str], bool]:
    """A body, its headers, and whether to send it on a live legacy session."""
    modern = draw(st.booleans())
    shape = draw(st.integers(0, 9))
    if shape == 0:
        body = draw(st.binary(max_size=64))
    elif shape == 1:
        body = json.dumps(draw(st.lists(messages(modern), min_size=0, max_size=3))).encode()
    else:
        body = json.dumps(draw(messages(modern))).encode()
    headers = {
        "content-type": draw(
            st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8"])
        ),
        "accept": draw(
            st.sampled_from(["application/json, text/event-stream", "*/*", "text/html"])
        ),
    }
    if draw(st.booleans()):
        headers["mcp-protocol-version"] = draw(
            st.sampled_from(VERSIONS) | st.text(max_size=10, alphabet="0123456789-")
        )
    if modern and draw(st.booleans()):
        headers["mcp-method"] = draw(st.sampled_from(METHODS))
    return body, headers, not modern and draw(st.booleans())


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=WAIT) as client:
        yield client


@pytest.fixture(scope="module")
def session(daemon: Daemon, http: httpx.Client) -> Legacy:
    return Legacy(http, daemon.url).initialize()


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_no_input_gets_a_5xx_or_kills_the_daemon(
    daemon: Daemon, http: httpx.Client, session: Legacy, request: tuple[bytes, dict[str, str], bool]
) -> None:
    body, headers, on_session = request
    if on_session and session.session_id is not None:
        headers = {**headers, "mcp-session-id": session.session_id}
    response = http.post(daemon.url, content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text)
    kind = response.headers.get("content-type", "")
    if kind.startswith("application/json") and response.content:
        json.loads(response.content)  # whatever the answer, it is well-formed JSON
    assert daemon.process.poll() is None


def test_nothing_is_left_in_flight_after_the_fuzz(daemon: Daemon, http: httpx.Client) -> None:
    """Runs after the fuzz above (tests run in file order) on the same daemon."""
    base = daemon.binds[0]
    deadline = time.monotonic() + WAIT  # only turns a leak into a failure, never a speed test
    while (ready := http.get(base + "/readyz").json())["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready["in_flight"] == 0
    assert Legacy(http, daemon.url).initialize().call("echo", {"text": "after"})["content"]
