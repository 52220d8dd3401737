"""What survives the daemon: the restart state's format and its files.

- ``mcpd.persist.records``: the records (sessions, used ``requestState`` nonces) and their
  encoding as versioned, HMAC-authenticated JSON. Pure: bytes in, records out.
- ``mcpd.persist.keyring``: the keys kept in the state directory (the state file's HMAC key,
  the 2026 ``requestState`` keys with their rotation history), as versioned JSON. Pure.
- ``mcpd.persist.store``: the state directory and its files: found from the config or
  ``$STATE_DIRECTORY``, written atomically, readable by the daemon's user only.

Nothing here imports trio or the runtime; ``mcpd.runtime.restart`` connects these to the
daemon's sessions (the door opens one way: the runtime imports this package).
"""
