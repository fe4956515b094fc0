#!/usr/bin/env python3
"""atheris: the UE link ``FrameDecoder`` on any stream, fed in any chunks (tools/fuzz/README.md).

The first octet sets the chunk size. Properties: only FrameError comes out; at most
``max_frame_size`` octets are held; every frame returned has a payload within the limit; after
a FrameError the decoder stays failed.
"""

from __future__ import annotations

import atheris
import common

with atheris.instrument_imports():
    from kmed.nas.frame import HEADER_SIZE, FrameDecoder, FrameError, FrameType, encode_frame

MAX = 512


def test_one_input(data: bytes) -> None:
    if not data:
        return
    step = 1 + data[0] % 64
    stream = data[1:]
    dec = FrameDecoder(MAX)
    for i in range(0, len(stream), step):
        try:
            frames = dec.feed(stream[i:i + step])
        except FrameError:
            try:
                dec.feed(b"")
            except FrameError:
                return
            raise AssertionError("the decoder recovered after a framing error") from None
        assert dec.buffered <= MAX
        for f in frames:
            assert len(f.payload) <= MAX - HEADER_SIZE


def seeds() -> list[bytes]:
    frames = encode_frame(FrameType.LINK_SETUP, 0, b"enb-1") + encode_frame(FrameType.NAS_UPLINK, 7, b"\x07\x41")
    return [b"\x03" + frames, b"\x40" + frames * 3]


if __name__ == "__main__":
    common.fuzz(test_one_input, seeds)
