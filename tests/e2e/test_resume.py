"""Resumable session streams: event ids, priming, a dropped connection that keeps its request
running for the resume window, and a GET with Last-Event-ID that delivers exactly what was
missed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import Legacy
from support.daemon import Daemon, daemon_config, wait_for_file, write_config


@pytest.fixture(scope="module")
def resumable(
    tmp_path_factory: pytest.TempPathFactory, plugin_site: Path, markers: Path
) -> Iterator[Daemon]:
    path = tmp_path_factory.mktemp("resume") / "mcpd.toml"
    text = daemon_config(path, markers).read_text()
    text = text.replace("resume_window_seconds = 0", "resume_window_seconds = 2")
    running = Daemon.start(write_config(path, text), pythonpath=plugin_site)
    yield running
    assert running.stop() == 0


class RawEvents:
    """SSE events with their ids, read from an open response."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.iter_lines()

    def next(self) -> dict[str, Any] | None:
        event: dict[str, Any] = {}
        for line in self._lines:
            if line == "":
                if "data" in event or "id" in event:
                    return event
                event = {}  # a comment (keep-alive) or a bare retry field
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                event["data"] = event.get("data", "") + value
            else:
                event[field] = value
        return None


def message(event: dict[str, Any]) -> dict[str, Any]:
    return json.loads(event["data"])  # type: ignore[no-any-return]


@contextmanager
def post_stream(session: Legacy, body: dict[str, Any]) -> Iterator[RawEvents]:
    with session.http.stream("POST", session.url, json=body, headers=session.headers()) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield RawEvents(response)


def slow_call(tag: str, seconds: float, request_id: int = 7) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": "slow",
            "arguments": {"seconds": seconds, "tag": tag},
            "_meta": {"progressToken": "t"},
        },
    }


def test_priming_event_then_numbered_events(resumable: Daemon, http: httpx.Client) -> None:
    session = Legacy(http, resumable.url).initialize()
    with post_stream(session, slow_call(f"prime-{uuid.uuid4().hex[:8]}", 0.3)) as events:
        priming = events.next()
        assert priming is not None
        assert priming["data"] == ""
        assert priming["retry"].isdigit()
        stream, _, first = priming["id"].partition(".")
        assert first == "0"
        numbers, last = [], None
        while (event := events.next()) is not None:
            key, _, number = event["id"].partition(".")
            assert key == stream
            numbers.append(int(number))
            last = event
    assert numbers == list(range(1, len(numbers) + 1))
    assert last is not None
    assert message(last)["id"] == 7  # the response ends the stream, with an id like the rest


def test_older_sessions_get_ids_but_no_priming(resumable: Daemon, http: httpx.Client) -> None:
    session = Legacy(http, resumable.url, version="2025-06-18").initialize()
    with post_stream(session, slow_call(f"old-{uuid.uuid4().hex[:8]}", 0.2)) as events:
        first = events.next()
        assert first is not None
        assert first["data"] != ""
        assert first["id"].endswith(".1")


def test_resume_delivers_everything_missed_exactly_once(
    resumable: Daemon, http: httpx.Client, markers: Path
) -> None:
    tag = f"resume-{uuid.uuid4().hex[:8]}"
    session = Legacy(http, resumable.url).initialize()
    seen: list[float] = []
    with post_stream(session, slow_call(tag, 1.0)) as events:
        events.next()  # priming
        for _ in range(3):
            event = events.next()
            assert event is not None
            seen.append(message(event)["params"]["progress"])
        last_id = event["id"]
    # The connection is gone; the call goes on. Resume where we left off.
    headers = session.headers(**{"accept": "text/event-stream", "last-event-id": last_id})
    final = None
    with http.stream("GET", session.url, headers=headers) as response:
        assert response.status_code == 200
        resumed = RawEvents(response)
        while (event := resumed.next()) is not None:
            payload = message(event)
            if payload.get("method") == "notifications/progress":
                seen.append(payload["params"]["progress"])
            elif payload.get("id") == 7:
                final = payload
    assert final is not None
    assert final["result"]["content"][0]["text"] == "slept 1.0s"
    assert seen == list(range(1, len(seen) + 1))  # nothing lost, nothing twice
    assert wait_for_file(markers / f"{tag}.json")["outcome"] == "completed"


