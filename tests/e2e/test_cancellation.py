"""Every cancellation path, observed through the fixture tool's ``finally`` marker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from support.client import Legacy, messages_of, modern_headers, modern_meta, parse_sse
from support.daemon import Daemon, wait_for_file


def _tag(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@contextmanager
def running(
    http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]
) -> Iterator[list[str]]:
    """POST and yield once the call is visibly running (first progress or keep-alive line).

    Leaving the block closes the response early, i.e. the client disconnects.
    """
    seen: list[str] = []
    with http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        for line in lines:
            seen.append(line)
            if "notifications/progress" in line or line.startswith(":"):
                break
        yield seen


def _slow_call(
    tag: str, seconds: float = 30, request_id: int | str = 1, tool: str = "slow"
) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": {"seconds": seconds, "tag": tag},
            "_meta": {"progressToken": tag},
        },
    }


def test_legacy_disconnect_cancels_the_call(
    daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    client = Legacy(http, daemon.url).initialize()
    tag = _tag("legacy-disconnect")
    with running(http, daemon.url, _slow_call(tag), client.headers()):
        pass
    marker = wait_for_file(markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"
    assert "client disconnected" in marker["reason"]
    assert client.rpc("ping")["result"] == {}  # the session itself lives on


def test_modern_disconnect_cancels_the_call(
    daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    tag = _tag("modern-disconnect")
    body = _slow_call(tag)
    body["params"]["_meta"] = modern_meta(progressToken=tag)
    with running(http, daemon.url, body, modern_headers("tools/call", "slow")):
        pass
    marker = wait_for_file(markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"
    assert "client disconnected" in marker["reason"]


def test_sync_tool_is_cancelled_on_disconnect(
    daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    client = Legacy(http, daemon.url).initialize()
    tag = _tag("sync-disconnect")
    with running(http, daemon.url, _slow_call(tag, tool="blocking"), client.headers()):
        pass
    marker = wait_for_file(markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"


def test_notifications_cancelled_cancels_only_that_request(daemon: Daemon, markers: Path) -> None:
    with httpx.Client(timeout=30) as one, httpx.Client(timeout=30) as two:
        client = Legacy(one, daemon.url).initialize()
        other = Legacy(two, daemon.url)
        other.session_id, other.version = client.session_id, client.version
        tag = _tag("client-cancel")
        with running(
            one, daemon.url, _slow_call(tag, request_id="call-7"), client.headers()
        ) as seen:
            cancel = other.notify(
                "notifications/cancelled", {"requestId": "call-7", "reason": "user pressed stop"}
            )
            assert cancel.status_code == 202
            marker = wait_for_file(markers / f"{tag}.json")
        assert marker["outcome"] == "cancelled"
        assert "user pressed stop" in marker["reason"]
        # No response is sent for a cancelled request.
        assert not [m for m in parse_sse("\n".join(seen)) if m.get("id") == "call-7"]
        assert other.rpc("ping")["result"] == {}


def test_delete_cancels_the_sessions_work(daemon: Daemon, markers: Path) -> None:
    with httpx.Client(timeout=30) as one, httpx.Client(timeout=30) as two:
        client = Legacy(one, daemon.url).initialize()
        tag = _tag("delete")
        with running(one, daemon.url, _slow_call(tag), client.headers()):
            assert two.delete(daemon.url, headers=client.headers()).status_code == 200
            marker = wait_for_file(markers / f"{tag}.json")
        assert marker["outcome"] == "cancelled"
        assert "session deleted" in marker["reason"]


def test_tool_timeout_is_an_error_result(daemon: Daemon, http: httpx.Client, markers: Path) -> None:
    client = Legacy(http, daemon.url).initialize()
    tag = _tag("timeout")
    result = client.call("forever", {"tag": tag})
    assert result["isError"] is True
    assert "timed out" in result["content"][0]["text"]
    marker = wait_for_file(markers / f"{tag}.json")
    assert marker["outcome"] == "cancelled"
    assert marker["reason"] == "timed out"  # ctx.cancel_reason


def test_completed_call_runs_finally_once_as_completed(
    daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    client = Legacy(http, daemon.url).initialize()
    tag = _tag("complete")
    result = client.call("slow", {"seconds": 0.05, "tag": tag})
    assert result.get("isError", False) is False
    assert wait_for_file(markers / f"{tag}.json")["outcome"] == "completed"


def test_a_cancelled_call_does_not_disturb_a_concurrent_one(daemon: Daemon, markers: Path) -> None:
    with httpx.Client(timeout=30) as one, httpx.Client(timeout=30) as two:
        client = Legacy(one, daemon.url).initialize()
        doomed, survivor = _tag("doomed"), _tag("survivor")
        with running(one, daemon.url, _slow_call(doomed), client.headers()):
            response = two.post(
                daemon.url,
                json=_slow_call(survivor, seconds=0.3, request_id=2),
                headers=client.headers(),
            )
        assert messages_of(response)[-1]["result"].get("isError", False) is False
        assert wait_for_file(markers / f"{survivor}.json")["outcome"] == "completed"
        assert wait_for_file(markers / f"{doomed}.json")["outcome"] == "cancelled"
