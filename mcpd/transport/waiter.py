"""The HTTP handler's side of a POST: waiting for its answers while watching the client.

The requests of a POST run in their owner's nursery (a session's, or the stateless one) and
answer through the exchange; the handler only watches for the client going away, cancelling
exactly those requests (or, for a resumable stream, holding them for the resume window), and
sends keep-alives, until the last answer is written. A client's EOF is probed at once
(``HALF_CLOSED``): a closed client resets, one that half-closed reads its answer.
"""

from __future__ import annotations

from typing import Final

import structlog
import trio

from mcpd.runtime.flights import CLIENT_DISCONNECTED, Flight
from mcpd.transport.asgi_io import Receive
from mcpd.transport.exchange import Exchange
from mcpd.transport.hypercorn_h11 import HALF_CLOSED

log = structlog.get_logger("mcpd.http")

# A resumable session's call still running after this long switches to SSE (priming event).
PRIME_AFTER: Final = 1.0


async def detach_on_disconnect(receive: Receive, exchange: Exchange, generation: int) -> None:
    while (kind := (await receive())["type"]) != "http.disconnect":
        if kind == HALF_CLOSED:
            await exchange.tick()  # probe: a closed client resets (see hypercorn_h11)
    if exchange.generation == generation:
        exchange.detach()


class Waiter:
    """The HTTP handler's side of a POST: wait for the answers, watching the client meanwhile.

    One cancel scope per wait serves as both the keep-alive timer (its deadline) and the
    wake-up when the last answer is written (the answering task cancels it).
    """

    __slots__ = ("_scope", "remaining")

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        self._scope: trio.CancelScope | None = None

    def answered(self) -> None:
        self.remaining -= 1
        if not self.remaining and self._scope is not None:
            self._scope.cancel(reason="answered")

    async def watch(
        self,
        receive: Receive,
        flights: list[Flight],
        exchange: Exchange,
        interval: float,
        resume_window: float = 0,
    ) -> None:
        # One scheduler pass first: the answering tasks were started just before, and a fast
        # call (most are) has written its answer within it; then there is nothing to watch,
        # and no cancel scope or client read is needed.
        await trio.lowlevel.checkpoint()
        if not self.remaining:
            return
        client_gone = False
        # The stream may be resumed on another connection (GET + Last-Event-ID) before this
        # one's disconnect arrives: from then on, that connection is not ours to probe or end.
        ours = exchange.generation
        # A resumable stream starts early (with its priming event), so that a client losing
        # the connection has an event id to resume from.
        wait = min(interval, PRIME_AFTER) if resume_window else interval
        while self.remaining:
            with trio.move_on_after(wait) as self._scope:
                if client_gone:
                    await trio.sleep_forever()
                kind = (await receive())["type"]
                if kind == "http.disconnect":
                    client_gone = True
                    if resume_window and exchange.resumable:
                        break
                    for flight in flights:
                        flight.cancel(CLIENT_DISCONNECTED)
                elif kind == HALF_CLOSED and exchange.generation == ours:
                    # The client sent EOF: probe it with a keep-alive now (a closed client
                    # resets, and hypercorn reports the disconnect), rather than at the next
                    # interval; a half-closed one reads its answer as SSE.
                    await exchange.tick()
                continue
            wait = interval
            if self.remaining and not client_gone and exchange.generation == ours:
                await exchange.tick()
        if self.remaining:
            await self._hold(flights, exchange, resume_window, ours)

    async def _hold(
        self, flights: list[Flight], exchange: Exchange, window: float, ours: int
    ) -> None:
        """The client lost a resumable stream: keep its requests running while it may come
        back (GET + Last-Event-ID); cancel them once it stays away for ``window`` seconds."""
        if exchange.generation == ours:  # not already resumed elsewhere
            exchange.detach()
            log.info("stream.detached", resume_window_seconds=window)
        while self.remaining:
            with trio.CancelScope() as self._scope:
                if exchange.attached:
                    await exchange.wait_changed()
                    continue
                with trio.move_on_after(window) as grace:
                    await exchange.wait_changed()
                if grace.cancelled_caught and not exchange.attached:
                    log.info("stream.abandoned")
                    for flight in flights:
                        flight.cancel(CLIENT_DISCONNECTED)
                    await trio.sleep_forever()
