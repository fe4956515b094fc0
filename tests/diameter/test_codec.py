"""kmed.diameter codec and Message API: building, encoding, decoding, reading."""

from __future__ import annotations

import datetime

import pytest

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Avp, AvpGroup, DecodeError, Message


def _air() -> Message:
    return Message.request("AIR", d.APP_S6A, [
        ("Session-Id", "mme.localdomain;1;2"),
        ("Auth-Session-State", d.AUTH_SESSION_STATE_NO_STATE_MAINTAINED),
        ("Origin-Host", "mme.localdomain"),
        ("Origin-Realm", "localdomain"),
        ("Destination-Realm", "localdomain"),
        ("User-Name", "001010000000001"),
        ("Visited-PLMN-Id", bytes.fromhex("00f110")),
        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1),
                                                  ("Immediate-Response-Preferred", 1)]),
        ("KME-Check", bytes(range(16))),
        ("KME-Check-Identity", bytes.fromhex("0910100000000010")),  # EPS mobile identity: IMSI
    ], hop_by_hop=0x11223344, end_to_end=0x55667788)


def test_request_header_and_roundtrip() -> None:
    air = _air()
    assert air.is_request and air.is_proxiable and not air.is_error and not air.retransmitted
    assert air.command_code == 318 and air.application_id == d.APP_S6A and air.name == "AIR"
    wire = codec.encode(air)
    assert codec.frame_length(wire) == len(wire)
    got = codec.decode(wire)
    assert (got.command_code, got.flags, got.application_id, got.hop_by_hop, got.end_to_end) == (
        318, d.FLAG_R | d.FLAG_P, d.APP_S6A, 0x11223344, 0x55667788)
    assert got.avps == air.avps
    assert got.get("User-Name") == "001010000000001"
    assert got.get("KME-Check") == bytes(range(16))
    assert got.get("Re-Synchronization-Info") is None
    assert got.get("Re-Synchronization-Info", b"") == b""
    assert got.group("Requested-EUTRAN-Authentication-Info").get("Number-Of-Requested-Vectors") == 1  # type: ignore[union-attr]
    assert got.group("Terminal-Information") is None
    assert "KME-Check" in got and "KME" not in got
    assert got.unknown_mandatory == []
    assert codec.encode(got) == wire


def test_command_given_by_any_name_or_code() -> None:
    for cmd in ("AIR", "AIA", "Authentication-Information", "Authentication-Information-Request", 318):
        assert Message.request(cmd, None, []).command_code == 318
    cer = Message.request("CER", None, [])
    assert cer.application_id == 0 and not cer.is_proxiable
    with pytest.raises(KeyError):
        Message.request("NOPE", None, [])


def test_answer_to_copies_ids_and_session_first() -> None:
    req = codec.decode(codec.encode(_air()))
    req.retransmitted = True
    ans = Message.answer_to(req, [("Result-Code", d.DIAMETER_SUCCESS), ("Origin-Host", "hss.localdomain")])
    assert not ans.is_request and ans.is_proxiable and not ans.retransmitted and not ans.is_error
    assert (ans.command_code, ans.application_id, ans.hop_by_hop, ans.end_to_end) == (
        318, d.APP_S6A, 0x11223344, 0x55667788)
    assert ans.avps[0] == ("Session-Id", "mme.localdomain;1;2")
    assert ans.result_code() == 2001 and ans.result() == (0, 2001)
    err = Message.answer_to(req, [("Origin-Host", "h"), ("Session-Id", "x"), ("Result-Code", 3001)], error=True)
    assert err.is_error and err.avps[0] == ("Session-Id", "x") and err.get_all("Session-Id") == ["x"]


def test_answer_copies_proxy_info_in_order() -> None:
    req = _air()
    req.append("Proxy-Info", [("Proxy-Host", "relay1"), ("Proxy-State", b"s1")])
    req.append("Proxy-Info", [("Proxy-Host", "relay2"), ("Proxy-State", b"s2")])
    req = codec.decode(codec.encode(req))
    ans = codec.decode(codec.encode(Message.answer_to(req, [("Result-Code", 2001)])))
    assert [g.get("Proxy-Host") for g in ans.groups("Proxy-Info")] == ["relay1", "relay2"]


