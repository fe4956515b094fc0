"""Structure-aware fuzzing of the UE link: NAS codec, NAS security and the frame decoder.

- NAS codec (TS 24.301 §7, §9.9.1): valid messages of every table (tests/nas/test_codec.py's
  generator) followed by optional IEs built IE by IE: the table's own IEIs with lengths in and
  out of range and repeated, unknown IEIs of every kind (type 1, type 2, TLV, TLV-E), unknown
  comprehension-required IEIs (#96) and a truncated last IE (ignored). What decodes re-encodes
  to a PDU that decodes to the same message.
- NAS security (TS 24.301 §4.4.3, TS 33.401 Annex B): any change to the MAC, sequence number
  or body of a protected message is refused, and refusing it does not disturb the COUNT.
- Frames (docs/ue-link.md §1): a stream of valid frames with one broken header delivers the
  frames before it, then fails for good, holding at most one frame's octets.
"""

from __future__ import annotations

import itertools
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmed.nas.causes import EmmCause
from kmed.nas.codec import NasDecodeError, NasMessage, decode, encode, message_spec
from kmed.nas.frame import HEADER_SIZE, Frame, FrameDecoder, FrameError, FrameType, encode_frame
from kmed.nas.messages import MESSAGES, IESpec
from kmed.nas.security import DOWNLINK, UPLINK, NasSecurityContext, NasSecurityError
from tests.fuzz.budget import fuzz
from tests.nas.test_codec import _messages

MAX_FRAME = 600
#: A TLV IEI that no table uses (for a truncated last IE, which the decoder must ignore).
FREE_TLV_IEI = min(set(range(0x10, 0x70)) - {ie.iei for m in MESSAGES for ie in m.ies if ie.iei is not None})


def _decodes_stably(pdu: bytes) -> NasMessage | None:
    """Decode ``pdu`` (only NasDecodeError may come out); what decodes must re-encode to a PDU
    that decodes to the same message."""
    try:
        msg = decode(pdu)
    except NasDecodeError as exc:
        assert isinstance(exc.cause, EmmCause)
        return None
    plain = NasMessage(msg.name, dict(msg.ies))
    again = decode(encode(plain))
    assert again.name == msg.name and again.ies == msg.ies
    return msg


# --- optional IEs, one by one -------------------------------------------------------------------


def _ie_bytes(iei: int, kind: str, value: bytes) -> bytes:
    if kind == "T1":
        return bytes(((iei & 0xF0) | (value[0] & 0x0F if value else 0),))
    if kind == "T2":
        return bytes((iei,))
    if kind == "TV":
        return bytes((iei,)) + value
    if kind == "TLV":
        return bytes((iei, len(value) & 0xFF)) + value[:255]
    return bytes((iei,)) + struct.pack(">H", len(value)) + value  # TLV-E


def _known_kind(ie: IESpec) -> str:
    if ie.vtype.half:
        return "T1"
    return {"TV": "TV", "TLV": "TLV", "TLV-E": "TLVE"}[str(ie.fmt)]


@st.composite
def _optional_ie(draw: st.DrawFn, spec_name: str) -> tuple[str, bytes]:
    """One optional IE: ("known" | "unknown" | "required", octets)."""
    optional = [ie for ie in message_spec(spec_name).ies if ie.iei is not None]
    choice = draw(st.integers(0, 9))
    if optional and choice < 5:
        ie = draw(st.sampled_from(optional))
        kind = _known_kind(ie)
        if kind == "TV":  # fixed size: only the right size can be sent (the IEI says the length)
            value = draw(st.binary(min_size=ie.min_len, max_size=ie.min_len))
        else:
            value = draw(st.binary(min_size=max(0, ie.min_len - 2), max_size=min(ie.max_len + 2, 300)))
        return "known", _ie_bytes(ie.iei, kind, value or b"\0")  # type: ignore[arg-type]
    known = {ie.iei for ie in optional} | {ie.iei & 0xF0 for ie in optional if ie.vtype.half}  # type: ignore[operator]
    if choice < 8:
        iei = draw(st.integers(0x10, 0xFF).filter(lambda i: i not in known and (i & 0xF0) not in known))
        kind = "T1" if iei >= 0xA0 and iei & 0xF0 != 0xA0 else ("T2" if iei & 0x80 else (
            "TLVE" if iei & 0xF0 == 0x70 else "TLV"))
        return "unknown", _ie_bytes(iei, kind, draw(st.binary(max_size=20)))
    iei = draw(st.integers(0x00, 0x0F))  # TS 24.301 §7.6.1: "comprehension required"
    return "required", _ie_bytes(iei, "TLV", draw(st.binary(max_size=8)))


@st.composite
def _message_with_extra_ies(draw: st.DrawFn) -> tuple[NasMessage, list[tuple[str, bytes]], bytes]:
    msg = draw(_messages())
    extra = draw(st.lists(_optional_ie(msg.name), max_size=5))
    truncated = draw(st.integers(0, 3)) == 0
    pdu = encode(msg) + b"".join(b for _, b in extra)
    if truncated:  # a TLV whose length runs past the end: ignored, with whatever follows
        pdu += bytes((FREE_TLV_IEI, 40)) + b"\x01\x02"
    return msg, extra, pdu


@fuzz(400)
@given(_message_with_extra_ies())
def test_optional_ies_built_one_by_one(case: tuple[NasMessage, list[tuple[str, bytes]], bytes]) -> None:
    msg, extra, pdu = case
    if any(kind == "required" for kind, _ in extra):
        with pytest.raises(NasDecodeError) as info:
            decode(pdu)
        assert info.value.cause == EmmCause.INVALID_MANDATORY_INFORMATION and info.value.respond
        return
    got = _decodes_stably(pdu)
    assert got is not None and got.name == msg.name
    for name, value in msg.ies.items():  # the IEs sent first keep their values (§7.6.3)
        assert got.ies[name] == value, name


