"""kmed/cnn/s6a.py: requests built from pre-encoded pieces are octet for octet the requests built
from the dictionary names (TS 29.272 §7.2.3, §7.2.5 order); answers read into records or failures."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from kmed.cnn import s6a
from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message

PLMN = b"\x00\xf1\x10"
IMSI = "001010000000001"
IMEI = "35693803564380"
VSAI = ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)])
NO_STATE = ("Auth-Session-State", d.AUTH_SESSION_STATE_NO_STATE_MAINTAINED)


def named_air(kme_check: bytes | None, resync: bytes | None, kme_request: bool, sv: str | None) -> Message:
    info: list[Any] = [("Number-Of-Requested-Vectors", 1), ("Immediate-Response-Preferred", 1)]
    if resync is not None:
        info.append(("Re-Synchronization-Info", resync))
    avps: list[Any] = [("Session-Id", "mme;1;2"), VSAI, NO_STATE, ("User-Name", IMSI),
                       ("Requested-EUTRAN-Authentication-Info", info), ("Visited-PLMN-Id", PLMN)]
    if kme_check is not None:
        avps += [("KME-Check", kme_check), ("KME-Check-Identity", b"\x29\x10")]
    if kme_request:
        term: list[Any] = [("IMEI", IMEI)] + ([("Software-Version", sv)] if sv is not None else [])
        avps += [("KME-Request", d.KME_REQUEST_NEW), ("Terminal-Information", term)]
    return Message.request("AIR", d.APP_S6A, avps)


@pytest.mark.parametrize(("kme_check", "resync", "kme_request", "sv"),
                         list(itertools.product([None, bytes(range(16))], [None, bytes(30)], [False, True],
                                                [None, "07"])))
def test_air_octets_equal_the_named_build(kme_check: bytes | None, resync: bytes | None, kme_request: bool,
                                          sv: str | None) -> None:
    built = s6a.build_air("mme;1;2", IMSI, PLMN, kme_check=kme_check,
                          kme_check_identity=b"\x29\x10" if kme_check is not None else None, resync_info=resync,
                          kme_request=kme_request, imei=IMEI if kme_request else None, software_version=sv)
    assert codec.encode(built) == codec.encode(named_air(kme_check, resync, kme_request, sv))
    assert built.get("User-Name") == IMSI and built.get("Visited-PLMN-Id") == PLMN  # readable as built


@pytest.mark.parametrize(("initial", "imei", "kme"), list(itertools.product([False, True], [None, IMEI],
                                                                             [False, True])))
def test_ulr_octets_equal_the_named_build(initial: bool, imei: str | None, kme: bool) -> None:
    if kme and imei is None:
        with pytest.raises(ValueError):
            s6a.build_ulr("s;1", IMSI, PLMN, initial_attach=initial, imei=None, software_version=None,
                          kme=bytes(32), kme_token=b"t")
        return
    flags = d.ULR_S6A_S6D_INDICATOR | (d.ULR_INITIAL_ATTACH_INDICATOR if initial else 0)
    avps: list[Any] = [("Session-Id", "s;1"), VSAI, NO_STATE, ("User-Name", IMSI)]
    if imei is not None:
        avps.append(("Terminal-Information", [("IMEI", imei), ("Software-Version", "07")]))
    avps += [("RAT-Type", d.RAT_TYPE_EUTRAN), ("ULR-Flags", flags), ("Visited-PLMN-Id", PLMN)]
    if kme:
        avps += [("KME", bytes(32)), ("KME-Token", b"token")]
    built = s6a.build_ulr("s;1", IMSI, PLMN, initial_attach=initial, imei=imei, software_version="07",
                          kme=bytes(32) if kme else None, kme_token=b"token" if kme else None)
    assert codec.encode(built) == codec.encode(Message.request("ULR", d.APP_S6A, avps))


def answer(items: list[Any]) -> Message:
    req = s6a.build_air("mme;1;2", IMSI, PLMN)
    req.hop_by_hop = req.end_to_end = 7
    return codec.decode(codec.encode(Message.answer_to(req, [*items, ("Origin-Host", "hss"),
                                                             ("Origin-Realm", "r")])))


def vector(binding: int = d.KME_BINDING_NOT_BOUND) -> tuple[str, list[Any]]:
    return ("Authentication-Info", [("E-UTRAN-Vector", [("RAND", bytes(16)), ("XRES", bytes(8)),
                                                          ("AUTN", bytes(16)), ("KASME", bytes(32)),
                                                          ("KME-Binding", binding)])])


def test_read_aia_results() -> None:
    ok = s6a.read_aia(answer([("Result-Code", 2001), vector(), ("KME-Status", d.KME_STATUS_MATCH)]),
                      expect_kme=False)
    assert isinstance(ok, s6a.AiaResult) and ok.kme_status == d.KME_STATUS_MATCH and ok.vector.xres == bytes(8)
    er = ("Experimental-Result", [("Vendor-Id", d.VENDOR_3GPP), ("Experimental-Result-Code", 5001)])
    failed = s6a.read_aia(answer([er]), expect_kme=False)
    assert isinstance(failed, s6a.S6aFailure) and (failed.vendor, failed.code, failed.emm_cause) == (10415, 5001, 8)
    # an Experimental-Result without its code is not a result: Result-Code decides
    half = ("Experimental-Result", [("Vendor-Id", d.VENDOR_3GPP)])
    busy = s6a.read_aia(answer([half, ("Result-Code", 3004)]), expect_kme=False)
    assert isinstance(busy, s6a.S6aFailure) and (busy.vendor, busy.code, busy.emm_cause) == (0, 3004, 22)
    none = s6a.read_aia(answer([vector()]), expect_kme=False)
    assert isinstance(none, s6a.S6aFailure) and none.reason == "malformed"
    no_vector = s6a.read_aia(answer([("Result-Code", 2001)]), expect_kme=False)
    assert isinstance(no_vector, s6a.S6aFailure) and no_vector.reason == "malformed"
    # step 4 needs the KME AVPs and a vector bound to the new KME
    missing = s6a.read_aia(answer([("Result-Code", 2001), vector(d.KME_BINDING_BOUND_TO_NEW)]), expect_kme=True)
    assert isinstance(missing, s6a.S6aFailure) and missing.reason == "malformed"
    kme_items = [("Encrypted-KME", b"e" * 50), ("KME-Scheme", d.KME_SCHEME_ECIES_PROFILE_A), ("KME", bytes(32)),
                 ("KME-Token", b"tok")]
    full = s6a.read_aia(answer([("Result-Code", 2001), vector(d.KME_BINDING_BOUND_TO_NEW), *kme_items]),
                        expect_kme=True)
    assert isinstance(full, s6a.AiaResult) and full.kme_scheme == "A" and full.kme_token == b"tok"


def test_read_ula_results() -> None:
    ok = s6a.read_ula(answer([("Result-Code", 2001), ("ULA-Flags", 1)]))
    assert isinstance(ok, s6a.UlaResult) and ok.ula_flags == 1
    er = ("Experimental-Result", [("Vendor-Id", d.VENDOR_KMED), ("Experimental-Result-Code", 5903)])
    bad = s6a.read_ula(answer([er]))
    assert isinstance(bad, s6a.S6aFailure) and (bad.code, bad.emm_cause) == (5903, 17)


def test_daemon_answer_labels_never_raise() -> None:
    """The CNN daemon's metrics labels of an answer (peer, result); an answer whose AVPs do not
    read must not break the exchange (the state machine answers it #17)."""
    from kmed.cnn.daemon import _answer_labels

    assert _answer_labels(answer([("Result-Code", 2001)])) == ("hss", "2001")
    er = ("Experimental-Result", [("Vendor-Id", d.VENDOR_3GPP), ("Experimental-Result-Code", 5420)])
    assert _answer_labels(answer([er])) == ("hss", "10415:5420")
    assert _answer_labels(answer([])) == ("hss", "none")
    # An answer carrying both (RFC 6733 wants one): the label and the UE's cause come from
    # the same one, the vendor-specific result (Message.result).
    both = codec.decode(codec.encode(answer([("Result-Code", 2001), er])))
    failed = s6a.read_ula(both)
    assert _answer_labels(both) == ("hss", "10415:5420")
    assert isinstance(failed, s6a.S6aFailure) and (failed.vendor, failed.code) == (d.VENDOR_3GPP, 5420)
    req = s6a.build_air("mme;1;2", IMSI, PLMN)
    bad_host = Message.answer_to(req, [("Result-Code", 2001), (264, 0, 0x40, b"\xff\xfe"), ("Origin-Realm", "r")])
    assert _answer_labels(codec.decode(codec.encode(bad_host))) == ("?", "malformed")
    bad_rc = Message.answer_to(req, [(268, 0, 0x40, b"\x00\x00"), ("Origin-Host", "hss"), ("Origin-Realm", "r")])
    assert _answer_labels(codec.decode(codec.encode(bad_rc))) == ("hss", "malformed")
    assert isinstance(s6a.read_aia(codec.decode(codec.encode(bad_rc)), expect_kme=False), s6a.S6aFailure)
