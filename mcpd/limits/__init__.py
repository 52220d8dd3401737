"""Limits per principal and per tool: rates, concurrency caps, sessions, and quota hits.

- ``settings``: the ``[limits]`` table (a pydantic model, registered in ``mcpd.config``);
- ``buckets``: token buckets on trio's clock in a bounded table;
- ``caps``: concurrency caps by key on ``trio.CapacityLimiter``;
- ``limiter``: ``Limits``, what the request path calls;
- ``quota``: ``mcpd.RateLimited`` for tools, and the ``isError`` result it becomes;
- ``names``: the closed set of limit names (the metric's labels).

A refusal is ``mcpd.protocol.errors.LimitExceeded``: HTTP 429, ``Retry-After``, a JSON-RPC
error body.

Import from the modules: this file stays empty so that ``mcpd.config`` can read the settings
model without pulling in trio.
"""