def test_a_stream_nobody_resumes_is_cancelled_after_the_window(
    resumable: Daemon, http: httpx.Client, markers: Path
) -> None:
    tag = f"abandon-{uuid.uuid4().hex[:8]}"
    session = Legacy(http, resumable.url).initialize()
    with post_stream(session, slow_call(tag, 120)) as events:
        assert events.next() is not None  # the priming event: the call is running
    marker = wait_for_file(markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"
    assert "client disconnected" in marker["reason"]
    assert resumable.wait_for("stream.abandoned")


def test_unknown_stream_or_foreign_ids_are_gone(resumable: Daemon, http: httpx.Client) -> None:
    session = Legacy(http, resumable.url).initialize()
    for last in ("p999.3", "not-an-id"):
        headers = session.headers(**{"accept": "text/event-stream", "last-event-id": last})
        response = http.get(session.url, headers=headers)
        assert response.status_code == 410
        assert response.json()["error"]["code"] == -32600


def test_get_stream_resumes_after_its_last_event(resumable: Daemon, http: httpx.Client) -> None:
    session = Legacy(http, resumable.url).initialize()
    uri = f"fixture://notes/{uuid.uuid4().hex[:8]}"
    assert "result" in session.rpc("resources/subscribe", {"uri": uri})
    get_headers = session.headers(accept="text/event-stream")
    with http.stream("GET", session.url, headers=get_headers) as response:
        events = RawEvents(response)
        priming = events.next()
        assert priming is not None
        assert priming["id"] == "g.0"
        session.call("touch", {"uri": uri})
        first = events.next()
        assert first is not None
        assert first["id"] == "g.1"
        assert message(first)["params"] == {"uri": uri}
    # Two updates while no GET stream is open, then resume after g.1.
    session.call("touch", {"uri": uri})
    session.call("touch", {"uri": uri})
    headers = session.headers(**{"accept": "text/event-stream", "last-event-id": "g.1"})
    with http.stream("GET", session.url, headers=headers) as response:
        events = RawEvents(response)
        ids = []
        for _ in range(2):
            event = events.next()
            assert event is not None
            assert message(event)["method"] == "notifications/resources/updated"
            ids.append(event["id"])
    assert ids == ["g.2", "g.3"]


def test_without_a_window_last_event_id_is_ignored(daemon: Daemon, http: httpx.Client) -> None:
    session = Legacy(http, daemon.url).initialize()
    headers = session.headers(**{"accept": "text/event-stream", "last-event-id": "p1.1"})
    with http.stream("GET", session.url, headers=headers) as response:
        assert response.status_code == 200  # a plain GET stream


def test_keep_alives_give_sse_parsers_no_empty_events(
    resumable: Daemon, http: httpx.Client
) -> None:
    """httpx-sse (the mcp 1.x client's parser) turned a keep-alive after an event with an id
    into an empty-data event, which mcp 1.9.4 logged as a parse error on every keep-alive."""
    from httpx_sse import EventSource

    session = Legacy(http, resumable.url, version="2025-06-18").initialize()
    body = slow_call(f"keepalive-{uuid.uuid4().hex[:8]}", 1.6)  # keep-alives every 0.5 s
    with session.http.stream("POST", session.url, json=body, headers=session.headers()) as r:
        events = list(EventSource(r).iter_sse())
    assert events, "the call streamed nothing"
    assert all(event.data for event in events), [event.id for event in events if not event.data]
    assert json.loads(events[-1].data)["result"]["content"][0]["text"] == "slept 1.6s"
