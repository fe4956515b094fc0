"""EPS-AKA helpers (TS 33.102 §6.3, TS 33.401 §6.1): vectors, AUTN check, AUTS round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.crypto.aka import MacFailure, check_autn, generate_eutran_vector, make_auts, verify_auts
from kmed.crypto.kdf import kasme, plmn_id
from kmed.crypto.milenage import milenage
from tests.crypto.vectors import KASME_VECTOR, MILENAGE_SETS

h = bytes.fromhex
PLMN = plmn_id("001", "01")


def _set(n: int) -> tuple[bytes, bytes, bytes, int]:
    s = MILENAGE_SETS[n]
    return h(s["k"]), h(s["opc"]), h(s["rand"]), int(s["sqn"], 16)


@pytest.mark.parametrize("n", [1, 2, 4])  # AMF separation bit already 1 in these sets
def test_vector_from_official_set(n: int) -> None:
    """AUTN = SQN xor AK || AMF || MAC-A and KASME = kdf.kasme of the MILENAGE outputs."""
    s = MILENAGE_SETS[n]
    k, opc, rand, sqn = _set(n)
    v = generate_eutran_vector(k, opc, sqn, h(s["amf"]), PLMN, rand=rand)
    conc = bytes(a ^ b for a, b in zip(h(s["sqn"]), h(s["f5"]), strict=True))
    assert v.autn == conc + h(s["amf"]) + h(s["f1"])
    assert v.xres == h(s["f2"]) and v.ck == h(s["f3"]) and v.ik == h(s["f4"]) and v.ak == h(s["f5"])
    assert v.kasme == kasme(h(s["f3"]), h(s["f4"]), PLMN, conc)
    assert v.sqn == sqn and v.rand == rand


def test_separation_bit_is_set() -> None:
    """TS 33.401 §6.1.2: E-UTRAN vectors carry AMF with the separation bit set."""
    k, opc, rand, sqn = _set(3)  # AMF 725c has it clear
    v = generate_eutran_vector(k, opc, sqn, h("725c"), PLMN, rand=rand)
    assert v.autn[6:8] == h("f25c")
    assert v.autn[8:] == milenage(k, opc, rand, sqn.to_bytes(6, "big"), h("f25c")).mac_a


def test_public_vector() -> None:
    v = KASME_VECTOR
    vec = generate_eutran_vector(
        h(str(v["k"])), h(str(v["opc"])), int(v["sqn"]), h(str(v["amf"])), h(str(v["plmn_id"])), rand=h(str(v["rand"]))
    )
    assert (vec.xres, vec.autn, vec.kasme) == (h(str(v["xres"])), h(str(v["autn"])), h(str(v["kasme"])))


@pytest.mark.parametrize("n", sorted(MILENAGE_SETS))
def test_check_autn_round_trip(n: int) -> None:
    k, opc, rand, sqn = _set(n)
    v = generate_eutran_vector(k, opc, sqn, b"\x80\x00", PLMN, rand=rand)
    r = check_autn(k, opc, rand, v.autn)
    assert (r.sqn, r.amf, r.res, r.ck, r.ik) == (sqn, b"\x80\x00", v.xres, v.ck, v.ik)


def test_check_autn_wrong_key_or_tampered() -> None:
    k, opc, rand, sqn = _set(1)
    v = generate_eutran_vector(k, opc, sqn, b"\x80\x00", PLMN, rand=rand)
    with pytest.raises(MacFailure):
        check_autn(bytes(16), opc, rand, v.autn)
    for i in range(16):
        bad = bytearray(v.autn)
        bad[i] ^= 0x01
        with pytest.raises(MacFailure):
            check_autn(k, opc, rand, bytes(bad))


@pytest.mark.parametrize("n", sorted(MILENAGE_SETS))
def test_auts_official(n: int) -> None:
    """AUTS = SQN_MS xor AK* || MAC-S with MAC-S = f1* at AMF 0000 (TS 33.102 §6.3.3)."""
    k, opc, rand, sqn = _set(n)
    s = MILENAGE_SETS[n]
    auts = make_auts(k, opc, rand, sqn)
    conc = bytes(a ^ b for a, b in zip(h(s["sqn"]), h(s["f5star"]), strict=True))
    assert auts == conc + milenage(k, opc, rand, h(s["sqn"]), bytes(2)).mac_s
    assert verify_auts(k, opc, rand, auts) == sqn


@settings(max_examples=30, deadline=None)
@given(
    k=st.binary(min_size=16, max_size=16),
    opc=st.binary(min_size=16, max_size=16),
    rand=st.binary(min_size=16, max_size=16),
    sqn=st.integers(0, 2**48 - 1),
    bit=st.integers(0, 14 * 8 - 1),
)
def test_auts_round_trip_and_bad_mac(k: bytes, opc: bytes, rand: bytes, sqn: int, bit: int) -> None:
    auts = make_auts(k, opc, rand, sqn)
    assert len(auts) == 14
    assert verify_auts(k, opc, rand, auts) == sqn
    bad = bytearray(auts)
    bad[bit // 8] ^= 0x80 >> (bit % 8)
    with pytest.raises(MacFailure):
        verify_auts(k, opc, rand, bytes(bad))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: generate_eutran_vector(bytes(16), bytes(16), 2**48, b"\x80\x00", PLMN), "sqn"),
        (lambda: generate_eutran_vector(bytes(16), bytes(16), -1, b"\x80\x00", PLMN), "sqn"),
        (lambda: generate_eutran_vector(bytes(16), bytes(16), 1, b"\x80", PLMN), "amf"),
        (lambda: generate_eutran_vector(bytes(16), bytes(16), 1, b"\x80\x00", b"\x00\xf1"), "plmn_id"),
        (lambda: generate_eutran_vector(bytes(16), bytes(16), 1, b"\x80\x00", PLMN, rand=bytes(8)), "rand"),
        (lambda: check_autn(bytes(16), bytes(16), bytes(16), bytes(15)), "autn"),
        (lambda: make_auts(bytes(16), bytes(16), bytes(16), 2**48), "sqn_ms"),
        (lambda: verify_auts(bytes(16), bytes(16), bytes(16), bytes(13)), "auts"),
        (lambda: verify_auts(bytes(12), bytes(16), bytes(16), bytes(14)), "k"),
    ],
)
def test_bad_input(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        call()  # type: ignore[operator]


def test_random_rand_when_not_given() -> None:
    k, opc, _, sqn = _set(1)
    a = generate_eutran_vector(k, opc, sqn, b"\x80\x00", PLMN)
    b = generate_eutran_vector(k, opc, sqn, b"\x80\x00", PLMN)
    assert a.rand != b.rand and len(a.rand) == 16
    assert "kasme" not in repr(a).replace("<keys redacted>", "") and a.kasme.hex() not in repr(a)
