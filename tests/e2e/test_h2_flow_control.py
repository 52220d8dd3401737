"""A real daemon and an h2c client that never opens its flow-control window.

The client (``support.h2c``, prior knowledge, raw ``h2``) asks ``echo`` for a result far
larger than HTTP/2's initial 64 KiB window and never sends WINDOW_UPDATE. The daemon holds at
most ``h2_max_buffer_bytes`` for it (measured in-process by tests/transport/test_hypercorn_h2.py),
serves other connections meanwhile, and ends the stalled connection once its window stayed
shut for ``write_timeout_seconds`` (short here); the daemon reports it (``h2.connection_stalled``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h2.errors
import pytest
import trio
from support.daemon import WAIT, Daemon, write_config
from support.eras import headers_for, modern_body
from support.h2c import H2c

BIG = 1_000_000  # characters of the echoed text: the answer is about 1 MB
WINDOW = 65_535


@pytest.fixture(scope="module")
def h2_daemon(
    tmp_path_factory: pytest.TempPathFactory, plugin_site: Path, markers: Path
) -> Iterator[Daemon]:
    config = write_config(
        tmp_path_factory.mktemp("h2") / "mcpd.toml",
        f"""
[server]
listen = ["127.0.0.1:0"]
write_timeout_seconds = 2
max_body_bytes = 4194304
h2_max_buffer_bytes = 262144

[plugin.fixture]
marker_dir = "{markers}"
""",
    )
    daemon = Daemon.start(config, pythonpath=plugin_site)
    yield daemon
    assert daemon.stop() == 0


def _address(daemon: Daemon) -> tuple[str, int]:
    host, _, port = daemon.binds[0].removeprefix("http://").rpartition(":")
    return host, int(port)


async def _echo(client: H2c, text: str) -> int:
    body = modern_body("tools/call", {"name": "echo", "arguments": {"text": text}})
    data = json.dumps(body).encode()
    headers = [*headers_for(body).items(), ("content-length", str(len(data)))]
    return await client.request("POST", "/mcp", headers, data)


def _text(client: H2c, stream: int) -> Any:
    return json.loads(bytes(client.streams[stream].data))["result"]["content"][0]["text"]


async def test_a_never_opened_window_ends_the_connection_after_the_write_timeout(
    h2_daemon: Daemon,
) -> None:
    stalled = await H2c.connect(_address(h2_daemon))
    big = await _echo(stalled, "x" * BIG)
    with trio.fail_after(WAIT):
        await stalled.until(lambda: stalled.received >= WINDOW)
        # Meanwhile another connection is served as usual.
        bystander = await H2c.connect(_address(h2_daemon))
        small = await _echo(bystander, "still served")
        await bystander.until(lambda: bystander.streams[small].ended)
        assert _text(bystander, small) == "still served"
        # The stalled one gets GOAWAY (CANCEL) and is closed: no WINDOW_UPDATE ever came.
        await stalled.until(lambda: False)
    assert stalled.terminated is not None
    assert stalled.terminated.error_code == h2.errors.ErrorCodes.CANCEL
    assert stalled.received == WINDOW  # it was sent exactly what its window allowed
    assert not stalled.streams[big].ended
    event = h2_daemon.wait_for("h2.connection_stalled")
    assert event["write_timeout_seconds"] == 2
    assert event["buffered_bytes"] <= 262144
    # The bystander's connection is untouched, and the daemon keeps serving on it.
    again = await _echo(bystander, "and again")
    with trio.fail_after(WAIT):
        await bystander.until(lambda: bystander.streams[again].ended)
    assert _text(bystander, again) == "and again"
    await bystander.aclose()


async def test_a_client_that_opens_its_window_gets_the_whole_answer(h2_daemon: Daemon) -> None:
    client = await H2c.connect(_address(h2_daemon))
    text = "y" * BIG
    stream = await _echo(client, text)
    with trio.fail_after(WAIT):
        while not client.streams[stream].ended and not client.closed:
            before = client.received
            await client.receive()
            if taken := client.received - before:
                if not client.streams[stream].ended:  # no WINDOW_UPDATE on a closed stream
                    await client.open_window(stream, taken)
                await client.open_window(None, taken)
    await client.aclose()
    assert _text(client, stream) == text
