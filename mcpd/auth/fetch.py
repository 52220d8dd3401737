"""Small JSON-over-HTTP calls to the authorization server, on trio (httpx runs on it via anyio).

Bounded in time (a timeout per call) and size (the body is read in chunks and refused past
``MAX_BODY``); redirects are not followed, since a JWKS or introspection answer must come
from the URL that was configured or discovered. Any problem is an ``Unavailable`` whose
message names the URL and what went wrong, never a credential.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import httpx

MAX_BODY: Final = 1024 * 1024
JSON_ACCEPT: Final = {"accept": "application/json"}


class Unavailable(Exception):
    """The remote answer could not be had, or was not usable JSON."""


def new_client() -> httpx.AsyncClient:
    """The client the authenticator owns: no redirects, no environment proxies or netrc."""
    return httpx.AsyncClient(follow_redirects=False, trust_env=False)


async def get_json(client: httpx.AsyncClient, url: str, *, time_limit: float) -> Any:
    request = client.build_request("GET", url, headers=JSON_ACCEPT, timeout=time_limit)
    return await _send(client, request, url)


async def post_form_json(
    client: httpx.AsyncClient,
    url: str,
    form: Mapping[str, str],
    *,
    headers: Mapping[str, str],
    time_limit: float,
) -> Any:
    request = client.build_request(
        "POST", url, data=dict(form), headers={**JSON_ACCEPT, **headers}, timeout=time_limit
    )
    return await _send(client, request, url)


async def _send(client: httpx.AsyncClient, request: httpx.Request, url: str) -> Any:
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise Unavailable(f"{url}: {type(exc).__name__}") from None
    try:
        if response.status_code != 200:
            raise Unavailable(f"{url}: HTTP {response.status_code}")
        body = await _read_bounded(response, url)
    finally:
        await response.aclose()
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Unavailable(f"{url}: the answer is not JSON") from None


async def _read_bounded(response: httpx.Response, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_BODY:
                raise Unavailable(f"{url}: the answer is larger than {MAX_BODY} bytes")
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise Unavailable(f"{url}: {type(exc).__name__}") from None
    return b"".join(chunks)
