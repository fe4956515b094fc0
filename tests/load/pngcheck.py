"""Check that a file is a PNG: the signature and a well-formed IHDR chunk (ISO/IEC 15948, 5.2 and 11.2.2)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png_header(path: Path) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) of a PNG file; AssertionError when it is not one."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG signature"
    length, ctype = struct.unpack(">I4s", data[8:16])
    assert ctype == b"IHDR" and length == 13, "the first chunk must be a 13-octet IHDR"
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(ctype + body) == crc, "IHDR CRC mismatch"
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
    assert width > 0 and height > 0
    assert depth in (1, 2, 4, 8, 16) and colour in (0, 2, 3, 4, 6)
    assert (compression, filtering) == (0, 0) and interlace in (0, 1)
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82", "no IEND chunk at the end"
    return width, height, depth, colour
