"""Plugin code is untrusted: whatever a tool, resource, prompt or completion provider raises or
returns ends that one call, with a clean answer, and every other client keeps being served."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import Legacy, messages_of, parse_sse
from support.daemon import Daemon, daemon_config
from support.eras import EraClient
from support.plugins import install_plugins

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "plugins"
KINDS = ["keyboard_interrupt", "system_exit", "generator_exit", "custom", "group"]
ERROR_TYPES = {
    "keyboard_interrupt": "KeyboardInterrupt",
    "system_exit": "SystemExit",
    "generator_exit": "GeneratorExit",
    "custom": "mcpd_fixture_hostile.Custom",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon serving the hostile plugin beside the well-behaved fixture tools."""
    site = tmp_path_factory.mktemp("hostile-site")
    install_plugins(
        site,
        FIXTURES / "mcpd-fixture-tools",
        FIXTURES / "mcpd-fixture-hostile",
        ROOT / "plugins" / "mcpd-example",
    )
    markers = tmp_path_factory.mktemp("hostile-markers")
    extra = f'[plugin.hostile]\nmarker_dir = "{markers}"\n'
    config = daemon_config(tmp_path_factory.mktemp("hostile-cfg") / "mcpd.toml", markers, extra)
    running = Daemon.start(config, pythonpath=site)
    yield running
    assert running.stop() == 0


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def _alive(daemon: Daemon, http: httpx.Client) -> None:
    """The daemon still serves a new client."""
    assert daemon.process.poll() is None
    assert Legacy(http, daemon.url).initialize().call("echo", {"text": "still here"}) == {
        "content": [{"type": "text", "text": "still here"}]
    }


def _crash_events(daemon: Daemon, tool: str) -> list[dict[str, Any]]:
    return [e for e in daemon.events("tool.crashed") if e.get("tool") == tool]


@pytest.mark.parametrize("modern", [False, True], ids=["legacy", "2026"])
@pytest.mark.parametrize("tool", ["raise_base", "raise_base_sync"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_base_exception_ends_only_its_call(
    hostile: Daemon, http: httpx.Client, kind: str, tool: str, modern: bool
) -> None:
    before = len(_crash_events(hostile, tool))
    client = EraClient(http, hostile.url, modern=modern)
    result = client.result("tools/call", {"name": tool, "arguments": {"kind": kind}})
    assert result["isError"] is True
    assert result["content"][0]["text"] == f"tool {tool} failed with an internal error"
    hostile.wait_for("tool.crashed", lambda _: len(_crash_events(hostile, tool)) > before)
    crashed = _crash_events(hostile, tool)[before]
    assert crashed["plugin"] == "hostile"
    assert crashed["distribution"] == "mcpd-fixture-hostile"
    assert crashed["level"] == "error"
    expected = ERROR_TYPES.get(kind, "BaseExceptionGroup" if tool == "raise_base" else "")
    assert crashed["error_type"] == (expected or "SystemExit")
    assert "mcpd_fixture_hostile.py:" in crashed["location"]
    _alive(hostile, http)


def test_a_bystander_session_is_served_while_a_tool_misbehaves(
    hostile: Daemon, http: httpx.Client
) -> None:
    bystander = Legacy(http, hostile.url).initialize()
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "slow",
            "arguments": {"seconds": 1.0, "tag": f"bystander-{uuid.uuid4().hex[:6]}"},
            "_meta": {"progressToken": "p"},
        },
    }
    with http.stream("POST", hostile.url, json=body, headers=bystander.headers()) as response:
        lines = response.iter_lines()
        for line in lines:  # the bystander's call is running ...
            if "notifications/progress" in line:
                break
        # ... while another session's tools raise every kind of BaseException
        other = Legacy(http, hostile.url).initialize()
        for kind in KINDS:
            assert other.call("raise_base", {"kind": kind})["isError"] is True
        rest = "\n".join(lines)
    final = parse_sse(rest)[-1]
    assert final["id"] == 7
    assert final["result"]["content"][0]["text"] == "slept 1.0s"


@pytest.mark.parametrize("modern", [False, True], ids=["legacy", "2026"])
def test_resource_prompt_and_completion_failures_are_internal_errors(
    hostile: Daemon, http: httpx.Client, modern: bool
) -> None:
    client = EraClient(http, hostile.url, modern=modern)
    read = client.error("resources/read", {"uri": "hostile://explode"})
    assert read["code"] == -32603
    got = client.error("prompts/get", {"name": "explode", "arguments": {"topic": "x"}})
    assert got["code"] == -32603
    completion = client.error(
        "completion/complete",
        {
            "ref": {"type": "ref/prompt", "name": "explode"},
            "argument": {"name": "topic", "value": ""},
        },
    )
    assert completion["code"] == -32603
    for event, field, key in (
        ("handler.crashed", "resource", "hostile://explode"),
        ("handler.crashed", "prompt", "explode"),
        ("completion.crashed", "prompt", "explode"),
    ):
        logged = hostile.wait_for(event, lambda e, f=field, k=key: e.get(f) == k)
        assert logged["distribution"] == "mcpd-fixture-hostile"
    _alive(hostile, http)


