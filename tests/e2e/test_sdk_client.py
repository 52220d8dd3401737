"""Interoperability with the official MCP Python SDK client (``mcp`` 2.3.0), in every mode.

``legacy`` speaks the initialize handshake (2025-11-25), ``auto`` probes ``server/discover``
and adopts 2026-07-28, and a pinned version skips the probe. The SDK runs on asyncio (its
default anyio backend), inside these sync tests.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import (
    CreateMessageResult,
    ElicitResult,
    ListRootsResult,
    PromptReference,
    Root,
    TextContent,
)
from pydantic import FileUrl
from support.daemon import Daemon, wait_for_file

MODES = ["legacy", "auto", "2026-07-28"]
pytestmark = pytest.mark.filterwarnings(
    # The SDK flags the logging capability as deprecated in 2026-07-28; we test it anyway.
    "ignore::mcp.shared.exceptions.MCPDeprecationWarning"
)


def run(coroutine: Any, *args: Any) -> Any:
    return anyio.run(coroutine, *args, backend="asyncio")


@pytest.mark.parametrize("mode", MODES)
def test_tools_round_trip(daemon: Daemon, mode: str) -> None:
    async def session() -> dict[str, Any]:
        async with Client(daemon.url, mode=mode) as client:
            names: list[str] = []
            cursor = None
            while True:  # the test daemon pages tools 4 at a time
                page = await client.list_tools(cursor=cursor)
                names += [tool.name for tool in page.tools]
                if (cursor := page.next_cursor) is None:
                    break
            return {
                "version": client.protocol_version,
                "names": names,
                "echo": await client.call_tool("echo", {"text": "hi"}),
                "add": await client.call_tool("add", {"a": 2, "b": 5}),
                "fail": await client.call_tool("fail", {"message": "nope"}),
                "picture": await client.call_tool("picture", {}),
            }

    seen = run(session)
    assert seen["version"] == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert {"echo", "add", "slow", "countdown"} <= set(seen["names"])
    assert len(seen["names"]) == len(set(seen["names"]))
    assert seen["echo"].content[0].text == "hi"
    assert seen["add"].structured_content == {"result": 7}
    assert seen["fail"].is_error is True
    assert seen["picture"].content[0].type == "image"


@pytest.mark.parametrize("mode", MODES)
def test_progress_and_logs(daemon: Daemon, mode: str) -> None:
    progress: list[float] = []
    levels: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def on_log(params: Any) -> None:
        levels.append(params.level)

    async def session() -> None:
        log_level = None if mode == "legacy" else "info"
        async with Client(
            daemon.url, mode=mode, logging_callback=on_log, log_level=log_level
        ) as client:
            if mode == "legacy":
                await client.set_logging_level("info")
            tag = f"sdk-progress-{uuid.uuid4().hex[:8]}"
            await client.call_tool(
                "slow", {"seconds": 0.3, "tag": tag}, progress_callback=on_progress
            )
            await client.call_tool("chatty", {})

    run(session)
    assert len(progress) >= 2
    assert progress == sorted(progress)
    assert "info" in levels
    assert "debug" not in levels


@pytest.mark.parametrize("mode", MODES)
def test_cancelling_a_call_cancels_the_tool(daemon: Daemon, markers: Path, mode: str) -> None:
    tag = f"sdk-cancel-{uuid.uuid4().hex[:8]}"

    async def session() -> str:
        async with Client(daemon.url, mode=mode) as client:
            with anyio.move_on_after(0.5):
                await client.call_tool("slow", {"seconds": 60, "tag": tag})
            return (await client.call_tool("echo", {"text": "still fine"})).content[0].text

    assert run(session) == "still fine"
    marker = wait_for_file(markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"
    expected = "cancelled by the client" if mode == "legacy" else "client disconnected"
    assert expected in marker["reason"]


def test_closing_a_legacy_client_ends_its_session(daemon: Daemon) -> None:
    async def session() -> None:
        async with Client(daemon.url, mode="legacy") as client:
            await client.call_tool("echo", {"text": "x"})

    before = len(daemon.events("session.ended"))
    run(session)
    daemon.wait_for("session.ended", lambda e: e.get("reason") == "session deleted by the client")
    assert len(daemon.events("session.ended")) > before


@pytest.mark.parametrize("mode", MODES)
def test_resources_prompts_and_completion(daemon: Daemon, mode: str) -> None:
    async def session() -> dict[str, Any]:
        async with Client(daemon.url, mode=mode) as client:
            resources = await client.list_resources()
            templates = await client.list_resource_templates()
            return {
                "resources": [str(r.uri) for r in resources.resources],
                "templates": [t.uri_template for t in templates.resource_templates],
                "text": await client.read_resource("fixture://text"),
                "binary": await client.read_resource("fixture://binary"),
                "prompt": await client.get_prompt("greet", {"name": "Ada", "style": "warm"}),
                "completion": await client.complete(
                    PromptReference(type="ref/prompt", name="greet"),
                    {"name": "style", "value": ""},
                ),
            }

    seen = run(session)
    assert "fixture://binary" in seen["resources"]  # the first page (page_size 4)
    assert "fixture://notes/{name}" in seen["templates"]
    assert seen["text"].contents[0].text
    assert seen["binary"].contents[0].blob
    assert seen["prompt"].messages[0].content.text == "Greet Ada in a warm way."
    assert seen["completion"].completion.values


@pytest.mark.parametrize("mode", MODES)
def test_tools_ask_the_client_in_every_mode(daemon: Daemon, mode: str) -> None:
    """The same tool code: server-to-client requests on a session, input_required on 2026."""

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"name": "Grace"})

    async def on_sample(context: Any, params: Any) -> CreateMessageResult:
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text="hello"), model="m"
        )

    async def on_roots(context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=FileUrl("file:///work"), name="work")])

    async def session() -> dict[str, str]:
        async with Client(
            daemon.url,
            mode=mode,
            elicitation_callback=on_elicit,
            sampling_callback=on_sample,
            list_roots_callback=on_roots,
        ) as client:
            results = {}
            for name, arguments in [
                ("ask_name", {}),
                ("ask_model", {"prompt": "hi"}),
                ("ask_roots", {}),
                ("ask_three", {}),
                ("ask_twice", {}),
            ]:
                result = await client.call_tool(name, arguments)
                assert not result.is_error, result
                results[name] = result.content[0].text
            return results

    seen = run(session)
    assert seen["ask_name"] == "accept:Grace"
    assert seen["ask_model"] == "hello"
    assert seen["ask_roots"] == "file:///work"
    assert seen["ask_three"] == "accept:Grace|hello|file:///work"
    assert seen["ask_twice"] == "accept:Grace+accept:Grace"
