"""Sessions that survive the daemon, over raw HTTP: a real daemon stopped with SIGTERM and a
new one started on the same address and state directory.

The old session's next requests just work: tools, resources, its log level and subscriptions,
its GET stream resumed with Last-Event-ID (what it missed replayed once), and list changes.
A state file that is truncated, tampered with or foreign is logged and ignored, and the state
file's bounds (size, age) hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import Legacy, messages_of
from support.daemon import Daemon, write_config
from support.restarts import EventStream, free_port, restart_config

SUBSCRIBED = "fixture://text"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def config(tmp_path: Path, markers: Path, port: int, state_dir: Path) -> Path:
    return restart_config(tmp_path / "mcpd.toml", markers, port=port, state_dir=state_dir)


class Runs:
    """The daemons of one test, one after the other on the same address."""

    def __init__(self, config: Path, pythonpath: Path) -> None:
        self.config = config
        self.pythonpath = pythonpath
        self.all: list[Daemon] = []

    def start(self) -> Daemon:
        daemon = Daemon.start(self.config, pythonpath=self.pythonpath)
        self.all.append(daemon)
        return daemon

    def restart(self) -> Daemon:
        assert self.all[-1].stop() == 0
        return self.start()


@pytest.fixture
def runs(config: Path, plugin_site: Path) -> Iterator[Runs]:
    started = Runs(config, plugin_site)
    yield started
    for daemon in started.all:
        assert daemon.stop() == 0


def get_stream(session: Legacy, **headers: str) -> EventStream:
    stream = EventStream(session.url, session.headers(accept="text/event-stream", **headers))
    stream.wait_started()
    assert stream.status == 200
    return stream


def is_method(method: str, **params: Any) -> Any:
    return lambda m: (
        m.get("method") == method
        and all(m.get("params", {}).get(k) == v for k, v in params.items())
    )


def test_a_session_goes_on_after_a_restart(runs: Runs, http: httpx.Client) -> None:
    first = runs.start()
    session = Legacy(http, first.url).initialize(capabilities={"roots": {}})
    assert session.rpc("logging/setLevel", {"level": "warning"})["result"] == {}
    assert session.rpc("resources/subscribe", {"uri": SUBSCRIBED})["result"] == {}
    stream = get_stream(session)
    primed = stream.last_id()  # the priming event: where a resume would start from
    session.call("touch", {"uri": SUBSCRIBED})
    stream.wait_for(is_method("notifications/resources/updated", uri=SUBSCRIBED))
    assert session.call("echo", {"text": "before"})["content"][0]["text"] == "before"

    second = runs.restart()
    # The GET stream ended at the stop, on a connection that said it would not be reused.
    stream.wait_ended()
    assert stream.headers is not None
    assert stream.headers["connection"] == "close"
    assert first.wait_for("state.saved")["sessions"] == 1
    assert second.wait_for("state.restored")["sessions"] == 1

    # Resumed from the priming event: the update it got before the restart comes again,
    # once, with the same id; nothing else was missed.
    resumed = get_stream(session, **{"last-event-id": primed})
    replayed = resumed.wait_for(is_method("notifications/resources/updated", uri=SUBSCRIBED))
    assert replayed == stream.messages()[0]
    # The same session: tools, resources, its subscription and log level are all still there.
    assert session.call("echo", {"text": "after"})["content"][0]["text"] == "after"
    read = session.rpc("resources/read", {"uri": SUBSCRIBED})["result"]
    assert read["contents"][0]["text"] == "hello from the fixture"
    session.call("touch", {"uri": SUBSCRIBED})
    session.call("announce", {"kind": "tools"})
    resumed.wait_for(is_method("notifications/tools/list_changed"))
    updates = [
        m for m in resumed.messages() if m.get("method") == "notifications/resources/updated"
    ]
    assert len(updates) == 2
    chatty = session.request("tools/call", {"name": "chatty", "arguments": {}})
    levels = [
        m["params"]["level"]
        for m in messages_of(chatty)
        if m.get("method") == "notifications/message"
    ]
    assert levels == ["warning", "error"]
    # It ends as any session does.
    assert http.delete(second.url, headers=session.headers()).status_code == 200
    resumed.wait_ended()
    assert session.request("ping").status_code == 404


def test_an_upgrade_that_changes_the_lists_tells_the_old_sessions(
    runs: Runs, config: Path, http: httpx.Client
) -> None:
    runs.start()
    session = Legacy(http, runs.all[-1].url).initialize()
    assert "slow" in session.tool_names()  # a tool of the "fixture" plugin
    # The next daemon serves other tools: what an upgrade of a plugin looks like to clients.
    write_config(config, config.read_text() + '\n[plugins]\nenable = ["example"]\n')
    second = runs.restart()
    assert second.wait_for("state.restored")["lists_changed"] == ["tools", "prompts", "resources"]
    stream = get_stream(session)  # what was posted for it waits in its outbox
    stream.wait_for(is_method("notifications/tools/list_changed"))
    assert "slow" not in session.tool_names()


def test_a_request_cut_by_the_stop_ends_with_its_terminal_error(
    runs: Runs, http: httpx.Client
) -> None:
    first = runs.start()
    session = Legacy(http, first.url).initialize()
    params = {
        "name": "slow",
        "arguments": {"seconds": 60, "tag": "restart-cut"},
        "_meta": {"progressToken": "p"},
    }
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}
    with (
        httpx.Client(timeout=60) as other,
        other.stream("POST", first.url, json=body, headers=session.headers()) as response,
    ):
        lines = response.iter_lines()
        assert any(line.startswith("data:") for line in lines)  # the tool runs: progress
        first.signal()
        rest = list(lines)
    events = [line for line in rest if line.startswith("data:")]
    ids = [line.removeprefix("id:").strip() for line in rest if line.startswith("id:")]
    assert '"code":-32000' in events[-1].replace(" ", "")
    lost = first.wait_for("state.requests_lost")
    assert lost["requests"] == 1
    assert lost["calls"][0]["tool"] == "slow"
    # Its stream, kept for a late resume, is not carried over (and the log says so).
    assert first.wait_for("state.saved")["post_streams_not_kept"] == 1
    assert first.wait() == 0
    second = runs.start()
    assert second.wait_for("state.restored")["sessions"] == 1
    assert session.call("echo", {"text": "still here"})["content"][0]["text"] == "still here"
    # A resume of the cut stream is told it is gone; its id names no new stream either.
    resume = http.get(
        second.url,
        headers=session.headers(accept="text/event-stream", **{"last-event-id": ids[-1]}),
    )
    assert resume.status_code == 410
    assert ids[-1].startswith("p1.")
    later = session.request(
        "tools/call",
        {"name": "slow", "arguments": {"seconds": 0.2, "tag": "t"}, "_meta": {"progressToken": 1}},
    )
    later_ids = [line[3:].strip() for line in later.text.splitlines() if line.startswith("id:")]
    assert later_ids
    assert all(i.startswith("p2.") for i in later_ids)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda data: data[:-10], "truncated"),
        (lambda data: data.replace(b'"log_level":"info"', b'"log_level":"INFO"'), "tampered"),
        (lambda data: b"PK\x03\x04 not even ours", "unreadable"),
    ],
)
def test_a_spoilt_state_file_is_ignored_and_the_daemon_starts(
    runs: Runs, state_dir: Path, http: httpx.Client, spoil: Any, reason: str
) -> None:
    first = runs.start()
    session = Legacy(http, first.url).initialize()
    assert first.stop() == 0
    state = state_dir / "mcpd-state.json"
    state.write_bytes(spoil(state.read_bytes()))
    second = runs.start()
    rejected = second.wait_for("state.rejected")
    assert rejected["reason"] == reason
    assert rejected["level"] == "warning"
    assert session.request("ping").status_code == 404  # that session is gone
    assert Legacy(http, second.url).initialize().call("echo", {"text": "x"})["content"]
    assert (state_dir / "mcpd-state.json.rejected").exists()


def test_a_state_file_from_another_daemon_is_refused(
    runs: Runs,
    tmp_path: Path,
    markers: Path,
    plugin_site: Path,
    state_dir: Path,
    http: httpx.Client,
) -> None:
    other_dir = tmp_path / "other-state"
    other = restart_config(tmp_path / "other.toml", markers, port=free_port(), state_dir=other_dir)
    elsewhere = Daemon.start(other, pythonpath=plugin_site)
    stolen = Legacy(http, elsewhere.url).initialize()
    assert elsewhere.stop() == 0
    first = runs.start()
    assert first.stop() == 0
    (state_dir / "mcpd-state.json").write_bytes((other_dir / "mcpd-state.json").read_bytes())
    second = runs.start()
    assert second.wait_for("state.rejected")["reason"] == "foreign"
    stolen.url = second.url
    assert stolen.request("ping").status_code == 404


def test_the_state_is_bounded_in_size_and_age(
    tmp_path: Path, markers: Path, plugin_site: Path, http: httpx.Client
) -> None:
    port, state_dir = free_port(), tmp_path / "state"
    small = restart_config(
        tmp_path / "small.toml",
        markers,
        port=port,
        state_dir=state_dir,
        server="state_max_bytes = 8192\nstate_session_bytes = 2048\n",
    )
    first = Daemon.start(small, pythonpath=plugin_site)
    sessions = [Legacy(http, first.url).initialize() for _ in range(30)]
    assert first.stop() == 0
    saved = first.wait_for("state.saved")
    assert 0 < saved["sessions"] < 30
    assert saved["over_budget"] == 30 - saved["sessions"]
    assert (state_dir / "mcpd-state.json").stat().st_size <= 8192
    second = Daemon.start(small, pythonpath=plugin_site)
    try:
        assert second.wait_for("state.restored")["sessions"] == saved["sessions"]
        alive = [s for s in sessions if s.request("ping").status_code == 200]
        assert len(alive) == saved["sessions"]
    finally:
        assert second.stop() == 0
    # A file older than state_max_age_seconds is not used (no start is quicker than 1 ms).
    old = write_config(
        small,
        small.read_text().replace(
            "state_max_bytes", "state_max_age_seconds = 0.001\nstate_max_bytes"
        ),
    )
    third = Daemon.start(old, pythonpath=plugin_site)
    try:
        restored = third.wait_for("state.restored")
        assert restored["sessions"] == 0
        assert restored["too_old"] == saved["sessions"]
    finally:
        assert third.stop() == 0