def test_experimental_result_vendor_decides_the_meaning() -> None:
    req = _air()
    ans = codec.decode(codec.encode(Message.answer_to(req, [
        ("Experimental-Result", [("Vendor-Id", d.VENDOR_3GPP),
                                 ("Experimental-Result-Code", d.DIAMETER_ERROR_USER_UNKNOWN)])])))
    assert ans.result_code() is None
    assert ans.experimental_result() == (10415, 5001)
    assert d.result_name(*reversed(ans.experimental_result())) == "DIAMETER_ERROR_USER_UNKNOWN"  # type: ignore[misc]
    assert d.result_name(5001) == "DIAMETER_AVP_UNSUPPORTED"
    assert d.result_name(5001, d.VENDOR_3GPP) == "DIAMETER_ERROR_USER_UNKNOWN"
    assert d.result_name(5901, d.VENDOR_KMED) == "DIAMETER_ERROR_KME_DEVICE_UNKNOWN"
    assert d.result_name(5901) == "0:5901"


def test_aia_with_vector_reads_nested_groups() -> None:
    vector = [("Item-Number", 1), ("RAND", b"r" * 16), ("XRES", b"x" * 8), ("AUTN", b"a" * 16),
              ("KASME", b"k" * 32), ("KME-Binding", d.KME_BINDING_BOUND_TO_CURRENT)]
    aia = Message.answer_to(_air(), [("Result-Code", 2001), ("Authentication-Info", [("E-UTRAN-Vector", vector)]),
                                     ("KME-Status", d.KME_STATUS_MATCH)])
    got = codec.decode(codec.encode(aia))
    info = got.group("Authentication-Info")
    assert isinstance(info, AvpGroup)
    ev = info.group("E-UTRAN-Vector")
    assert ev is not None and ev.get("KASME") == b"k" * 32 and ev.get("KME-Binding") == 1
    assert info.get("E-UTRAN-Vector") == vector
    assert got.get("KME-Status") == 0
    # the same reads work on the built message
    assert aia.group("Authentication-Info").group("E-UTRAN-Vector").get("RAND") == b"r" * 16  # type: ignore[union-attr]


def test_unknown_avps_are_kept_raw_and_reported_when_mandatory() -> None:
    msg = _air()
    msg.append_avp((4242, 0, d.AVP_FLAG_M, b"abc"))
    msg.append_avp(Avp(77, 99999, 0, b"\x01\x02\x03\x04\x05"))
    msg.append_avp((4243, 0, 0, b""))
    wire = codec.encode(msg)
    got = codec.decode(wire)
    assert got.unknown_mandatory == [Avp(4242, 0, d.AVP_FLAG_M, b"abc")]
    raws = [a for a in got.avps if isinstance(a, Avp)]
    assert raws == [Avp(4242, 0, 0x40, b"abc"), Avp(77, 99999, 0x80, b"\x01\x02\x03\x04\x05"), Avp(4243, 0, 0, b"")]
    assert codec.encode(got) == wire
    got.set("Origin-Host", "other.localdomain")  # a change keeps the unknown AVPs
    again = codec.decode(codec.encode(got))
    assert again.get("Origin-Host") == "other.localdomain"
    assert [a for a in again.avps if isinstance(a, Avp)] == raws


def test_unknown_mandatory_inside_a_group_is_reported() -> None:
    msg = _air()
    msg.append("Terminal-Information", [("IMEI", "356938035643809"), Avp(5555, d.VENDOR_3GPP, d.AVP_FLAG_M, b"z")])
    got = codec.decode(codec.encode(msg))
    assert got.unknown_mandatory == [Avp(5555, d.VENDOR_3GPP, 0xC0, b"z")]