@fuzz(300)
@given(_messages(), st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "cut"]),
                                       st.integers(0, 400), st.integers(1, 255)), min_size=1, max_size=4))
def test_mutated_valid_messages_decode_stably_or_fail_cleanly(msg: NasMessage,
                                                              edits: list[tuple[str, int, int]]) -> None:
    pdu = bytearray(encode(msg))
    for op, pos, val in edits:
        at = pos % (len(pdu) + 1)
        if op == "flip" and pdu:
            pdu[at % len(pdu)] ^= val
        elif op == "insert":
            pdu[at:at] = bytes((val,))
        elif op == "delete" and pdu:
            del pdu[at % len(pdu)]
        elif op == "cut":
            del pdu[at:]
    _decodes_stably(bytes(pdu))


# --- NAS security -------------------------------------------------------------------------------


def _contexts() -> tuple[NasSecurityContext, NasSecurityContext]:
    k_int, k_enc = bytes(range(16)), bytes(range(16, 32))
    return NasSecurityContext(1, k_int, k_enc), NasSecurityContext(1, k_int, k_enc)


@fuzz(300)
@given(_messages(), st.sampled_from([1, 2, 3, 4]), st.sampled_from([UPLINK, DOWNLINK]), st.integers(0, 300),
       st.lists(st.tuples(st.integers(1, 10_000), st.integers(1, 255)), min_size=1, max_size=3))
def test_any_change_after_the_header_octet_is_refused_and_the_count_survives(
        msg: NasMessage, sht: int, direction: int, count: int, flips: list[tuple[int, int]]) -> None:
    sender, receiver = _contexts()
    sender.set_count(direction, count)
    receiver.set_count(direction, count)
    genuine = sender.protect(encode(msg), direction, sht)
    forged = bytearray(genuine)
    for pos, x in flips:  # octet 0 (security header type) is not covered by the MAC: left alone
        forged[1 + pos % (len(forged) - 1)] ^= x
    if bytes(forged) != genuine:
        with pytest.raises(NasSecurityError):
            receiver.unprotect(bytes(forged), direction)
    assert receiver.unprotect(genuine, direction) == encode(msg)
    with pytest.raises(NasSecurityError):  # and then it is a replay
        receiver.unprotect(genuine, direction)


@fuzz(150)
@given(_messages(), st.integers(0, 3), st.binary(max_size=30))
def test_truncated_or_extended_protected_pdus_are_refused(msg: NasMessage, how: int, junk: bytes) -> None:
    sender, receiver = _contexts()
    genuine = sender.protect(encode(msg), UPLINK)
    if how == 0:
        bad = genuine[: max(0, len(genuine) - 1 - len(junk) % len(genuine))]
    elif how == 1:
        bad = genuine + (junk or b"\0")
    elif how == 2:
        bad = genuine[:5] + junk  # a MAC over something else
    else:
        bad = genuine[:1] + junk + genuine[1 + len(junk):]
    if bad != genuine:
        with pytest.raises(NasSecurityError):
            receiver.unprotect(bad, UPLINK)


# --- frames ---------------------------------------------------------------------------------------

frames = st.lists(st.tuples(st.sampled_from(list(FrameType)) | st.integers(0, 255), st.integers(0, 2**32 - 1),
                            st.binary(max_size=120)), min_size=1, max_size=10)


@fuzz(250)
@given(frames, st.integers(0, 9), st.sampled_from(["version", "short", "long"]), st.integers(1, 255),
       st.lists(st.integers(0, 5000), max_size=12))
def test_a_broken_header_delivers_only_frames_before_it_then_fails_for_good(
        good: list[tuple[int, int, bytes]], at: int, how: str, val: int, cuts: list[int]) -> None:
    at %= len(good)
    parts = [encode_frame(t, u, p) for t, u, p in good]
    broken = bytearray(parts[at])
    if how == "version":
        broken[0] = (broken[0] + val) & 0xFF or 2
    elif how == "short":
        broken[1:4] = (val % HEADER_SIZE).to_bytes(3, "big")
    else:
        broken[1:4] = (MAX_FRAME + val).to_bytes(3, "big")
    stream = b"".join(parts[:at]) + bytes(broken) + b"".join(parts[at + 1:])
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    dec = FrameDecoder(MAX_FRAME)
    got: list[Frame] = []
    failed: FrameError | None = None
    for a, b in itertools.pairwise(points):
        try:
            got += dec.feed(stream[a:b])
        except FrameError as exc:
            failed = exc
            break
        assert dec.buffered <= MAX_FRAME
    if failed is None:  # the broken header is in the last chunk fed: one more feed finds it
        with pytest.raises(FrameError):
            got += dec.feed(b"")
    # Only frames before the broken one come out, in order. (Frames completed in the same feed
    # as the broken header are not returned: the connection is closed at once either way.)
    assert len(got) <= at and got == [Frame(t, u, p) for t, u, p in good[:len(got)]]
    starts = list(itertools.accumulate(len(p) for p in parts))
    broken_start = starts[at - 1] if at else 0
    if broken_start in points and at:  # fed apart from the frames before it: all of them came out
        assert len(got) == at
    with pytest.raises(FrameError):  # failed for good: the stream cannot be resynchronised
        dec.feed(parts[0])


def test_frame_generator_agrees_with_the_layout() -> None:
    data: Any = encode_frame(FrameType.NAS_UPLINK, 1, b"\x07\x41")
    assert len(data) == HEADER_SIZE + 2 and data[0] == 1
