"""UE link frames: encoding, sans-I/O reassembly, framing errors."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.nas.frame import (
    FRAME_FIELDS,
    HEADER_SIZE,
    ErrorCause,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    encode_frame,
    error_frame,
    nas_downlink_frame,
    parse_error_payload,
)


def test_header_layout_matches_the_declared_fields() -> None:
    data = encode_frame(FrameType.NAS_UPLINK, 0x01020304, b"\x07\x43", flags=0x5A)
    assert HEADER_SIZE == 10 == sum(size for _, size in FRAME_FIELDS)
    # version 1 | length 12 (3 octets) | type 0x10 | flags | UE id
    assert data == bytes.fromhex("01" "00000c" "10" "5a" "01020304") + b"\x07\x43"


def test_single_frame_roundtrip() -> None:
    dec = FrameDecoder(1000)
    assert dec.feed(encode_frame(FrameType.LINK_SETUP, 0, b"enb-1")) == [Frame(FrameType.LINK_SETUP, 0, b"enb-1")]
    assert dec.buffered == 0


@settings(max_examples=50)
@given(
    frames=st.lists(
        st.tuples(st.sampled_from(list(FrameType)), st.integers(0, 2**32 - 1), st.binary(max_size=300)),
        min_size=1,
        max_size=8,
    ),
    cuts=st.lists(st.integers(0, 4000), max_size=10),
)
def test_split_and_merged_feeds(frames: list[tuple[int, int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(t, u, p) for t, u, p in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    dec = FrameDecoder(400)
    got: list[Frame] = []
    for a, b in itertools.pairwise(points):
        got += dec.feed(stream[a:b])
        assert dec.buffered <= 400
    assert got == [Frame(t, u, p) for t, u, p in frames]
    assert dec.buffered == 0


def test_byte_by_byte() -> None:
    stream = encode_frame(FrameType.NAS_DOWNLINK, 7, b"abc") + encode_frame(FrameType.UE_RELEASE, 7)
    dec = FrameDecoder()
    got = [f for i in range(len(stream)) for f in dec.feed(stream[i : i + 1])]
    assert got == [Frame(FrameType.NAS_DOWNLINK, 7, b"abc"), Frame(FrameType.UE_RELEASE, 7, b"")]


def test_oversize_refused_before_buffering() -> None:
    dec = FrameDecoder(64)
    big = encode_frame(FrameType.NAS_UPLINK, 1, bytes(100))
    with pytest.raises(FrameError) as info:
        dec.feed(big[:HEADER_SIZE])  # refused on the header alone
    assert info.value.cause is ErrorCause.FRAME_TOO_LARGE
    assert dec.buffered == 0
    with pytest.raises(FrameError):  # stays failed: the stream cannot be resynchronised
        dec.feed(encode_frame(FrameType.NAS_UPLINK, 1))


def test_bad_version() -> None:
    data = bytearray(encode_frame(FrameType.NAS_UPLINK, 1, b"x"))
    data[0] = 2
    with pytest.raises(FrameError) as info:
        FrameDecoder().feed(bytes(data))
    assert info.value.cause is ErrorCause.UNSUPPORTED_VERSION


@pytest.mark.parametrize("length", [0, 1, HEADER_SIZE - 1])
def test_length_below_header(length: int) -> None:
    data = bytes([1]) + length.to_bytes(3, "big") + bytes(6)
    with pytest.raises(FrameError) as info:
        FrameDecoder().feed(data)
    assert info.value.cause is ErrorCause.MALFORMED


def test_unknown_type_is_delivered_for_the_caller_to_answer() -> None:
    (frame,) = FrameDecoder().feed(encode_frame(0xEE, 3, b""))
    assert frame.type == 0xEE and frame.ue_id == 3


def test_error_frame_payload() -> None:
    (frame,) = FrameDecoder().feed(error_frame(ErrorCause.UNKNOWN_UE_ID, 42, "no such UE"))
    assert frame.type == FrameType.ERROR and frame.ue_id == 42
    assert parse_error_payload(frame.payload) == (ErrorCause.UNKNOWN_UE_ID, "no such UE")


def test_good_frames_before_a_bad_header_come_with_the_error() -> None:
    """Frames completed in the same feed as a bad header are not lost: FrameError.frames has
    them, in order; later feeds raise without frames (already delivered)."""
    good = [encode_frame(FrameType.LINK_SETUP, 0, b"enb"), encode_frame(FrameType.NAS_UPLINK, 7, b"\x07\x41")]
    dec = FrameDecoder(128)
    with pytest.raises(FrameError) as info:
        dec.feed(b"".join(good) + b"\x02" + bytes(HEADER_SIZE - 1))
    assert info.value.cause == ErrorCause.UNSUPPORTED_VERSION
    assert info.value.frames == (Frame(FrameType.LINK_SETUP, 0, b"enb"), Frame(FrameType.NAS_UPLINK, 7, b"\x07\x41"))
    with pytest.raises(FrameError) as again:
        dec.feed(good[0])
    assert again.value.cause == ErrorCause.UNSUPPORTED_VERSION and again.value.frames == ()
    with pytest.raises(FrameError) as alone:  # a bad header first: nothing before it
        FrameDecoder(128).feed(bytes((1,)) + (4).to_bytes(3, "big") + bytes(6))
    assert alone.value.cause == ErrorCause.MALFORMED and alone.value.frames == ()


def test_nas_downlink_frame_is_encode_frame() -> None:
    for ue_id, pdu in ((1, b"\x07\x42"), (0xFFFFFFFF, bytes(300)), (77, b"")):
        assert nas_downlink_frame(ue_id, pdu) == encode_frame(FrameType.NAS_DOWNLINK, ue_id, pdu)
    with pytest.raises(ValueError):
        nas_downlink_frame(1, bytes(2**24))


def test_encode_refuses_out_of_range() -> None:
    with pytest.raises(ValueError):
        encode_frame(FrameType.NAS_UPLINK, 2**32)
    with pytest.raises(ValueError):
        encode_frame(FrameType.NAS_UPLINK, 1, bytes(2**24))
    with pytest.raises(ValueError):
        FrameDecoder(5)


@settings(max_examples=100)
@given(st.binary(max_size=200))
def test_random_bytes_frame_or_raise_frame_error(data: bytes) -> None:
    dec = FrameDecoder(128)
    try:
        dec.feed(data)
    except FrameError:
        return
    assert dec.buffered <= 128


def test_docs_describe_the_declared_header_and_types() -> None:
    """docs/ue-link.md is what a Wireshark dissector is written from: it must match the code."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "ue-link.md").read_text()
    offset = 0
    for name, size in FRAME_FIELDS:
        assert re.search(rf"^\| {offset} \| {size} \| {name.replace('_', ' ')} \|", doc, re.M | re.I), name
        offset += size
    for ftype in FrameType:
        assert re.search(rf"^\| 0x{ftype:02x} \| {ftype.name} \|", doc, re.M), ftype.name
    for cause in ErrorCause:
        assert f"{int(cause)} {cause.name.lower().replace('_', ' ')}" in " ".join(doc.lower().split()), cause.name
