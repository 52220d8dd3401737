"""The sans-IO protocol core: JSON-RPC framing, revisions, handshake, headers, shapes.

Nothing in this package performs I/O or imports trio, quart, hypercorn or structlog; a test
enforces it. The runtime and transport layers above turn its decisions into actions.
"""
