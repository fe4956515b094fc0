"""Message boundaries of the two links: whatever the chunking, whole messages come out."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message
from kmed.faults.framing import DiameterSplitter, FramingError, Splitter, UeLinkSplitter, splitter_for
from kmed.nas.frame import FrameType, encode_frame


def diameter_messages() -> list[bytes]:
    cer = Message.request("CER", d.APP_COMMON, [("Origin-Host", "mme.localdomain"), ("Origin-Realm", "localdomain"),
                                                 ("Host-IP-Address", "127.0.0.1"), ("Vendor-Id", 0),
                                                 ("Product-Name", "t")])
    air = Message.request("AIR", d.APP_S6A, [("Session-Id", "s;1"), ("User-Name", "001010000000001"),
                                             ("Visited-PLMN-Id", b"\x00\xf1\x10")])
    aia = Message.answer_to(air, [("Result-Code", 2001)])
    dwa = Message.answer_to(Message.request("DWR", d.APP_COMMON, []), [("Result-Code", 2001)])
    return [codec.encode(m) for m in (cer, air, aia, dwa)]


def ue_frames() -> list[bytes]:
    return [encode_frame(FrameType.LINK_SETUP, 0, b"enb"), encode_frame(FrameType.NAS_UPLINK, 7, b"\x07\x41" * 20),
            encode_frame(FrameType.NAS_DOWNLINK, 7, b"\x07\x52"), encode_frame(FrameType.UE_RELEASE, 7, b"\x00"),
            encode_frame(FrameType.NAS_UPLINK, 8, b"", flags=3)]


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def feed_all(splitter: Splitter, chunks: list[bytes]) -> list[bytes]:
    return [m.data for chunk in chunks for m in splitter.feed(chunk)]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 10_000), max_size=30))
def test_diameter_messages_come_out_whole_whatever_the_chunking(cuts: list[int]) -> None:
    msgs = diameter_messages()
    assert feed_all(DiameterSplitter(), chunked(b"".join(msgs), cuts)) == msgs


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 10_000), max_size=30))
def test_ue_link_frames_come_out_whole_whatever_the_chunking(cuts: list[int]) -> None:
    frames = ue_frames()
    assert feed_all(UeLinkSplitter(), chunked(b"".join(frames), cuts)) == frames


def test_diameter_scope_application_exempts_the_base_protocol() -> None:
    out = DiameterSplitter().feed(b"".join(diameter_messages()))
    assert [(m.label, m.faultable) for m in out] == [("CER", False), ("AIR", True), ("AIA", True), ("DWA", False)]
    assert all(m.faultable for m in DiameterSplitter("all").feed(b"".join(diameter_messages())))


def test_ue_link_scope_application_faults_nas_frames_only() -> None:
    out = UeLinkSplitter().feed(b"".join(ue_frames()))
    assert [m.faultable for m in out] == [False, True, True, False, True]
    assert out[1].label == "NAS_UPLINK ue 7"
    assert all(m.faultable for m in UeLinkSplitter("all").feed(b"".join(ue_frames())))


@pytest.mark.parametrize("link", ["diameter", "uelink"])
def test_unframeable_stream_hands_back_every_octet_not_delivered(link: str) -> None:
    good = diameter_messages()[1] if link == "diameter" else ue_frames()[1]
    splitter = splitter_for(link)
    head = good[:5]
    assert splitter.feed(head) == []
    bad = b"\x09" + b"\x00" * 30  # wrong version
    with pytest.raises(FramingError) as info:
        splitter.feed(good[5:] + bad)
    # The whole message split in this feed is not delivered: it goes raw with the rest.
    assert info.value.pending == good + bad
    assert splitter.buffered == 0


def test_splitter_for_refuses_unknown_link_and_scope() -> None:
    with pytest.raises(ValueError, match="link"):
        splitter_for("s1ap")
    with pytest.raises(ValueError, match="scope"):
        splitter_for("diameter", "some")
