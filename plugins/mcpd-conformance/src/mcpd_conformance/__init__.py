"""mcpd-conformance: the fixtures the official MCP conformance suite calls by name.

The suite's server scenarios call tools, resources and prompts with fixed names
(``test_simple_text``, ``test://static-text``, ``test_simple_prompt``...). This plugin serves
exactly those, so a daemon with it installed can be measured with
``/work/shared/conformance/run.sh``. See README.md for which scenario uses what.

It has no settings. Do not install it on a production daemon: its tools exist to be probed.
"""

from __future__ import annotations

from typing import Any

import mcpd
from mcpd_conformance.prompts import PROMPTS
from mcpd_conformance.resources import RESOURCES
from mcpd_conformance.tools import TOOLS


@mcpd.hookimpl
def register_tools() -> list[Any]:
    return list(TOOLS)


@mcpd.hookimpl
def register_resources() -> list[Any]:
    return list(RESOURCES)


@mcpd.hookimpl
def register_prompts() -> list[Any]:
    return list(PROMPTS)
