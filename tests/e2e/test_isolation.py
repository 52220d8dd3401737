"""``isolation="process"`` tools over real HTTP: killable worker processes, seen from outside.

``isolated_spin`` (a pip-installed fixture tool) writes its worker's pid to a marker file,
reports progress once and then blocks forever in a sync loop that never calls
``ctx.check_cancelled()``. Each test cancels it another way and proves that the worker
process is gone and the call was answered (or, on a disconnect, that nobody waits for it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import Legacy, messages_of, modern_headers, modern_meta, parse_sse
from support.daemon import WAIT, Daemon, daemon_config


def tag(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for_pid(path: Path) -> int:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()):
            return int(text)
        time.sleep(0.01)
    raise AssertionError(f"{path} was not written within {WAIT}s")


def wait_until_gone(pid: int) -> None:
    """Bounded: only turns a worker that is never killed into a failure."""
    deadline = time.monotonic() + WAIT
    while alive(pid):
        assert time.monotonic() < deadline, f"worker process {pid} is still running"
        time.sleep(0.01)


def spin_call(markers: Path, call_tag: str, request_id: int | str = 1) -> dict[str, Any]:
    arguments = {"marker_dir": str(markers), "tag": call_tag}
    params = {"name": "isolated_spin", "arguments": arguments, "_meta": {"progressToken": 5}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


@contextmanager
def spinning(
    http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]
) -> Iterator[list[str]]:
    """POST and yield once the tool's progress arrived; leaving the block disconnects."""
    seen: list[str] = []
    with http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: a collected iterator would close the stream
        for line in lines:
            seen.append(line)
            if "notifications/progress" in line:
                break
        yield seen


def cancelled_call(daemon: Daemon, request_id: int | str) -> dict[str, Any]:
    return daemon.wait_for(
        "tool.call",
        lambda e: e.get("request_id") == request_id and e.get("tool") == "isolated_spin",
    )


def test_a_disconnect_kills_the_worker(daemon: Daemon, http: httpx.Client, markers: Path) -> None:
    client = Legacy(http, daemon.url).initialize()
    call_tag = tag("iso-disconnect")
    with spinning(
        http, daemon.url, spin_call(markers, call_tag, "spin-1"), client.headers()
    ) as seen:
        pid = wait_for_pid(markers / f"{call_tag}.pid")
        assert alive(pid)
        assert pid != daemon.process.pid
    progress = [
        m for m in parse_sse("\n".join(seen)) if m.get("method") == "notifications/progress"
    ]
    assert progress[0]["params"] == {"progressToken": 5, "progress": 1, "message": "spinning"}
    wait_until_gone(pid)
    logged = cancelled_call(daemon, "spin-1")
    assert logged["outcome"] == "cancelled"
    assert logged["reason"] == "client disconnected"
    assert client.rpc("ping")["result"] == {}


