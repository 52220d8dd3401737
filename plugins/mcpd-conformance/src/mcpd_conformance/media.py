"""Tiny, valid binary samples built at import time: a 1x1 PNG and a short silent WAV."""

from __future__ import annotations

import io
import struct
import wave
import zlib


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def one_pixel_png(red: int = 255, green: int = 0, blue: int = 0) -> bytes:
    """A 1x1 truecolour PNG of the given colour."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # width, height, depth 8, RGB
    scanline = bytes((0, red, green, blue))  # filter byte "none", then one pixel
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(scanline)),
            _png_chunk(b"IEND", b""),
        )
    )


def silent_wav(milliseconds: int = 100, rate: int = 8000) -> bytes:
    """A mono 16-bit PCM WAV file of silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * (rate * milliseconds // 1000))
    return buffer.getvalue()


RED_PIXEL_PNG = one_pixel_png()
SILENCE_WAV = silent_wav()
