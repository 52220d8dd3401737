"""Change notices over real HTTP: legacy GET streams and 2026 ``subscriptions/listen`` streams.

That something does NOT arrive is shown without waiting: the unwanted notice is caused first,
then a wanted one (a sentinel); notices are delivered in order, so reading up to the sentinel
proves the unwanted one was never sent.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.client import Legacy, messages_of
from support.daemon import Daemon, daemon_config, write_config
from support.eras import EraClient, headers_for, modern_body, modern_request
from support.events import EventReader, is_method

SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
EXAMPLE_TOOL = "hash_text"  # served by the example plugin


def call(client: Legacy | EraClient, name: str, **arguments: Any) -> None:
    if isinstance(client, Legacy):
        result = client.call(name, arguments)
    else:
        result = client.result("tools/call", {"name": name, "arguments": arguments})
    assert result.get("isError", False) is False, result


@contextmanager
def get_stream(http: httpx.Client, client: Legacy) -> Iterator[EventReader]:
    """The session's GET stream, open."""
    headers = client.headers(accept="text/event-stream")
    with http.stream("GET", client.url, headers=headers) as response:
        assert response.status_code == 200
        yield EventReader(response)


@contextmanager
def listen(
    http: httpx.Client, url: str, notifications: dict[str, Any], request_id: str = "listen-1"
) -> Iterator[EventReader]:
    """A 2026 listen stream, open."""
    body = modern_body(
        "subscriptions/listen", {"notifications": notifications}, request_id=request_id
    )
    with http.stream("POST", url, json=body, headers=headers_for(body)) as response:
        assert response.status_code == 200
        yield EventReader(response)


def methods(messages: list[dict[str, Any]]) -> list[str]:
    return [message.get("method", "") for message in messages]


# == legacy sessions: the GET stream ==========================================================


@pytest.fixture
def session(daemon: Daemon) -> Iterator[tuple[Legacy, httpx.Client]]:
    """A legacy session and a second connection for its GET stream."""
    with httpx.Client(timeout=30) as main, httpx.Client(timeout=30) as side:
        yield Legacy(main, daemon.url).initialize(), side


def test_subscribed_resource_update_arrives_on_the_get_stream(
    session: tuple[Legacy, httpx.Client],
) -> None:
    client, side = session
    with get_stream(side, client) as stream:
        assert client.rpc("resources/subscribe", {"uri": "fixture://text"})["result"] == {}
        touched = client.request(
            "tools/call", {"name": "touch", "arguments": {"uri": "fixture://text"}}
        )
        # The notice goes to the GET stream, not to the POST that caused it.
        assert methods(messages_of(touched)) == [""]
        update = stream.until(is_method("notifications/resources/updated"))
    assert update == {
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": {"uri": "fixture://text"},
    }


def test_unsubscribed_and_unknown_uris_send_nothing(
    session: tuple[Legacy, httpx.Client],
) -> None:
    client, side = session
    with get_stream(side, client) as stream:
        client.rpc("resources/subscribe", {"uri": "fixture://text"})
        client.rpc("resources/subscribe", {"uri": "fixture://binary"})
        assert client.rpc("resources/unsubscribe", {"uri": "fixture://text"})["result"] == {}
        call(client, "touch", uri="fixture://text")  # unsubscribed
        call(client, "touch", uri="fixture://numbers/1")  # never subscribed
        call(client, "touch", uri="fixture://binary")  # the sentinel
        stream.until(is_method("notifications/resources/updated"))
    updates = [m for m in stream.seen if m.get("method") == "notifications/resources/updated"]
    assert [m["params"]["uri"] for m in updates] == ["fixture://binary"]


def test_subscriptions_belong_to_their_session(
    daemon: Daemon, session: tuple[Legacy, httpx.Client], http: httpx.Client
) -> None:
    client, side = session
    other = Legacy(http, daemon.url).initialize()
    other.rpc("resources/subscribe", {"uri": "fixture://binary"})
    with get_stream(side, client) as stream:
        client.rpc("resources/subscribe", {"uri": "fixture://text"})
        call(other, "touch", uri="fixture://binary")  # only the other session subscribed
        call(other, "touch", uri="fixture://text")  # another session's tool call reaches us
        update = stream.until(is_method("notifications/resources/updated"))
    assert update["params"]["uri"] == "fixture://text"


