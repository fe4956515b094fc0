"""Bad input: every malformed message gives DecodeError with the RFC 6733 §7.1 code to answer
(and the Failed-AVP RFC 6733 §7.1.5 asks for), never another exception."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import MAX_DEPTH, Avp, DecodeError, Message


def _air() -> Message:
    return Message.request("AIR", d.APP_S6A, [
        ("Session-Id", "mme;1"),
        ("Origin-Host", "mme.localdomain"),
        ("User-Name", "001010000000001"),
        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1)]),
        ("KME-Check", b"\x01" * 16),
    ], hop_by_hop=7, end_to_end=9)


GOOD = codec.encode(_air())


def _header(length: int, flags: int = 0xC0, code: int = 318, version: int = 1) -> bytes:
    return struct.pack(">IIIII", (version << 24) | length, (flags << 24) | code, d.APP_S6A, 7, 9)


def _message(body: bytes, **kw: int) -> bytes:
    return _header(20 + len(body), **kw) + body


def _decode_error(buf: bytes, **kw: int) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        codec.decode(buf, **kw)
    return info.value


@pytest.mark.parametrize("cut", [0, 1, 3, 4, 19])
def test_truncated_header_is_5015(cut: int) -> None:
    assert _decode_error(GOOD[:cut]).result_code == d.DIAMETER_INVALID_MESSAGE_LENGTH


def test_truncated_body_is_5015() -> None:
    err = _decode_error(GOOD[:-4])
    assert err.result_code == d.DIAMETER_INVALID_MESSAGE_LENGTH and err.partial is None


def test_wrong_version_is_5011_in_decode_and_frame_length() -> None:
    bad = b"\x02" + GOOD[1:]
    assert _decode_error(bad).result_code == d.DIAMETER_UNSUPPORTED_VERSION
    with pytest.raises(DecodeError) as info:
        codec.frame_length(bad)
    assert info.value.result_code == d.DIAMETER_UNSUPPORTED_VERSION


@pytest.mark.parametrize("length", [0, 8, 19, 22, 0xFFFFFF])
def test_bad_message_lengths_are_5015(length: int) -> None:
    buf = _header(length) + bytes(max(0, min(length, 64) - 20))
    assert _decode_error(buf).result_code == d.DIAMETER_INVALID_MESSAGE_LENGTH
    with pytest.raises(DecodeError) as info:
        codec.frame_length(buf)
    assert info.value.result_code == d.DIAMETER_INVALID_MESSAGE_LENGTH


def test_frame_length() -> None:
    assert codec.frame_length(b"") is None and codec.frame_length(GOOD[:3]) is None
    assert codec.frame_length(GOOD[:4]) == len(GOOD)
    assert codec.frame_length(bytearray(GOOD)) == len(GOOD)
    with pytest.raises(DecodeError):
        codec.frame_length(GOOD[:4], max_size=len(GOOD) - 4)


def test_max_size_is_enforced() -> None:
    assert _decode_error(GOOD, max_size=len(GOOD) - 4).result_code == d.DIAMETER_INVALID_MESSAGE_LENGTH
    assert codec.decode(GOOD, max_size=len(GOOD)).name == "AIR"


@pytest.mark.parametrize("flags", [0xC1, 0xC8, 0xA0, 0xE0])
def test_reserved_or_contradicting_header_bits_are_3008(flags: int) -> None:
    err = _decode_error(_header(len(GOOD), flags=flags) + GOOD[20:])
    assert err.result_code == d.DIAMETER_INVALID_HDR_BITS
    assert err.partial is not None and (err.partial.hop_by_hop, err.partial.end_to_end) == (7, 9)


def test_error_answer_is_accepted() -> None:
    msg = codec.decode(_message(b"", flags=0x20))
    assert msg.is_error and not msg.is_request


@pytest.mark.parametrize(("avp", "failed"), [
    # length < 8 (no V): the header itself is the Failed-AVP, zero payload of the type's size
    (struct.pack(">II", 268, 0x40000004), Avp(268, 0, 0x40, b"\0" * 4)),
    # length < 12 with V
    (struct.pack(">III", 1410, 0xC000000A, 10415), Avp(1410, 10415, 0xC0, b"\0" * 4)),
    # overrunning the message
    (struct.pack(">II", 1, 0x40000040) + b"abcd", Avp(1, 0, 0x40, b"")),
    # a truncated header: 4 octets left
    (struct.pack(">I", 264), Avp(264, 0, 0, b"")),
])
def test_bad_avp_lengths_are_5014_with_failed_avp(avp: bytes, failed: Avp) -> None:
    body = codec.encode_avps([("Session-Id", "s;1")]) + avp
    body += bytes(-len(body) & 3)
    err = _decode_error(_message(body))
    assert err.result_code == d.DIAMETER_INVALID_AVP_LENGTH
    assert err.failed_avp == failed
    assert err.partial is not None and err.partial.get("Session-Id") == "s;1"  # enough to answer


def test_overrun_inside_a_group_is_5014() -> None:
    inner = struct.pack(">III", 1410, 0xC0000020, 10415) + b"\0\0\0\1"
    group = struct.pack(">III", 1408, 0xC0000000 | (12 + len(inner)), 10415) + inner
    err = _decode_error(_message(group))
    assert err.result_code == d.DIAMETER_INVALID_AVP_LENGTH
    assert (err.failed_avp.code, err.failed_avp.vendor) == (1410, 10415)  # type: ignore[union-attr]
    # without validation the top level decodes and the group raises when read
    msg = codec.decode(_message(group), validate=False)
    with pytest.raises(DecodeError) as info:
        msg.group("Requested-EUTRAN-Authentication-Info")
    assert info.value.result_code == d.DIAMETER_INVALID_AVP_LENGTH


def test_wrong_size_for_fixed_type_is_5014_when_read() -> None:
    msg = codec.decode(codec.encode(Message.request("AIR", None, [Avp(268, 0, 0x40, b"\0\0\7\xd1\0")])))
    with pytest.raises(DecodeError) as info:
        msg.result_code()
    assert info.value.result_code == d.DIAMETER_INVALID_AVP_LENGTH
    assert info.value.failed_avp == Avp(268, 0, 0x40, b"\0\0\7\xd1\0")


def test_reserved_avp_flag_bits_are_3009() -> None:
    avp = struct.pack(">II", 268, 0x4100000C) + b"\0\0\7\xd1"
    err = _decode_error(_message(avp))
    assert err.result_code == d.DIAMETER_INVALID_AVP_BITS
    assert err.failed_avp == Avp(268, 0, 0x40, b"\0\0\7\xd1")


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    data = b""
    for _ in range(200):
        data = struct.pack(">II", 279, 0x40000000 | (8 + len(data))) + data  # Failed-AVP in Failed-AVP
    err = _decode_error(_message(data))
    assert err.result_code == d.DIAMETER_INVALID_AVP_VALUE
    shallow = b""
    for _ in range(MAX_DEPTH):
        shallow = struct.pack(">II", 279, 0x40000000 | (8 + len(shallow))) + shallow
    codec.decode(_message(shallow)).avps  # noqa: B018 - reads every level


def test_unknown_mandatory_avp_is_reported_not_raised() -> None:
    body = codec.encode_avps([("Session-Id", "s"), Avp(9999, 0, 0x40, b"x"), Avp(9998, 0, 0, b"y")])
    msg = codec.decode(_message(body))
    assert msg.unknown_mandatory == [Avp(9999, 0, 0x40, b"x")]


# --- never anything but DecodeError ----------------------------------------------------------


def _read_everything(msg: Message) -> None:
    msg.avps  # noqa: B018
    for a in d.AVPS:
        if a.type is d.AvpType.GROUPED:
            msg.groups(a.name)
        else:
            msg.get_all(a.name)
    msg.result(), msg.validate(), codec.encode(msg)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_decode_error(data: bytes) -> None:
    for buf in (data, _header(20 + len(data) + (-len(data) & 3)) + data + bytes(-len(data) & 3)):
        try:
            msg = codec.decode(buf)
        except DecodeError as err:
            assert 3000 <= err.result_code < 6000
            continue
        try:
            _read_everything(msg)
        except DecodeError as err:
            assert err.result_code in (d.DIAMETER_INVALID_AVP_VALUE, d.DIAMETER_INVALID_AVP_LENGTH)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_corrupted_air_only_decode_error(patches: list[tuple[int, int]]) -> None:
    buf = bytearray(GOOD)
    for pos, value in patches:
        buf[pos] = value
    try:
        msg = codec.decode(bytes(buf))
    except DecodeError:
        return
    with contextlib.suppress(DecodeError):
        _read_everything(msg)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=4, max_size=4))
def test_frame_length_only_decode_error(head: bytes) -> None:
    try:
        n = codec.frame_length(head)
    except DecodeError as err:
        assert err.result_code in (d.DIAMETER_UNSUPPORTED_VERSION, d.DIAMETER_INVALID_MESSAGE_LENGTH)
    else:
        assert n is not None and 20 <= n <= codec.DEFAULT_MAX_SIZE and n % 4 == 0
