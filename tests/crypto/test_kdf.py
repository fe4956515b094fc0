"""TS 33.220 KDF, KASME (TS 33.401 A.2), NAS keys (A.7), PLMN identity encoding, FC values."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from kmed.crypto import kdf as kdf_mod
from kmed.crypto.kdf import FC_KASME, FC_NAS_ALG, fc_octets, kasme, kdf, nas_keys, plmn_id
from kmed.crypto.milenage import milenage, opc_from_op
from tests.crypto.vectors import KASME_VECTOR

h = bytes.fromhex


def test_kdf_string_layout() -> None:
    """S = FC || P0 || L0 || P1 || L1 (TS 33.220 B.2.0), checked against HMAC-SHA-256 directly."""
    key = bytes(range(32))
    s = b"\x10" + b"\x02\xf8\x59" + b"\x00\x03" + b"ABCDEF" + b"\x00\x06"
    assert kdf(key, 0x10, b"\x02\xf8\x59", b"ABCDEF") == hmac.new(key, s, hashlib.sha256).digest()


def test_kdf_two_octet_fc() -> None:
    key = bytes(32)
    s = b"\xff\xf0" + b"x" + b"\x00\x01"
    assert kdf(key, 0xFFF0, b"x") == hmac.new(key, s, hashlib.sha256).digest()
    assert fc_octets(0x15) == b"\x15"
    assert fc_octets(0xFF01) == b"\xff\x01"


@pytest.mark.parametrize("fc", [0xFF, 0x100, 0xFEFF, 0x10000, -1])
def test_kdf_rejects_bad_fc(fc: int) -> None:
    with pytest.raises(ValueError, match=r"^fc "):
        kdf(bytes(32), fc)


def test_kdf_rejects_long_parameter() -> None:
    with pytest.raises(ValueError, match=r"^P1 "):
        kdf(bytes(32), 0x10, b"a", bytes(0x10000))


def test_kasme_public_vector() -> None:
    """KASME of a vector computed by another implementation (Magma/OpenAirInterface; see vectors.py)."""
    v = KASME_VECTOR
    opc = opc_from_op(h(str(v["k"])), h(str(v["op"])))
    assert opc == h(str(v["opc"]))
    sqn = int(v["sqn"]).to_bytes(6, "big")
    m = milenage(h(str(v["k"])), opc, h(str(v["rand"])), sqn, h(str(v["amf"])))
    assert m.res == h(str(v["xres"]))
    sqn_xor_ak = bytes(a ^ b for a, b in zip(sqn, m.ak, strict=True))
    assert kasme(m.ck, m.ik, h(str(v["plmn_id"])), sqn_xor_ak) == h(str(v["kasme"]))


def test_nas_keys_layout() -> None:
    """TS 33.401 A.7: the 128 least significant bits of KDF(KASME, 0x15, distinguisher, alg id)."""
    key = bytes(range(32))
    enc, integ = nas_keys(key, 2, 2)
    assert enc == kdf(key, FC_NAS_ALG, b"\x01", b"\x02")[16:]
    assert integ == kdf(key, FC_NAS_ALG, b"\x02", b"\x02")[16:]
    assert len(enc) == len(integ) == 16 and enc != integ
    assert nas_keys(key, 0, 2)[0] != enc


def test_nas_keys_bad_input() -> None:
    with pytest.raises(ValueError, match=r"^enc_alg "):
        nas_keys(bytes(32), 16, 2)
    with pytest.raises(ValueError, match=r"^int_alg "):
        nas_keys(bytes(32), 2, -1)
    with pytest.raises(ValueError, match=r"^kasme "):
        nas_keys(bytes(16), 2, 2)


@pytest.mark.parametrize(
    ("mcc", "mnc", "expected"),
    [
        ("001", "01", "00f110"),  # test PLMN 001/01
        ("208", "95", "02f859"),  # the PLMN of the KASME vector
        ("310", "410", "130014"),  # 3-digit MNC: MNC digit 3 in the high nibble of octet 2
        ("262", "01", "62f210"),
    ],
)
def test_plmn_id(mcc: str, mnc: str, expected: str) -> None:
    """TS 24.008 §10.5.1.3 layout (used by TS 24.301 §9.9.3.32 and TS 29.272 Visited-PLMN-Id)."""
    assert plmn_id(mcc, mnc) == h(expected)


@pytest.mark.parametrize(("mcc", "mnc", "name"), [("01", "01", "mcc"), ("001", "1", "mnc"), ("00a", "01", "mcc")])
def test_plmn_id_bad_input(mcc: str, mnc: str, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        plmn_id(mcc, mnc)


def test_kasme_bad_input() -> None:
    with pytest.raises(ValueError, match=r"^plmn_id "):
        kasme(bytes(16), bytes(16), bytes(4), bytes(6))
    with pytest.raises(ValueError, match=r"^sqn_xor_ak "):
        kasme(bytes(16), bytes(16), bytes(3), bytes(5))


def test_fc_values_distinct_and_in_one_place() -> None:
    """Every FC constant is distinct; the 3GPP ones have their allocated values."""
    fcs = {name: getattr(kdf_mod, name) for name in dir(kdf_mod) if name.startswith("FC_")}
    assert len(set(fcs.values())) == len(fcs)
    assert FC_KASME == 0x10 and FC_NAS_ALG == 0x15
    for name in ("FC_KME_CHECK", "FC_ME_RSP", "FC_KME_BIND"):
        fc_octets(fcs[name])  # encodable