def test_list_changed_arrives_on_the_get_stream(session: tuple[Legacy, httpx.Client]) -> None:
    client, side = session
    with get_stream(side, client) as stream:
        for kind in ("tools", "prompts", "resources"):
            call(client, "announce", kind=kind)
            notice = stream.until(lambda m: m.get("method", "").endswith("/list_changed"))
            assert notice["method"] == f"notifications/{kind}/list_changed"


def test_notices_wait_for_a_get_stream(session: tuple[Legacy, httpx.Client]) -> None:
    client, side = session
    client.rpc("resources/subscribe", {"uri": "fixture://text"})
    call(client, "touch", uri="fixture://text")
    call(client, "announce", kind="prompts")
    with get_stream(side, client) as stream:
        first = stream.until(lambda m: "method" in m)
        second = stream.until(lambda m: "method" in m)
    assert first["method"] == "notifications/resources/updated"
    assert second["method"] == "notifications/prompts/list_changed"


def test_subscribe_needs_a_uri(session: tuple[Legacy, httpx.Client]) -> None:
    client, _ = session
    assert client.rpc("resources/subscribe", {})["error"]["code"] == -32602
    assert client.rpc("resources/unsubscribe", {"uri": 5})["error"]["code"] == -32602


def test_capabilities_announce_notices(daemon: Daemon, http: httpx.Client) -> None:
    capabilities = Legacy(http, daemon.url).initialize().init_result["capabilities"]
    assert capabilities["tools"]["listChanged"] is True
    assert capabilities["prompts"]["listChanged"] is True
    assert capabilities["resources"] == {"subscribe": True, "listChanged": True}


# == 2026: subscriptions/listen ===============================================================


@pytest.fixture
def modern(daemon: Daemon, http: httpx.Client) -> EraClient:
    return EraClient(http, daemon.url, modern=True)


def test_listen_acknowledges_first_and_tags_every_message(
    daemon: Daemon, modern: EraClient
) -> None:
    wanted = {
        "toolsListChanged": True,
        "promptsListChanged": False,
        "resourceSubscriptions": ["fixture://text"],
    }
    with httpx.Client(timeout=30) as http, listen(http, daemon.url, wanted, "sub-7") as stream:
        ack = stream.next()
        assert ack is not None
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        honoured = ack["params"]["notifications"]
        assert honoured["toolsListChanged"] is True
        assert honoured["resourceSubscriptions"] == ["fixture://text"]
        assert honoured.get("promptsListChanged", False) is False
        assert "resourcesListChanged" not in honoured
        call(modern, "announce", kind="tools")
        call(modern, "touch", uri="fixture://text")
        stream.until(is_method("notifications/tools/list_changed"))
        update = stream.until(is_method("notifications/resources/updated"))
    assert update["params"]["uri"] == "fixture://text"
    for message in stream.seen:
        assert message["params"]["_meta"][SUBSCRIPTION_ID] == "sub-7"
        assert "id" not in message  # notifications only, never a request


@pytest.mark.parametrize("kind", ["tools", "prompts", "resources"])
def test_listen_delivers_only_the_kinds_asked_for(
    daemon: Daemon, modern: EraClient, kind: str
) -> None:
    flag = f"{kind}ListChanged"
    with httpx.Client(timeout=30) as http, listen(http, daemon.url, {flag: True}) as stream:
        ack = stream.until(is_method("notifications/subscriptions/acknowledged"))
        assert ack["params"]["notifications"] == {flag: True}
        for other in ("tools", "prompts", "resources"):
            if other != kind:
                call(modern, "announce", kind=other)
        call(modern, "touch", uri="fixture://text")  # no resource subscriptions asked for
        call(modern, "announce", kind=kind)  # the sentinel
        notice = stream.until(lambda m: m["method"] != "notifications/subscriptions/acknowledged")
    assert notice["method"] == f"notifications/{kind}/list_changed"


