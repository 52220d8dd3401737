"""The plugin's settings: the ``[plugin.example]`` table of mcpd.toml, validated.

Example::

    [plugin.example]
    max_input_bytes = 200_000
    default_timezone = "Europe/Paris"
    max_countdown_seconds = 60

Unknown keys and bad values make ``register_tools`` raise, so mcpd reports this plugin as
failed with the reason instead of serving it with a setting silently ignored.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

import mcpd


class ExampleSettings(BaseModel):
    """Limits and defaults of the example tools."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_input_bytes: int = Field(default=1_000_000, gt=0)
    default_timezone: str = "UTC"
    max_countdown_seconds: int = Field(default=120, gt=0)

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            # pydantic reports ValueErrors as validation errors; ZoneInfoNotFoundError is not one.
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


# Tools are module-level objects, so they read the settings of the latest load from here.
_current: list[ExampleSettings] = [ExampleSettings()]


def configure(settings: Mapping[str, Any]) -> ExampleSettings:
    """Validate and install the settings mcpd passed to ``register_tools``."""
    _current[0] = ExampleSettings.model_validate(dict(settings))
    return _current[0]


def current() -> ExampleSettings:
    """The settings in force."""
    return _current[0]


def checked_utf8(text: str, what: str = "text") -> bytes:
    """``text`` as UTF-8, or a ``ToolError`` if it is larger than ``max_input_bytes``."""
    data = text.encode("utf-8", errors="surrogatepass")
    limit = current().max_input_bytes
    if len(data) > limit:
        raise mcpd.ToolError(f"{what} is {len(data)} bytes; this server accepts at most {limit}")
    return data
