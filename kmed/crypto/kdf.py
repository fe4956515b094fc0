"""The 3GPP key derivation function and the EPS keys derived with it.

- :func:`kdf`: TS 33.220 Annex B.2.0, HMAC-SHA-256(Key, S) with
  S = FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 ‖ …, each Li the length of Pi in two octets.
- :func:`kasme`: TS 33.401 Annex A.2.
- :func:`nas_keys`: TS 33.401 Annex A.7.
- :func:`plmn_id`: the 3-octet PLMN identity (TS 24.301 §9.9.3.32 / TS 24.008 §10.5.1.3 layout,
  also TS 29.272 Visited-PLMN-Id), used as the serving network identity in A.2.

Every FC value used by kmed is defined here and nowhere else (choices and checks: docs/protocol.md).
"""

from __future__ import annotations

from kmed.crypto._check import octets, uint
from kmed.crypto._hmac import hmac_sha256

__all__ = [
    "ALG_TYPE_NAS_ENC",
    "ALG_TYPE_NAS_INT",
    "FC_KASME",
    "FC_KME_BIND",
    "FC_KME_CHECK",
    "FC_ME_RSP",
    "FC_NAS_ALG",
    "fc_octets",
    "kasme",
    "kasme_checked",
    "kdf",
    "nas_keys",
    "plmn_id",
]

# --- FC values -------------------------------------------------------------------------------
#: TS 33.401 A.2: KASME from CK ‖ IK.
FC_KASME = 0x10
#: TS 33.401 A.7: NAS/RRC/UP algorithm keys from KASME.
FC_NAS_ALG = 0x15
# kmed's own derivations (not 3GPP-allocated). They use the two-octet FC form of TS 33.220
# B.2.0 (FC1 = 0xFF ‖ FC2), written here as the 16-bit integer 0xFFxx; see docs/protocol.md
# for the allocation tables that were checked.
#: KME_Check = KDF(KME, FC_KME_CHECK, identity), first 16 octets.
FC_KME_CHECK = 0xFFF0
#: ME_Rsp = KDF(KME, FC_ME_RSP, Nonce), first 16 octets.
FC_ME_RSP = 0xFFF1
#: K'ASME = KDF(KASME, FC_KME_BIND, KME).
FC_KME_BIND = 0xFFF2

#: TS 33.401 A.7, Table A.7-1: algorithm type distinguishers.
ALG_TYPE_NAS_ENC = 0x01
ALG_TYPE_NAS_INT = 0x02


def fc_octets(fc: int) -> bytes:
    """FC as it appears in S (TS 33.220 B.2.0): one octet 0x00–0xFE, or 0xFF ‖ FC2 for 0xFF00–0xFFFF."""
    if not isinstance(fc, int) or isinstance(fc, bool):
        raise ValueError(f"fc must be an int, not {type(fc).__name__}")
    if 0 <= fc <= 0xFE:
        return bytes((fc,))
    if 0xFF00 <= fc <= 0xFFFF:
        return fc.to_bytes(2, "big")
    raise ValueError(f"fc must be 0x00-0xFE or 0xFF00-0xFFFF (0xFF is the two-octet escape), got {fc:#x}")


def kdf(key: bytes, fc: int, *params: bytes) -> bytes:
    """KDF of TS 33.220 Annex B.2.0: HMAC-SHA-256(key, FC ‖ P0 ‖ L0 ‖ …) → 32 octets."""
    key = octets("key", key)
    parts = [fc_octets(fc)]
    for i, p in enumerate(params):
        p = octets(f"P{i}", p)
        if len(p) > 0xFFFF:
            raise ValueError(f"P{i} must be at most 65535 octets, got {len(p)}")
        parts.append(p)
        parts.append(len(p).to_bytes(2, "big"))
    return hmac_sha256(key, b"".join(parts))


def kasme(ck: bytes, ik: bytes, plmn_id: bytes, sqn_xor_ak: bytes) -> bytes:
    """KASME (TS 33.401 A.2): KDF(CK ‖ IK, 0x10, SN id, SQN ⊕ AK) → 32 octets."""
    return kasme_checked(octets("ck", ck, 16) + octets("ik", ik, 16), octets("plmn_id", plmn_id, 3),
                         octets("sqn_xor_ak", sqn_xor_ak, 6))


_KASME_FC = fc_octets(FC_KASME)


def kasme_checked(ck_ik: bytes, plmn_id: bytes, sqn_xor_ak: bytes) -> bytes:
    """:func:`kasme` for arguments already checked (CK ‖ IK 32 octets, SN id 3, SQN ⊕ AK 6): S
    written out, L0 = 3 and L1 = 6 (TS 33.401 A.2), for the HSS's per-vector path."""
    return hmac_sha256(ck_ik, _KASME_FC + plmn_id + b"\x00\x03" + sqn_xor_ak + b"\x00\x06")


def nas_keys(kasme: bytes, enc_alg: int, int_alg: int) -> tuple[bytes, bytes]:
    """(K_NASenc, K_NASint) from KASME (TS 33.401 A.7): the 128 least significant bits of
    KDF(KASME, 0x15, algorithm type distinguisher, algorithm identity). Algorithm identities are
    the 4-bit EEA/EIA numbers (TS 33.401 §5.1.3.2, §5.1.4.2), e.g. 2 for 128-EEA2/128-EIA2."""
    kasme = octets("kasme", kasme, 32)
    enc = uint("enc_alg", enc_alg, 4)
    integ = uint("int_alg", int_alg, 4)
    # S = FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 written out: P0 the distinguisher, P1 the identity, one octet each
    k_enc = hmac_sha256(kasme, bytes((FC_NAS_ALG, ALG_TYPE_NAS_ENC, 0, 1, enc, 0, 1)))[16:]
    k_int = hmac_sha256(kasme, bytes((FC_NAS_ALG, ALG_TYPE_NAS_INT, 0, 1, integ, 0, 1)))[16:]
    return k_enc, k_int


def plmn_id(mcc: str, mnc: str) -> bytes:
    """PLMN identity in 3 octets (TS 24.008 §10.5.1.3 / TS 24.301 §9.9.3.32 / TS 29.272 §7.3.9):
    MCC2 MCC1 | MNC3 MCC3 | MNC2 MNC1 (low nibble first), MNC3 = 0xF for a 2-digit MNC."""
    if not isinstance(mcc, str) or len(mcc) != 3 or not mcc.isascii() or not mcc.isdigit():
        raise ValueError(f"mcc must be 3 decimal digits, got {mcc!r}")
    if not isinstance(mnc, str) or len(mnc) not in (2, 3) or not mnc.isascii() or not mnc.isdigit():
        raise ValueError(f"mnc must be 2 or 3 decimal digits, got {mnc!r}")
    d = [int(c) for c in mcc]
    n = [int(c) for c in mnc]
    mnc3 = n[2] if len(n) == 3 else 0xF
    return bytes(((d[1] << 4) | d[0], (mnc3 << 4) | d[2], (n[1] << 4) | n[0]))
