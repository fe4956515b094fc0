"""Every crash the fuzzers found, with its exact input, so it stays fixed.

Add each new one here with: which fuzz test or harness found it, when, what went wrong, the
fix. Inputs are the octets as received (hex), so they replay without the generators.

1. Found by tests/fuzz/test_hss_requests.py (hypothesis): an AIR whose Session-Id is not
   UTF-8. ``S6aHandlers.handle`` raised DecodeError while building its error answer
   (``Message.answer_to`` read the request's Session-Id); the transport's 5012 fallback read it
   again and raised out of ``data_received``, so one request dropped the MME's whole
   connection and every request in flight on it. Fix: ``Message.answer_to`` echoes an
   unreadable Session-Id octet for octet (kmed/diameter/message.py).
2. Found by tools/fuzz/fuzz_hss.py (atheris, 3.3k inputs into the first run): an AIR whose
   Requested-EUTRAN-Authentication-Info has reserved flag bits set and malformed content. The
   peer layer answered 3009 with a Failed-AVP copying that content, so the *answer* did not
   decode (5014 inside Failed-AVP): kmed's own Diameter client closes a connection on an
   undecodable answer. Grouped AVPs nested beyond MAX_DEPTH had the same problem (their
   content, one level deeper in Failed-AVP, is too deep again). Fix: a Grouped AVP in Failed-AVP
   is its header alone (RFC 6733 §7.1.5 allows it) for 3009 and for the nesting error.
3. Found by tools/fuzz/fuzz_hss.py (atheris, after 209k inputs of the second run): a ULR with a
   Proxy-Info AVP whose content is not a sequence of AVPs, and a later AVP overrunning the
   message. The error answer (5014, from the header and the AVPs read before the error)
   copied the request's Proxy-Info as RFC 6733 §6.2 asks, malformed content included, so the
   answer did not decode. Fix: ``Message.answer_to`` copies only Proxy-Info AVPs whose content
   is well formed.
"""

from __future__ import annotations

import pytest

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import MAX_DEPTH, Avp, DecodeError, Message
from kmed.diameter.node import LocalNode
from kmed.diameter.transport import _unable
from tests.fuzz.hss_pipeline import close_hss, open_hss

#: 1. AIR, hop-by-hop 0x1234, end-to-end 0x5678, one AVP: Session-Id = 0xFF (not UTF-8).
BAD_SESSION_ID_ONLY = bytes.fromhex(
    "01000020c000013e0100002300001234000056780000010740000009ff000000")
#: 1'. The same with a usable AIR around it: Session-Id "mme;" + C3 28 (a broken UTF-8 sequence),
#: User-Name 001010000000001, Visited-PLMN-Id 00F110.
BAD_SESSION_ID_AIR = bytes.fromhex(
    "0100004cc000013e010000230000123400005678000001074000000e6d6d653bc32800000000000140000017"
    "303031303130303030303030303031000000057fc000000f000028af00f11000")


def _session_avp(msg: Message) -> Avp | None:
    return next((a for a in msg.raw_avps() if (a.code, a.vendor) == (263, 0)), None)


@pytest.mark.parametrize(("octets", "expected"), [
    (BAD_SESSION_ID_ONLY, (0, d.DIAMETER_MISSING_AVP)),
    (BAD_SESSION_ID_AIR, (0, d.DIAMETER_SUCCESS)),
], ids=["session-id-only", "whole-air"])
def test_1_air_with_a_session_id_that_is_not_utf8_is_answered(octets: bytes, expected: tuple[int, int]) -> None:
    req = codec.decode(octets)
    with pytest.raises(DecodeError):
        req.get("Session-Id")
    hss = open_hss()
    try:
        (answer,) = hss.serve(octets)
        assert hss.requests == 1 and hss.peer.is_open
    finally:
        close_hss(hss)
    assert answer.result() == expected
    assert (answer.hop_by_hop, answer.end_to_end) == (0x1234, 0x5678)
    assert _session_avp(answer) == _session_avp(req), "the Session-Id is not echoed as received"
    if expected == (0, d.DIAMETER_SUCCESS):
        assert answer.group("Authentication-Info") is not None


def test_1_the_transport_fallback_answer_survives_it_too() -> None:
    req = codec.decode(BAD_SESSION_ID_ONLY)
    answer = codec.decode(codec.encode(_unable(req, LocalNode("hss.localdomain", "localdomain"),
                                               d.DIAMETER_UNABLE_TO_COMPLY)))
    assert answer.result_code() == d.DIAMETER_UNABLE_TO_COMPLY and _session_avp(answer) == _session_avp(req)