def test_a_modern_disconnect_kills_the_worker(
    daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    call_tag = tag("iso-modern")
    body = spin_call(markers, call_tag, "spin-modern")
    body["params"]["_meta"] = modern_meta(progressToken=5)
    with spinning(http, daemon.url, body, modern_headers("tools/call", "isolated_spin")):
        pid = wait_for_pid(markers / f"{call_tag}.pid")
    wait_until_gone(pid)
    assert cancelled_call(daemon, "spin-modern")["reason"] == "client disconnected"


def test_notifications_cancelled_kills_the_worker(daemon: Daemon, markers: Path) -> None:
    with httpx.Client(timeout=30) as one, httpx.Client(timeout=30) as two:
        client = Legacy(one, daemon.url).initialize()
        other = Legacy(two, daemon.url)
        other.session_id, other.version = client.session_id, client.version
        call_tag = tag("iso-cancelled")
        body = spin_call(markers, call_tag, "spin-2")
        with spinning(one, daemon.url, body, client.headers()):
            pid = wait_for_pid(markers / f"{call_tag}.pid")
            cancel = other.notify("notifications/cancelled", {"requestId": "spin-2"})
            assert cancel.status_code == 202
            wait_until_gone(pid)
        logged = cancelled_call(daemon, "spin-2")
        assert logged["reason"].startswith("cancelled by the client")
        assert other.rpc("ping")["result"] == {}


def test_a_timeout_kills_the_worker_and_answers(
    daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    client = Legacy(http, daemon.url).initialize()
    # A worker already running, so the 2 s timeout is spent spinning, not starting a process.
    assert client.call("isolated_pid")["structuredContent"]["result"] != daemon.process.pid
    call_tag = tag("iso-timeout")
    result = client.call("isolated_spin_briefly", {"marker_dir": str(markers), "tag": call_tag})
    assert result["isError"] is True
    assert result["content"][0]["text"] == (
        "tool isolated_spin_briefly timed out after 2s and was cancelled"
    )
    pid = wait_for_pid(markers / f"{call_tag}.pid")
    assert not alive(pid)  # killed before the answer was sent


def test_progress_and_the_result_cross_back(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    client.rpc("logging/setLevel", {"level": "info"})
    body = {
        "jsonrpc": "2.0",
        "id": "progress-1",
        "method": "tools/call",
        "params": {
            "name": "isolated_progress",
            "arguments": {"steps": 3},
            "_meta": {"progressToken": "p"},
        },
    }
    messages = messages_of(client.post(body))
    progress = [m["params"] for m in messages if m.get("method") == "notifications/progress"]
    assert [p["progress"] for p in progress] == [1, 2, 3]
    assert {p["progressToken"] for p in progress} == {"p"}
    logs = [m["params"] for m in messages if m.get("method") == "notifications/message"]
    assert logs == [{"level": "info", "data": {"steps": 3}, "logger": "isolated"}]
    text = messages[-1]["result"]["content"][0]["text"]
    assert text.startswith("3 steps in process ")
    assert int(text.rsplit(" ", 1)[1]) != daemon.process.pid


def test_an_unpicklable_result_is_a_clean_error(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    result = client.call("isolated_lock")
    assert result["isError"] is True
    assert "cannot be sent back from its worker process" in result["content"][0]["text"]
    assert daemon.wait_for("tool.unpicklable_result", lambda e: e["tool"] == "isolated_lock")


def test_sys_exit_in_a_worker_fails_that_call_only(daemon: Daemon, http: httpx.Client) -> None:
    client = Legacy(http, daemon.url).initialize()
    result = client.call("isolated_exit")
    assert result["isError"] is True
    assert result["content"][0]["text"] == "tool isolated_exit failed with an internal error"
    assert client.call("isolated_fail", {"message": "still serving"})["content"][0]["text"] == (
        "still serving"
    )


# -- the daemon going away ----------------------------------------------------------------------


@pytest.fixture
def own_daemon(tmp_path: Path, plugin_site: Path, markers: Path) -> Iterator[Daemon]:
    daemon = Daemon.start(daemon_config(tmp_path / "mcpd.toml", markers), pythonpath=plugin_site)
    yield daemon
    if daemon.process.poll() is None:
        daemon.process.kill()
        daemon.process.wait()


def _spin_in_thread(client: Legacy, body: dict[str, Any], out: list[str]) -> threading.Thread:
    def run() -> None:
        # A killed daemon cuts the stream: that is the point of one test, not an error.
        with (
            contextlib.suppress(httpx.RemoteProtocolError),
            httpx.Client(timeout=60) as http,
            http.stream("POST", client.url, json=body, headers=client.headers()) as response,
        ):
            out.extend(response.iter_lines())

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_shutdown_kills_the_worker_and_answers_the_call(
    own_daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    client = Legacy(http, own_daemon.url).initialize()
    call_tag = tag("iso-shutdown")
    out: list[str] = []
    thread = _spin_in_thread(client, spin_call(markers, call_tag, 9), out)
    pid = wait_for_pid(markers / f"{call_tag}.pid")
    assert own_daemon.stop() == 0  # the grace period passes, then the worker is killed
    thread.join(WAIT)
    final = parse_sse("\n".join(out))[-1]
    assert final["id"] == 9
    assert final["error"]["code"] == -32000
    assert not alive(pid)  # the daemon exited after its worker, not before
    assert cancelled_call(own_daemon, 9)["reason"] == "daemon shutting down"


def test_a_killed_daemon_leaves_no_worker_behind(
    own_daemon: Daemon, http: httpx.Client, markers: Path
) -> None:
    client = Legacy(http, own_daemon.url).initialize()
    call_tag = tag("iso-sigkill")
    out: list[str] = []
    thread = _spin_in_thread(client, spin_call(markers, call_tag), out)
    pid = wait_for_pid(markers / f"{call_tag}.pid")
    own_daemon.process.send_signal(signal.SIGKILL)
    own_daemon.process.wait(WAIT)
    wait_until_gone(pid)  # the worker noticed that its parent is gone and exited
    thread.join(WAIT)