def test_mutators() -> None:
    msg = _air()
    assert msg.remove("KME-Check") == 1 and "KME-Check" not in msg
    msg.insert(1, "Destination-Host", "hss.localdomain")
    assert msg.avps[1] == ("Destination-Host", "hss.localdomain")
    msg.set("Destination-Host", "hss2.localdomain")
    assert msg.get_all("Destination-Host") == ["hss2.localdomain"]
    with pytest.raises(KeyError):
        msg.append("No-Such-Avp", 1)


def test_types_roundtrip() -> None:
    t = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    t2 = datetime.datetime(2040, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)  # after the NTP era wrap
    items = [("Host-IP-Address", "127.0.0.1"), ("Host-IP-Address", "::1"),
             ("Host-IP-Address", "2001:db8::1:0:0:1"), ("Origin-State-Id", 0xFFFFFFFF),
             ("Disconnect-Cause", 2), ("Product-Name", "kmed ü"), ("MSISDN", b"\x21\x43")]
    msg = Message.request("CER", None, items)
    got = codec.decode(codec.encode(msg))
    assert got.get_all("Host-IP-Address") == ["127.0.0.1", "::1", "2001:db8::1:0:0:1"]
    assert got.avps == items
    from kmed.diameter.codec import _to_ntp
    from kmed.diameter.message import READERS, _time  # Time has no AVP in the table: check the type itself
    assert READERS[d.AvpType.TIME] is _time
    for when in (t, t2):
        raw = _to_ntp(when).to_bytes(4, "big")
        assert _time(raw, 0, 4) == when


@pytest.mark.parametrize(("name", "value"), [
    ("Origin-State-Id", -1), ("Origin-State-Id", 1 << 32), ("Origin-State-Id", "1"),
    ("User-Name", b"bytes"), ("KME", "str"), ("Host-IP-Address", "not-an-ip"),
    ("Origin-Host", "hôst"), ("Requested-EUTRAN-Authentication-Info", 5),
])
def test_encode_errors_name_the_avp_not_the_value(name: str, value: object) -> None:
    with pytest.raises(codec.EncodeError) as info:
        codec.encode(Message.request("AIR", None, [(name, value)]))
    assert name in str(info.value)
    assert repr(value) not in str(info.value)


def test_bad_value_read_is_5004_with_failed_avp() -> None:
    msg = Message.request("AIR", None, [("Session-Id", "s"), Avp(1, 0, d.AVP_FLAG_M, b"\xff\xfe")])
    got = codec.decode(codec.encode(msg))
    with pytest.raises(DecodeError) as info:
        got.get("User-Name")
    assert info.value.result_code == d.DIAMETER_INVALID_AVP_VALUE
    assert info.value.failed_avp == Avp(1, 0, 0x40, b"\xff\xfe")
    bad_addr = Message.request("CER", None, [Avp(257, 0, 0x40, b"\x00\x08123")])
    with pytest.raises(DecodeError) as info:
        codec.decode(codec.encode(bad_addr)).get("Host-IP-Address")
    assert info.value.result_code == 5004


def test_secret_values_stay_out_of_reprs() -> None:
    kme = bytes.fromhex("aa" * 32)
    msg = Message.request("ULR", None, [("KME", kme)])
    got = codec.decode(codec.encode(msg))
    assert "aa" * 4 not in repr(got) + repr(got.raw("KME"))


def test_pre_encoded_avps_are_copied_and_readable() -> None:
    constant = codec.encode_avps([("Origin-Host", "hss.localdomain"), ("Origin-Realm", "localdomain"),
                                  ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP),
                                                                      ("Auth-Application-Id", d.APP_S6A)])])
    ans = Message.answer_to(_air(), [constant, ("Result-Code", 2001)])
    assert ans.get("Origin-Realm") == "localdomain" and "Origin-Host" in ans
    assert ans.group("Vendor-Specific-Application-Id").get("Vendor-Id") == d.VENDOR_3GPP  # type: ignore[union-attr]
    got = codec.decode(codec.encode(ans))
    assert got.avps == ans.avps
    assert [n for n, _ in got.avps] == ["Session-Id", "Origin-Host", "Origin-Realm",
                                        "Vendor-Specific-Application-Id", "Result-Code"]
    ans.set("Origin-Host", "other")  # mutators split the pre-encoded block
    assert codec.decode(codec.encode(ans)).get("Origin-Host") == "other"
    with pytest.raises(codec.EncodeError):
        codec.encode(Message.request("AIR", None, [b"\x00\x00\x01"]))


