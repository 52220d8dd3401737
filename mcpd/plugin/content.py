"""Rich content a tool can return besides text: images, audio and resources.

Each type is a frozen dataclass that knows how to become an MCP content block for a given
protocol revision. Block types a revision does not know (audio before 2025-03-26,
resource links before 2025-06-18) degrade to a text block describing them, so an old client
still learns what the tool produced instead of failing on an unknown ``type``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

AUDIO_SINCE = "2025-03-26"
RESOURCE_LINK_SINCE = "2025-06-18"


def _check_mime_type(mime_type: object) -> None:
    if not isinstance(mime_type, str) or "/" not in mime_type:
        raise ValueError(f"mime_type must look like 'type/subtype', got {mime_type!r}")


def _check_bytes(data: object) -> None:
    if not isinstance(data, bytes):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")


@dataclass(frozen=True, slots=True)
class Image:
    """An image, given as raw bytes; mcpd base64-encodes it on the wire.

    Example::

        @mcpd.tool
        def logo() -> mcpd.Image:
            return mcpd.Image(Path("logo.png").read_bytes(), "image/png")
    """

    data: bytes
    mime_type: str

    def __post_init__(self) -> None:
        _check_bytes(self.data)
        _check_mime_type(self.mime_type)

    def to_block(self, revision: str) -> dict[str, Any]:
        """The ``image`` content block (the same in every revision)."""
        encoded = base64.b64encode(self.data).decode("ascii")
        return {"type": "image", "data": encoded, "mimeType": self.mime_type}


@dataclass(frozen=True, slots=True)
class Audio:
    """A sound clip, given as raw bytes; sent as an ``audio`` block from 2025-03-26.

    Example::

        @mcpd.tool
        def beep() -> mcpd.Audio:
            return mcpd.Audio(BEEP_WAV, "audio/wav")
    """

    data: bytes
    mime_type: str

    def __post_init__(self) -> None:
        _check_bytes(self.data)
        _check_mime_type(self.mime_type)

    def to_block(self, revision: str) -> dict[str, Any]:
        """An ``audio`` block, or a text block describing it before 2025-03-26."""
        if revision < AUDIO_SINCE:
            text = f"[audio omitted: {self.mime_type}, {len(self.data)} bytes]"
            return {"type": "text", "text": text}
        encoded = base64.b64encode(self.data).decode("ascii")
        return {"type": "audio", "data": encoded, "mimeType": self.mime_type}


@dataclass(frozen=True, slots=True)
class EmbeddedResource:
    """A resource whose contents travel inside the result: exactly one of ``text`` or ``blob``.

    Example::

        @mcpd.tool
        def report() -> mcpd.EmbeddedResource:
            return mcpd.EmbeddedResource("file:///tmp/report.csv", text=csv, mime_type="text/csv")
    """

    uri: str
    text: str | None = None
    blob: bytes | None = None
    mime_type: str | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.blob is None):
            raise ValueError("an EmbeddedResource needs exactly one of text= or blob=")
        if self.blob is not None:
            _check_bytes(self.blob)
        if self.mime_type is not None:
            _check_mime_type(self.mime_type)

    def to_block(self, revision: str) -> dict[str, Any]:
        """The ``resource`` content block (the same in every revision)."""
        contents: dict[str, Any] = {"uri": self.uri}
        if self.mime_type is not None:
            contents["mimeType"] = self.mime_type
        if self.blob is not None:
            contents["blob"] = base64.b64encode(self.blob).decode("ascii")
        else:
            contents["text"] = self.text
        return {"type": "resource", "resource": contents}


@dataclass(frozen=True, slots=True)
class ResourceLink:
    """A pointer to a resource the client may fetch; a ``resource_link`` block from 2025-06-18.

    Example::

        @mcpd.tool
        def latest_log() -> mcpd.ResourceLink:
            return mcpd.ResourceLink("file:///var/log/app.log", name="app.log")
    """

    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.mime_type is not None:
            _check_mime_type(self.mime_type)

    def to_block(self, revision: str) -> dict[str, Any]:
        """A ``resource_link`` block, or a text block naming the link before 2025-06-18."""
        if revision < RESOURCE_LINK_SINCE:
            text = f"{self.title or self.name}: {self.uri}"
            if self.description:
                text += f"\n{self.description}"
            return {"type": "text", "text": text}
        block: dict[str, Any] = {"type": "resource_link", "uri": self.uri, "name": self.name}
        optional = {
            "title": self.title,
            "description": self.description,
            "mimeType": self.mime_type,
            "size": self.size,
        }
        block.update({key: value for key, value in optional.items() if value is not None})
        return block


Content = Image | Audio | EmbeddedResource | ResourceLink
CONTENT_TYPES: tuple[type, ...] = (Image, Audio, EmbeddedResource, ResourceLink)
