"""Who is calling, and what they may use: authentication and authorization for mcpd.

The room is built in layers, pure logic apart from I/O:

- ``settings``: the ``[auth]`` config table (pydantic models; ``mcpd.config`` validates it).
- ``principal``: the caller (``Principal``, ``Anonymous``) and the key that binds state to it.
- ``keys``: static API keys (hashes in the config, constant-time lookup, ``mcpd auth new-key``).
- ``jwt`` (pure validation), ``jwks`` (the issuer's keys, cached) and ``tokens`` (the two
  together): OAuth 2.1 resource server for JWT access tokens; ``discovery`` finds
  ``jwks_uri`` from the issuer; ``fetch`` is the bounded JSON-over-HTTP both use.
- ``introspection``: RFC 7662 for opaque tokens.
- ``challenge`` and ``metadata``: the ``WWW-Authenticate`` challenges and the RFC 9728
  protected-resource metadata document; ``wellknown`` holds the document the operator app
  serves (``mcpd.transport.operator``).
- ``authenticator``: the one entry point the endpoint calls, ``authenticate(headers, client)``;
  ``failures``: the closed set of reasons it refuses for (a metric label).
- ``policy``: per tool/resource/prompt decisions (allowed, denied for scopes, hidden).
- ``proxies``: ``X-Forwarded-*`` from trusted peers; ``tls``: direct TLS through hypercorn;
  ``exposure``: the refusal to serve anonymous callers beyond loopback.

This package imports nothing from the transport or runtime layers; they call into it.
"""
