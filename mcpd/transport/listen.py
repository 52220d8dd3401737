"""``subscriptions/listen`` (2026-07-28): a long-lived SSE response carrying change notices.

The stream opens with ``notifications/subscriptions/acknowledged`` naming what the server
will deliver, then carries only the opted-in notices, each tagged with the subscription id
(the listen request's id). The client ends it by closing the connection; the daemon ends it
at shutdown with the listen request's result.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

import trio

from mcpd.protocol import sse
from mcpd.protocol.errors import InvalidParams
from mcpd.protocol.jsonrpc import JsonObject, Request, dumps, notification_message, result_message
from mcpd.protocol.meta import SERVER_INFO
from mcpd.runtime.mailbox import Mailbox
from mcpd.runtime.notices import ListKind, Notices
from mcpd.transport import sse_io
from mcpd.transport.asgi_io import Receive
from mcpd.transport.exchange import Send
from mcpd.transport.hypercorn_fixes import send_final_body

SUBSCRIPTION_ID: Final = "io.modelcontextprotocol/subscriptionId"
_LIST_FLAGS: Final[dict[str, ListKind]] = {
    "toolsListChanged": "tools",
    "promptsListChanged": "prompts",
    "resourcesListChanged": "resources",
}
# Notices held for a listener that is not keeping up; beyond it the oldest are dropped.
QUEUE_LIMIT: Final = 256


class ListenStream:
    """One listen request: its filter and the notices queued for it."""

    def __init__(self, request: Request) -> None:
        self.id = request.id
        wanted = request.params.get("notifications")
        if wanted is None:
            wanted = {}
        if not isinstance(wanted, dict):
            raise InvalidParams("notifications must be an object")
        self.kinds = {kind for flag, kind in _LIST_FLAGS.items() if wanted.get(flag) is True}
        uris = wanted.get("resourceSubscriptions") or []
        if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
            raise InvalidParams("resourceSubscriptions must be a list of URIs")
        self.uris = frozenset(uris)
        self._outbox: Mailbox[JsonObject] = Mailbox(QUEUE_LIMIT)

    def honoured(self) -> dict[str, Any]:
        granted: dict[str, Any] = {
            flag: True for flag, kind in _LIST_FLAGS.items() if kind in self.kinds
        }
        if self.uris:
            granted["resourceSubscriptions"] = sorted(self.uris)
        return granted

    def list_changed(self, kind: ListKind) -> None:
        if kind in self.kinds:
            self._put(f"notifications/{kind}/list_changed", {})

    def resource_updated(self, uri: str) -> None:
        if uri in self.uris:
            self._put("notifications/resources/updated", {"uri": uri})

    def message(self, method: str, params: dict[str, Any]) -> JsonObject:
        tagged = {**params, "_meta": {SUBSCRIPTION_ID: self.id}}
        return notification_message(method, tagged)

    def _put(self, method: str, params: dict[str, Any]) -> None:
        self._outbox.put(self.message(method, params))

    async def next(self) -> JsonObject:
        return await self._outbox.get()


async def serve_listen(
    request: Request,
    receive: Receive,
    send: Send,
    *,
    notices: Notices,
    closing: trio.Event,
    keepalive: float,
    server_info: dict[str, Any],
) -> None:
    """Hold one listen stream until the client leaves or the daemon shuts down."""
    stream = ListenStream(request)
    notices.add(stream)
    try:
        await send({"type": "http.response.start", "status": 200, "headers": list(sse.HEADERS)})
        acknowledged = stream.message(
            "notifications/subscriptions/acknowledged", {"notifications": stream.honoured()}
        )
        await sse_io.write(send, sse.event(dumps(acknowledged)))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sse_io.until_disconnect, receive, nursery.cancel_scope, send)
            nursery.start_soon(sse_io.keep_alive, send, keepalive)
            nursery.start_soon(_forward, stream, send)
            await closing.wait()
            nursery.cancel_scope.cancel(reason="daemon shutting down")
            # The server ends the subscription: its result closes the stream.
            result = {
                "resultType": "complete",
                "_meta": {SUBSCRIPTION_ID: stream.id, SERVER_INFO: server_info},
            }
            with contextlib.suppress(Exception):
                await send_final_body(send, sse.event(dumps(result_message(stream.id, result))))
    finally:
        notices.discard(stream)


async def _forward(stream: ListenStream, send: Send) -> None:
    while True:
        message = await stream.next()
        await sse_io.write(send, sse.event(dumps(message)))