def test_identical_groups_in_different_messages() -> None:
    from kmed.diameter import message as m

    m._SHARED_GROUPS.clear()
    weird = [("Number-Of-Requested-Vectors", 2), Avp(7777, d.VENDOR_3GPP, d.AVP_FLAG_M, b"q")]
    one = codec.decode(codec.encode(Message.request("AIR", None, [("Requested-EUTRAN-Authentication-Info", weird)])))
    two = codec.decode(codec.encode(Message.request(
        "AIR", None, [("User-Name", "x"), ("Requested-EUTRAN-Authentication-Info", weird)])))
    assert one.unknown_mandatory == two.unknown_mandatory == [Avp(7777, d.VENDOR_3GPP, 0xC0, b"q")]
    for msg in (one, two):
        assert msg.group("Requested-EUTRAN-Authentication-Info").get("Number-Of-Requested-Vectors") == 2  # type: ignore[union-attr]
    assert len(m._SHARED_GROUPS) == 1
    for i in range(m.SHARED_GROUPS_MAX + 5):  # the table stays bounded
        codec.decode(codec.encode(Message.request("AIR", None, [("Terminal-Information", [("IMEI", str(i))])])))
    assert len(m._SHARED_GROUPS) <= m.SHARED_GROUPS_MAX
    big = [("IMEI", "9" * (m.SHARED_GROUP_MAX + 1))]  # too large to share: still read correctly
    got = codec.decode(codec.encode(Message.request("AIR", None, [("Terminal-Information", big)])))
    assert got.get("Terminal-Information") == big


def test_pick_reads_like_get_and_group_on_decoded_and_built_messages() -> None:
    built = _air()
    names = ("KME-Request", "User-Name", "Visited-PLMN-Id", "Requested-EUTRAN-Authentication-Info", "KME-Check")
    for msg in (built, codec.decode(codec.encode(built))):
        kme_request, user, plmn, info, check = msg.pick(*names)
        assert kme_request is None
        assert (user, plmn, check) == (msg.get("User-Name"), msg.get("Visited-PLMN-Id"), msg.get("KME-Check"))
        assert isinstance(info, AvpGroup)
        assert info.pick("Number-Of-Requested-Vectors", "Re-Synchronization-Info") == (1, None)


def test_pick_raises_as_get_does_for_bad_values() -> None:
    bad_utf8 = Message.request("AIR", None, [("Session-Id", "s"), Avp(1, 0, d.AVP_FLAG_M, b"\xff\xfe")])
    with pytest.raises(DecodeError) as info:
        codec.decode(codec.encode(bad_utf8)).pick("Session-Id", "User-Name")
    assert info.value.result_code == d.DIAMETER_INVALID_AVP_VALUE
    short = Message.request("AIR", None, [("Session-Id", "s"), Avp(1408, d.VENDOR_3GPP, 0xC0, b"\x00\x01")])
    with pytest.raises(DecodeError) as info:  # Grouped with a 2-octet body is not a group at all
        codec.decode(codec.encode(short)).pick("Requested-EUTRAN-Authentication-Info")
    unsigned = Message.request("AIR", None, [("Session-Id", "s"), Avp(277, 0, 0x40, b"\x00\x01")])
    with pytest.raises(DecodeError) as info:  # Auth-Session-State is Enumerated: 4 octets
        codec.decode(codec.encode(unsigned)).pick("Auth-Session-State")
    assert info.value.result_code == d.DIAMETER_INVALID_AVP_LENGTH
