"""Running the ASGI app for one request on either lean path (``lean_h11``, ``lean_h2``), with
hypercorn's handling of what it raises."""

from __future__ import annotations

from typing import Any

import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config


class AppCaller:
    """Calls the server's app: the ASGI app itself when hypercorn wraps a plain one (a frame
    less per request), else hypercorn's wrapper with its sync/async bridges."""

    __slots__ = ("_app", "_config", "_wrapped")

    def __init__(self, app: Any, config: Config) -> None:
        self._app: Any = app.app if type(app) is ASGIWrapper else None
        self._wrapped: Any = app
        self._config = config

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Run the app; what it raises (but cancellation) is logged as hypercorn does, as
        "Error in ASGI Framework", and goes no further."""
        try:
            if self._app is not None:
                await self._app(scope, receive, send)
            else:
                await self._wrapped(
                    scope, receive, send, trio.to_thread.run_sync, trio.from_thread.run
                )
        except trio.Cancelled:
            raise
        except BaseExceptionGroup as error:
            if error.split(trio.Cancelled)[1] is None:
                raise
            await self._config.log.exception("Error in ASGI Framework")
        except Exception:
            await self._config.log.exception("Error in ASGI Framework")
