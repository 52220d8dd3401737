"""HTTP: the raw ASGI app serving MCP's Streamable HTTP transport for both eras."""