def test_listen_resource_subscriptions(daemon: Daemon, modern: EraClient) -> None:
    wanted = {"resourceSubscriptions": ["fixture://text", "fixture://notes/alpha"]}
    with httpx.Client(timeout=30) as http, listen(http, daemon.url, wanted) as stream:
        ack = stream.until(is_method("notifications/subscriptions/acknowledged"))
        assert sorted(ack["params"]["notifications"]["resourceSubscriptions"]) == [
            "fixture://notes/alpha",
            "fixture://text",
        ]
        call(modern, "touch", uri="fixture://binary")  # not subscribed
        call(modern, "announce", kind="tools")  # not asked for
        call(modern, "touch", uri="fixture://notes/alpha")
        call(modern, "touch", uri="fixture://text")
        first = stream.until(is_method("notifications/resources/updated"))
        second = stream.until(is_method("notifications/resources/updated"))
    assert [first["params"]["uri"], second["params"]["uri"]] == [
        "fixture://notes/alpha",
        "fixture://text",
    ]
    assert methods(stream.seen)[1:] == ["notifications/resources/updated"] * 2


def test_listen_sends_keep_alives(daemon: Daemon) -> None:
    with httpx.Client(timeout=30) as http, listen(http, daemon.url, {}) as stream:
        for line in stream.response.iter_lines():
            if line.startswith(":"):
                break
        else:
            raise AssertionError("the listen stream ended without a keep-alive")


@pytest.mark.parametrize(
    "notifications", ["everything", ["toolsListChanged"], {"resourceSubscriptions": "x"}]
)
def test_listen_with_bad_params_is_invalid_params(
    daemon: Daemon, http: httpx.Client, notifications: object
) -> None:
    response = modern_request(
        http, daemon.url, "subscriptions/listen", {"notifications": notifications}
    )
    assert messages_of(response)[-1]["error"]["code"] == -32602


# == whole-daemon events: reload and shutdown ================================================


@pytest.fixture
def own_daemon(tmp_path: Path, plugin_site: Path, markers: Path) -> Iterator[Daemon]:
    daemon = Daemon.start(daemon_config(tmp_path / "mcpd.toml", markers), pythonpath=plugin_site)
    yield daemon
    if daemon.process.poll() is None:
        assert daemon.stop() == 0


def tool_names(client: EraClient) -> set[str]:
    pages = client.walk("tools/list", "tools")
    return {tool["name"] for page in pages for tool in page["tools"]}


def test_reload_announces_the_changed_tool_list(
    own_daemon: Daemon, tmp_path: Path, markers: Path
) -> None:
    with httpx.Client(timeout=30) as main, httpx.Client(timeout=30) as side:
        client = Legacy(main, own_daemon.url).initialize()
        legacy = EraClient(main, own_daemon.url, modern=False)
        modern = EraClient(main, own_daemon.url, modern=True)
        assert EXAMPLE_TOOL in tool_names(legacy)
        wanted = {"toolsListChanged": True, "promptsListChanged": True}
        with (
            get_stream(side, client) as stream,
            httpx.Client(timeout=30) as third,
            listen(third, own_daemon.url, wanted) as listening,
        ):
            listening.until(is_method("notifications/subscriptions/acknowledged"))
            config = daemon_config(tmp_path / "mcpd.toml", markers).read_text()
            write_config(tmp_path / "mcpd.toml", config + '\n[plugins]\ndisable = ["example"]\n')
            own_daemon.signal(signal.SIGHUP)
            notice = stream.until(lambda m: "method" in m)
            heard = listening.until(lambda m: m["method"].endswith("/list_changed"))
        assert notice["method"] == "notifications/tools/list_changed"
        assert heard["method"] == "notifications/tools/list_changed"
        assert EXAMPLE_TOOL not in tool_names(legacy)
        assert EXAMPLE_TOOL not in tool_names(modern)
        assert "echo" in tool_names(modern)


def test_sigterm_ends_a_listen_stream_with_its_result(own_daemon: Daemon) -> None:
    with httpx.Client(timeout=30) as http, listen(http, own_daemon.url, {}, "bye-1") as stream:
        stream.until(is_method("notifications/subscriptions/acknowledged"))
        own_daemon.signal(signal.SIGTERM)
        rest = stream.rest()
    assert rest, "the stream ended without the listen result"
    final = rest[-1]
    assert final["id"] == "bye-1"
    assert final["result"]["resultType"] == "complete"
    assert final["result"]["_meta"][SUBSCRIPTION_ID] == "bye-1"
    assert own_daemon.wait() == 0
