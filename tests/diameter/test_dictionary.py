"""The Diameter table: internal consistency, the pinned KME codes, and a cross-check of every
AVP against python-diameter's independent dictionary (deviations listed with their source)."""

from __future__ import annotations

import pytest
from diameter.message.avp.avp import get_avp_dictionary_entry

from kmed.diameter import dictionary as d

#: Where kmed's table knowingly differs from python-diameter 0.9 (name -> the spec that decides).
PYTHON_DIAMETER_DEVIATIONS = {
    # RFC 6733 §4.5 table: Result-Code and Inband-Security-Id are Unsigned32.
    "Result-Code": "type", "Inband-Security-Id": "type",
    # RFC 6733 §4.5: the M bit MUST NOT be set on these.
    "Firmware-Revision": "M", "Product-Name": "M", "Error-Message": "M", "Error-Reporting-Host": "M",
    # TS 29.229 §6.3.29-31: V must, M may; kmed sends M clear (so peers can ignore them).
    "Supported-Features": "M", "Feature-List-ID": "M", "Feature-List": "M",
    # TS 29.212 §5.3.31: RAT-Type V must, M must not.
    "RAT-Type": "M",
}
_PD_TYPES = {  # python-diameter's class names for kmed's types
    "OctetString": {"AvpOctetString"}, "UTF8String": {"AvpUtf8String"},
    "DiameterIdentity": {"AvpOctetString"}, "DiameterURI": {"AvpOctetString"},
    "Unsigned32": {"AvpUnsigned32"}, "Unsigned64": {"AvpUnsigned64"}, "Integer32": {"AvpInteger32"},
    "Integer64": {"AvpInteger64"}, "Enumerated": {"AvpInteger32"}, "Grouped": {"AvpGrouped"},
    "Address": {"AvpAddress"}, "Time": {"AvpTime"}, "Float32": {"AvpFloat32"}, "Float64": {"AvpFloat64"},
}


@pytest.mark.parametrize("avp", [a for a in d.AVPS if a.vendor != d.VENDOR_KMED], ids=lambda a: a.name)
def test_standard_avps_agree_with_python_diameter(avp: d.AvpDef) -> None:
    entry = get_avp_dictionary_entry(avp.code, avp.vendor)
    assert entry is not None, f"{avp.name} ({avp.vendor}, {avp.code}) unknown to python-diameter"
    assert entry["name"] == avp.name
    deviation = PYTHON_DIAMETER_DEVIATIONS.get(avp.name)
    if deviation != "type":
        assert entry["type"].__name__ in _PD_TYPES[avp.type.value]
    if deviation != "M":
        assert bool(entry.get("mandatory")) == avp.mandatory


def test_kme_avps_are_pinned() -> None:
    pinned = {"KME-Check": (1, "OctetString"), "KME-Check-Identity": (2, "OctetString"),
              "KME-Status": (3, "Enumerated"), "KME-Request": (4, "Unsigned32"), "Encrypted-KME": (5, "OctetString"),
              "KME-Scheme": (6, "Enumerated"), "KME": (7, "OctetString"), "KME-Binding": (8, "Enumerated"),
              "KME-Token": (9, "OctetString")}
    kme = {a.name: a for a in d.AVPS if a.vendor == d.VENDOR_KMED}
    assert {n: (a.code, a.type.value) for n, a in kme.items()} == pinned
    for a in kme.values():
        assert a.flags == d.AVP_FLAG_V  # V set, M clear: standard peers and relays ignore them
    assert dict(d.avp("KME-Status").values) == {0: "MATCH", 1: "PROVISIONING_REQUIRED"}
    assert dict(d.avp("KME-Scheme").values) == {1: "ECIES_PROFILE_A", 2: "ECIES_PROFILE_B"}
    assert dict(d.avp("KME-Binding").values) == {0: "NOT_BOUND", 1: "BOUND_TO_CURRENT", 2: "BOUND_TO_NEW"}


def test_constants_and_lookups() -> None:
    assert (d.APP_S6A, d.VENDOR_3GPP, d.VENDOR_KMED) == (16777251, 10415, 32473)
    assert d.command("AIR") is d.command(318) is d.command("Authentication-Information-Answer")
    assert d.command("ULA").code == 316 and d.command("CEA").application_id == 0
    assert d.command_abbrev(318, True) == "AIR" and d.command_abbrev(999, False) == "cmd-999-A"
    with pytest.raises(KeyError):
        d.command("XYZ")
    assert d.avp_by_code(1407, d.VENDOR_3GPP) is d.avp("Visited-PLMN-Id")
    assert d.avp_by_code(1407) is None and d.avp_by_code(1, d.VENDOR_KMED) is d.avp("KME-Check")
    with pytest.raises(KeyError):
        d.avp("Not-An-Avp")


def test_result_codes_depend_on_the_vendor() -> None:
    assert d.DIAMETER_AVP_UNSUPPORTED == d.DIAMETER_ERROR_USER_UNKNOWN == 5001
    assert d.result_name(5001, 0) == "DIAMETER_AVP_UNSUPPORTED"
    assert d.result_name(5001, d.VENDOR_3GPP) == "DIAMETER_ERROR_USER_UNKNOWN"
    assert d.result_name(5004, 0) == "DIAMETER_INVALID_AVP_VALUE"
    assert d.result_name(5004, d.VENDOR_3GPP) == "DIAMETER_ERROR_ROAMING_NOT_ALLOWED"
    assert d.result_name(4181, d.VENDOR_3GPP) == "DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE"
    kmed_codes = {r.code: r.name for r in d.RESULT_CODES.values() if r.vendor == d.VENDOR_KMED}
    assert kmed_codes == {5901: "DIAMETER_ERROR_KME_DEVICE_UNKNOWN", 5902: "DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED",
                          5903: "DIAMETER_ERROR_KME_TOKEN_INVALID", 5904: "DIAMETER_ERROR_KME_CHECK_MISSING"}
    assert d.is_success(2001) and not d.is_success(5001) and d.is_protocol_error(3010)
    # RFC 6733 §7.1 base codes
    base = {c for (v, c) in d.RESULT_CODES if v == 0}
    assert base >= {2001, *range(3001, 3011), 4001, 4002, 4003, *range(5001, 5018)}


def test_table_invariants() -> None:
    for a in d.AVPS:
        assert a.flags & d.AVP_FLAG_V == (d.AVP_FLAG_V if a.vendor else 0)
        assert a.ref, a.name
        if a.values:
            assert a.type in (d.AvpType.ENUMERATED, d.AvpType.UNSIGNED32, d.AvpType.INTEGER32), a.name
    for c in d.COMMANDS:
        assert c.application_id in d.APPLICATIONS