def test_a_validator_in_plugin_code_is_contained(hostile: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, hostile.url).initialize()
    assert client.call("picky", {"item": {"value": 2}})["structuredContent"] == {"result": 2}
    failed = client.call("picky", {"item": {"value": 13}})
    assert failed["isError"] is True
    assert hostile.wait_for("tool.crashed", lambda e: e.get("tool") == "picky")
    _alive(hostile, http)


def test_exception_text_is_logged_only_when_arguments_may_be(
    hostile: Daemon, http: httpx.Client
) -> None:
    secret = f"hunter2-{uuid.uuid4().hex}"
    result = Legacy(http, hostile.url).initialize().call("leak_secret", {"secret": secret})
    assert result["isError"] is True
    assert secret not in json.dumps(result)
    logged = hostile.wait_for("tool.crashed", lambda e: e.get("tool") == "leak_secret")
    assert logged["error_type"] == "ValueError"
    assert "error" not in logged
    assert all(secret not in line for line in hostile.raw)


@pytest.mark.parametrize("stream_first", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("bad", ["surrogate", "object", "deep"])
def test_a_result_json_cannot_carry_is_a_clean_error(
    hostile: Daemon, http: httpx.Client, bad: str, stream_first: bool
) -> None:
    client = Legacy(http, hostile.url).initialize()
    response = client.request("tools/call", _unencodable(bad, stream_first))
    assert response.status_code == 200
    kind = response.headers["content-type"]
    assert kind.startswith("text/event-stream" if stream_first else "application/json")
    final = messages_of(response)[-1]
    assert final["result"]["isError"] is True
    assert "unencodable" in final["result"]["content"][0]["text"]
    _alive(hostile, http)


def _unencodable(bad: str, stream_first: bool) -> dict[str, Any]:
    """tools/call params of the hostile ``unencodable`` tool (with a progress token, so that
    ``stream_first`` switches the response to SSE before the result)."""
    return {
        "name": "unencodable",
        "arguments": {"bad": bad, "stream_first": stream_first},
        "_meta": {"progressToken": "p"},
    }


def test_integers_beyond_64_bits_are_sent_exactly(hostile: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, hostile.url).initialize()
    for stream_first in (False, True):
        response = client.request("tools/call", _unencodable("big_int", stream_first))
        final = messages_of(response)[-1]
        assert "isError" not in final["result"], final
        assert final["result"]["content"][0]["text"] == "123456789012345678901234567890"
    # The example plugin's json_query, which used to take the daemon down this way.
    document = "[123456789012345678901234567890]"
    queried = client.call("json_query", {"document": document, "pointer": "/0"})
    assert "isError" not in queried
    assert "123456789012345678901234567890" in queried["content"][0]["text"]


def test_a_notification_json_cannot_carry_fails_only_its_tool(
    hostile: Daemon, http: httpx.Client
) -> None:
    client = Legacy(http, hostile.url).initialize()
    assert client.rpc("logging/setLevel", {"level": "debug"})["result"] == {}
    result = client.call("log_unencodable")
    assert result["isError"] is True
    _alive(hostile, http)


def test_a_batch_answer_queued_before_the_stream_started_is_delivered(
    hostile: Daemon, http: httpx.Client
) -> None:
    client = Legacy(http, hostile.url, version="2025-03-26").initialize()
    batch = [
        {"jsonrpc": "2.0", "id": "ping", "method": "ping"},
        {
            "jsonrpc": "2.0",
            "id": "stream",
            "method": "tools/call",
            "params": {
                "name": "slow",
                "arguments": {"seconds": 0.2, "tag": "batch"},
                "_meta": {"progressToken": 1},
            },
        },
    ]
    response = client.post(batch)
    assert response.headers["content-type"].startswith("text/event-stream")
    answers = [m for m in messages_of(response) if "id" in m and "method" not in m]
    assert sorted(a["id"] for a in answers) == ["ping", "stream"]
    assert next(a for a in answers if a["id"] == "ping")["result"] == {}


def test_deeply_nested_client_info_is_logged_safely(hostile: Daemon, http: httpx.Client) -> None:
    name: Any = "bottom"
    for _ in range(400):
        name = {"n": name}
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": name, "version": "0"},
    }
    body = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    response = http.post(hostile.url, json=body, headers=headers)
    assert response.status_code < 500
    _alive(hostile, http)
