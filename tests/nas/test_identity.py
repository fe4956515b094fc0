"""Mobile identities (TS 24.301 §9.9.3.12, TS 24.008 §10.5.1.4) and IE value helpers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.nas.identity import (
    TYPE_IMSI,
    _parse_digits,
    guti_identity,
    imei_identity,
    imeisv_identity,
    imsi_identity,
    parse_mobile_identity,
)
from kmed.nas.ies import (
    nas_security_algorithms,
    parse_nas_security_algorithms,
    parse_plmn_octets,
    parse_ue_security_capability,
    plmn_octets,
    tai_list,
    ue_network_capability,
)

DIGITS = "0123456789"


def test_imsi_known_answer() -> None:
    # odd count: digit 1 in bits 8-5 of octet 1 with odd/even 1 and type 1 (IMSI)
    assert imsi_identity("001010123456789") == bytes.fromhex("0910101032547698")
    # even count: filler 0xF in the last high nibble
    assert imsi_identity("00101012345678") == bytes.fromhex("01101010325476f8")


def test_guti_known_answer() -> None:
    # TS 24.301 figure 9.9.3.12.1: 0xF6, MCC/MNC (001/01), MME group id, MME code, M-TMSI
    assert guti_identity("001", "01", 0x8001, 0x02, 0xC0FFEE01) == bytes.fromhex("f6" "00f110" "8001" "02" "c0ffee01")
    assert guti_identity("310", "410", 1, 1, 1)[1:4] == bytes.fromhex("130014")


def test_imeisv_and_imei() -> None:
    assert imeisv_identity("3569380356438091") == bytes.fromhex("33" "65" "39" "08" "53" "46" "83" "90" "f1")
    assert imei_identity("356938035643809")[0] & 0x0F == 0x0A  # odd, type 2
    assert imei_identity("356938035643809", eps=True)[0] & 0x07 == 3


@settings(max_examples=100)
@given(st.text(DIGITS, min_size=6, max_size=15))
def test_imsi_roundtrip(imsi: str) -> None:
    assert parse_mobile_identity(imsi_identity(imsi)) == ("imsi", {"imsi": imsi})


@settings(max_examples=50)
@given(st.text(DIGITS, min_size=15, max_size=15), st.text(DIGITS, min_size=16, max_size=16))
def test_imei_imeisv_roundtrip(imei: str, imeisv: str) -> None:
    assert parse_mobile_identity(imei_identity(imei)) == ("imei", {"imei": imei})
    assert parse_mobile_identity(imei_identity(imei, eps=True)) == ("imei", {"imei": imei})
    assert parse_mobile_identity(imeisv_identity(imeisv)) == ("imeisv", {"imeisv": imeisv})


@settings(max_examples=100)
@given(
    st.text(DIGITS, min_size=3, max_size=3),
    st.text(DIGITS, min_size=2, max_size=3),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFF),
    st.integers(0, 0xFFFFFFFF),
)
def test_guti_roundtrip(mcc: str, mnc: str, group: int, code: int, tmsi: int) -> None:
    assert parse_mobile_identity(guti_identity(mcc, mnc, group, code, tmsi)) == (
        "guti",
        {"mcc": mcc, "mnc": mnc, "mme_group_id": group, "mme_code": code, "m_tmsi": tmsi},
    )


@settings(max_examples=300)
@given(st.binary(max_size=12))
def test_parse_random_raises_value_error_only(value: bytes) -> None:
    try:
        kind, fields = parse_mobile_identity(value)
    except ValueError:
        return
    assert kind in {"imsi", "imei", "imeisv", "guti", "tmsi"} and fields


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        bytes.fromhex("0910101032547698")[:-1] + b"\xa8",  # non-decimal digit
        bytes.fromhex("01101010"),  # even count without filler
        bytes.fromhex("f600f110"),  # GUTI too short
        bytes.fromhex("05"),  # type 5
    ],
)
def test_parse_malformed(bad: bytes) -> None:
    with pytest.raises(ValueError):
        parse_mobile_identity(bad)


def test_builders_refuse_bad_input() -> None:
    for call in (
        lambda: imsi_identity("12345"),
        lambda: imsi_identity("00101012345678a"),
        lambda: imei_identity("1234"),
        lambda: imeisv_identity("123"),
        lambda: guti_identity("001", "01", 0x10000, 0, 0),
        lambda: plmn_octets("01", "01"),
        lambda: tai_list("001", "01", []),
    ):
        with pytest.raises(ValueError):
            call()


def test_value_helpers() -> None:
    assert ue_network_capability((0, 1, 2), (1, 2)) == b"\xe0\x60"
    assert parse_ue_security_capability(b"\xe0\x60") == (frozenset({0, 1, 2}), frozenset({1, 2}))
    assert nas_security_algorithms(2, 2) == 0x22
    assert parse_nas_security_algorithms(0x21) == (2, 1)
    assert plmn_octets("001", "01") == b"\x00\xf1\x10"
    assert parse_plmn_octets(b"\x00\xf1\x10") == ("001", "01")
    assert parse_plmn_octets(plmn_octets("310", "410")) == ("310", "410")
    # TS 24.301 §9.9.3.33: type 00, 2 elements (coded 1), PLMN, TACs
    assert tai_list("001", "01", [1, 0x1234]) == bytes.fromhex("01" "00f110" "0001" "1234")


def _reference_digits(value: bytes) -> str:
    """TS 24.008 §10.5.1.4 read nibble by nibble (the layout, written plainly)."""
    nibbles = [value[0] >> 4]
    for octet in value[1:]:
        nibbles += [octet & 0xF, octet >> 4]
    if not (value[0] >> 3) & 1:
        if nibbles[-1] != 0xF:
            raise ValueError("filler")
        nibbles.pop()
    if any(n > 9 for n in nibbles):
        raise ValueError("digit")
    return "".join(map(str, nibbles))


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=9))
def test_digit_identities_read_as_the_layout_says(value: bytes) -> None:
    """IMSI/IMEI/IMEISV digits (read through a per-octet table) agree with a nibble-by-nibble
    reading, for any octets: same digits, or both refused."""
    value = bytes((value[0] & 0xF8 | TYPE_IMSI,)) + value[1:]
    try:
        expected: tuple[str, str] | None = ("ok", _reference_digits(value))
    except ValueError:
        expected = None
    try:
        got: tuple[str, str] | None = ("ok", _parse_digits(value))
    except ValueError:
        got = None
    assert got == expected


@settings(max_examples=300)
@given(st.binary(min_size=3, max_size=3))
def test_plmn_octets_read_as_the_layout_says(data: bytes) -> None:
    """parse_plmn_octets (which remembers the PLMNs it has read) equals the TS 24.008 §10.5.1.3
    reading, read twice; and round-trips through plmn_octets."""
    d = [data[0] & 0xF, data[0] >> 4, data[1] & 0xF, data[2] & 0xF, data[2] >> 4, data[1] >> 4]
    if any(x > 9 for x in d[:5]) or (d[5] > 9 and d[5] != 0xF):
        with pytest.raises(ValueError):
            parse_plmn_octets(data)
        return
    mnc = "".join(map(str, d[3:5])) + ("" if d[5] == 0xF else str(d[5]))
    expected = ("".join(map(str, d[:3])), mnc)
    assert parse_plmn_octets(data) == expected == parse_plmn_octets(data)
    assert plmn_octets(*expected) == data
