"""mcpd-example: small, useful tools, and a worked example of an mcpd plugin.

The entry point ``example = "mcpd_example"`` (see pyproject.toml) names this module; mcpd
imports it and calls ``register_tools`` with the ``[plugin.example]`` table of mcpd.toml.

Tools: ``hash_text``, ``text_stats``, ``unified_diff`` (sync, run in worker threads),
``json_format``, ``json_query``, ``time_now`` and ``countdown`` (async, long-running,
reports progress and logs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcpd
from mcpd.plugin.tool import Tool
from mcpd_example.clock import countdown, time_now
from mcpd_example.data import json_format, json_query
from mcpd_example.settings import configure
from mcpd_example.text import hash_text, text_stats, unified_diff

TOOLS = (hash_text, text_stats, unified_diff, json_format, json_query, time_now, countdown)


@mcpd.hookimpl
def register_tools(settings: Mapping[str, Any]) -> list[Tool]:
    """Validate this plugin's settings, then serve every tool."""
    configure(settings)
    return list(TOOLS)