#: 2. As received by the fuzzed HSS (224-octet AIR, then 4 octets that break the framing).
GROUPED_WITH_RESERVED_BITS = bytes.fromhex(
    "010000e0c067013f010000230000000100000001000001074000000d6d6d653b31ffff0000000108400000176d6d652e"
    "6c6f63616c646f6d61696e0000000128400000136c6f63616c646f6d61696e000000011b400000136c6f63616c646f"
    "6d61696e000000000140000017303031303130303030303030303031000000057fc000000f000028af00f1100000000"
    "5809c00001c000028af000000c005000000108228af000000010000000400000000000000048000001000007ed90000"
    "000100000579c0000028000028af0000057ac000001b000028af30303030303035343237303238343900")


def test_2_failed_avp_of_a_grouped_avp_with_reserved_bits_keeps_the_answer_decodable() -> None:
    hss = open_hss()
    try:
        answers = hss.serve(GROUPED_WITH_RESERVED_BITS)  # every answer is decoded (validated) here
    finally:
        close_hss(hss)
    (answer,) = answers
    assert answer.result_code() == d.DIAMETER_INVALID_AVP_BITS
    failed = answer.group("Failed-AVP")
    assert failed is not None
    (avp,) = failed.raw_avps()
    assert (avp.code, avp.vendor, avp.data) == (1408, d.VENDOR_3GPP, b"")  # named by its header


def test_2_failed_avp_of_a_group_nested_too_deep_keeps_the_answer_decodable() -> None:
    inner: list[object] = [("User-Name", "001010000000001")]
    for _ in range(4 * MAX_DEPTH):  # the group found too deep holds many more levels
        inner = [("Failed-AVP", inner)]
    octets = codec.encode(Message.request("AIR", d.APP_S6A, [("Session-Id", "mme;3"), *inner],
                                          hop_by_hop=3, end_to_end=3))
    hss = open_hss()
    try:
        (answer,) = hss.serve(octets)
    finally:
        close_hss(hss)
    assert answer.result_code() == d.DIAMETER_INVALID_AVP_VALUE and answer.group("Failed-AVP") is not None


#: 3. As received by the fuzzed HSS: a ULR with Proxy-Info = "localdomain" (not AVPs) and a
#: KME-Token AVP overrunning the message.
MALFORMED_PROXY_INFO = bytes.fromhex(
    "01000124c000013c000000000000000200000002000001074000000d6d6d653b3200000000000108400000176d6d652e"
    "6c6f63616c646f6d61696e0000000128400000136c6f63616c646f6d61696e000000011c400000136c6f63616c646f6d"
    "61696e000000000140000017303031303130303030303030303031000000040880000010000028af000003ec0000057d"
    "c0000010000028af000000220000057fc000000f000028af00f1100000000579c0000028000028af0000057ac0000001"
    "00000000000013ffff383033353634333830390000000007800000532c00007ed966f738e80bd898237d450e45f983cd"
    "4ef1963f2535a6af67171b03ed33ad101e000000098000002400007ed94c5f6812125b01fd2c7e0d76ed5db9c8080006"
    "614cac76b67c")


def test_3_malformed_proxy_info_is_not_copied_into_the_answer() -> None:
    hss = open_hss()
    try:
        (answer,) = hss.serve(MALFORMED_PROXY_INFO)  # decoded (validated) here
    finally:
        close_hss(hss)
    assert answer.result_code() == d.DIAMETER_INVALID_AVP_LENGTH
    assert "Proxy-Info" not in answer
    # a well-formed Proxy-Info is still echoed (RFC 6733 §6.2)
    proxy = ("Proxy-Info", [("Proxy-Host", "relay.localdomain"), ("Proxy-State", b"\x01\x02")])
    req = codec.decode(codec.encode(Message.request("ULR", d.APP_S6A, [("Session-Id", "s"), proxy],
                                                    hop_by_hop=1, end_to_end=1)))
    echoed = codec.decode(codec.encode(Message.answer_to(req, [("Result-Code", 2001)])))
    assert echoed.group("Proxy-Info") is not None and echoed.group("Proxy-Info").get("Proxy-State") == b"\x01\x02"
