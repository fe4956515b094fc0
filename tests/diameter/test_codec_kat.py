"""Known-answer test: an AIR written octet by octet from TS 29.272 §7.2.5 and RFC 6733 §3/§4.

The bytes below are typed by hand from the specifications (not produced by kmed); kmed and
python-diameter must both read them as the AVPs listed, and kmed must encode those AVPs to
exactly these bytes (including zero padding).
"""

from __future__ import annotations

from diameter.message import Message as PdMessage

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message

AIR_HEX = """
01 000100 c0 00013e 01000023 11223344 55667788
    version 1, length 256; flags R|P, command 318 (TS 29.272 §7.2.5); application 16777251;
    hop-by-hop, end-to-end
00000107 40 00001b 6d6d652e6c6f63616c646f6d61696e3b313b32 00
    Session-Id (263), M, length 27: "mme.localdomain;1;2" + 1 octet of padding
00000115 40 00000c 00000001
    Auth-Session-State (277) = NO_STATE_MAINTAINED (1)
00000108 40 000017 6d6d652e6c6f63616c646f6d61696e 00
    Origin-Host (264) "mme.localdomain"
00000128 40 000013 6c6f63616c646f6d61696e 00
    Origin-Realm (296) "localdomain"
0000011b 40 000013 6c6f63616c646f6d61696e 00
    Destination-Realm (283) "localdomain"
00000001 40 000017 303031303130303030303030303031 00
    User-Name (1) "001010000000001" (IMSI)
0000057f c0 00000f 000028af 00f110 00
    Visited-PLMN-Id (1407), V|M, vendor 10415, MCC 001 MNC 01 (TS 29.272 §7.3.9) + padding
00000580 c0 00002c 000028af
    Requested-EUTRAN-Authentication-Info (1408), length 44:
    00000582 c0 000010 000028af 00000001
        Number-Of-Requested-Vectors (1410) = 1
    00000584 c0 000010 000028af 00000000
        Immediate-Response-Preferred (1412) = 0
00000001 80 00001c 00007ed9 000102030405060708090a0b0c0d0e0f
    KME-Check (vendor 32473, V only), 16 octets
00000002 80 000014 00007ed9 0910100000000010
    KME-Check-Identity: EPS mobile identity (TS 24.301 §9.9.3.12) of IMSI 001010000000001
"""

AIR_ITEMS = [
    ("Session-Id", "mme.localdomain;1;2"),
    ("Auth-Session-State", 1),
    ("Origin-Host", "mme.localdomain"),
    ("Origin-Realm", "localdomain"),
    ("Destination-Realm", "localdomain"),
    ("User-Name", "001010000000001"),
    ("Visited-PLMN-Id", bytes.fromhex("00f110")),
    ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1),
                                              ("Immediate-Response-Preferred", 0)]),
    ("KME-Check", bytes(range(16))),
    ("KME-Check-Identity", bytes.fromhex("0910100000000010")),
]


def _air_bytes() -> bytes:
    hex_lines = [line.split() for line in AIR_HEX.strip().splitlines()]
    octets = "".join("".join(words) for words in hex_lines
                     if words and all(all(c in "0123456789abcdef" for c in w) for w in words))
    return bytes.fromhex(octets)


def test_hand_written_air_is_consistent() -> None:
    wire = _air_bytes()
    assert len(wire) == 256 == int.from_bytes(wire[1:4], "big")


def test_kmed_decodes_the_hand_written_air() -> None:
    msg = codec.decode(_air_bytes())
    assert (msg.name, msg.application_id, msg.hop_by_hop, msg.end_to_end) == ("AIR", d.APP_S6A, 0x11223344, 0x55667788)
    assert msg.is_request and msg.is_proxiable
    assert msg.avps == AIR_ITEMS
    assert msg.unknown_mandatory == []


def test_kmed_encodes_the_same_octets() -> None:
    msg = Message.request("AIR", d.APP_S6A, AIR_ITEMS, hop_by_hop=0x11223344, end_to_end=0x55667788)
    assert codec.encode(msg) == _air_bytes()


def test_python_diameter_reads_the_hand_written_air() -> None:
    pd = PdMessage.from_bytes(_air_bytes())
    assert pd.header.command_code == 318 and pd.header.application_id == 16777251
    assert pd.session_id == "mme.localdomain;1;2"
    assert pd.user_name == "001010000000001"
    assert pd.visited_plmn_id == bytes.fromhex("00f110")
    assert pd.origin_host == b"mme.localdomain"
    assert pd.requested_eutran_authentication_info.number_of_requested_vectors == 1
    unknown = [(a.code, a.vendor_id, a.payload) for a in pd.avps if a.vendor_id == d.VENDOR_KMED]
    assert unknown == [(1, 32473, bytes(range(16))), (2, 32473, bytes.fromhex("0910100000000010"))]
