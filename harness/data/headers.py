"""An image's size read from its header, before anything decodes it: a decompression bomb (a 1 MB PNG of 20000 x
20000 pixels) or a huge photo is refused by its header alone instead of taking gigabytes to decode.

JPEG, PNG, BMP and WebP, the formats the data scan takes (harness/data/layouts.py IMAGE_EXTENSIONS), are read by
their content, not their name; anything else gives None and is left to OpenCV."""
from __future__ import annotations

import os
import struct
from typing import BinaryIO

# The JPEG frame markers that carry the image's size (SOF0..SOF15 but DHT C4, JPG C8 and DAC CC).
JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
MAX_SEGMENTS = 4096  # a JPEG's segments read before its frame header: bounded, like every loop over a file


def jpeg_size(handle: BinaryIO) -> tuple[int, int] | None:
    """The frame header's size, found by walking the segments after the start-of-image marker."""
    handle.seek(2)
    for _ in range(MAX_SEGMENTS):
        if handle.read(1) != b"\xff":
            return None
        byte = handle.read(1)
        while byte == b"\xff":  # fill bytes before a marker
            byte = handle.read(1)
        if not byte or byte[0] == 0xD9:  # the end, or end-of-image before any frame
            return None
        if byte[0] == 0x01 or 0xD0 <= byte[0] <= 0xD8:  # markers without a length
            continue
        length = handle.read(2)
        if len(length) < 2:
            return None
        if byte[0] in JPEG_FRAMES:
            frame = handle.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return width, height
        handle.seek(struct.unpack(">H", length)[0] - 2, os.SEEK_CUR)
    return None


def webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from the file's header; None for a format not read here or a header too short."""
    with open(path, "rb") as handle:
        head = handle.read(32)
        if head[:2] == b"\xff\xd8":
            return jpeg_size(handle)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:2] == b"BM" and len(head) >= 26:
        if struct.unpack("<I", head[14:18])[0] == 12:  # OS/2's BITMAPCOREHEADER
            return struct.unpack("<HH", head[18:22])
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return webp_size(head)
    return None
