"""EPS-AKA on top of MILENAGE and the KDF (TS 33.102 §6.3, TS 33.401 §6.1).

SQN values are ints (48 bits) in this API and 6 octets on the wire. The SQN freshness
check belongs to the USIM state, not here: :func:`check_autn` only verifies MAC-A.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from kmed.crypto._check import octets, uint
from kmed.crypto.kdf import kasme_checked
from kmed.crypto.milenage import key as milenage_key
from kmed.crypto.rand import random_octets

__all__ = [
    "AMF_SEPARATION_BIT",
    "AutnResult",
    "EutranVector",
    "MacFailure",
    "check_autn",
    "generate_eutran_vector",
    "make_auts",
    "verify_auts",
]

#: TS 33.401 §6.1.2 / TS 33.102 Annex H: AMF bit 0 ("separation bit") is 1 in E-UTRAN vectors.
AMF_SEPARATION_BIT = 0x8000
_RESYNC_AMF = bytes(2)  # TS 33.102 §6.3.3: MAC-S is f1* with a dummy AMF of all zeros
_ZERO_SQN = bytes(6)
_SQN_BITS = 48


class MacFailure(Exception):
    """MAC-A (AUTN) or MAC-S (AUTS) did not verify: the sender does not hold the same K/OPc."""


@dataclass(frozen=True, slots=True)
class EutranVector:
    """An E-UTRAN authentication vector (TS 33.401 §6.1.2) plus what the HSS keeps of it."""

    rand: bytes
    xres: bytes
    autn: bytes
    kasme: bytes
    ck: bytes
    ik: bytes
    sqn: int
    ak: bytes

    def __repr__(self) -> str:
        return f"EutranVector(rand={self.rand.hex()}, sqn={self.sqn}, <keys redacted>)"


@dataclass(frozen=True, slots=True)
class AutnResult:
    """What the USIM learns from a valid AUTN (TS 33.102 §6.3.3): SQN, AMF, RES, CK, IK."""

    sqn: int
    amf: bytes
    res: bytes
    ck: bytes
    ik: bytes

    def __repr__(self) -> str:
        return f"AutnResult(sqn={self.sqn}, amf={self.amf.hex()}, <keys redacted>)"


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def generate_eutran_vector(
    k: bytes, opc: bytes, sqn: int, amf: bytes, plmn_id: bytes, rand: bytes | None = None
) -> EutranVector:
    """One E-UTRAN vector (TS 33.102 §6.3.2, TS 33.401 §6.1.2 and A.2).

    AUTN = SQN ⊕ AK ‖ AMF ‖ MAC-A, with the AMF separation bit set as TS 33.401 §6.1.2 requires
    of the HSS; KASME = KDF(CK ‖ IK, SN id, SQN ⊕ AK). RAND is fresh from the CSPRNG unless given.
    """
    sqn = uint("sqn", sqn, _SQN_BITS)
    amf = octets("amf", amf, 2)
    plmn_id = octets("plmn_id", plmn_id, 3)
    rand = random_octets(16) if rand is None else octets("rand", rand, 16)
    if not amf[0] & 0x80:
        amf = bytes((amf[0] | 0x80, amf[1]))  # AMF_SEPARATION_BIT
    sqn_b = sqn.to_bytes(6, "big")
    o = milenage_key(k, opc).outputs(rand, sqn_b, amf)  # OUT1..OUT5, see MilenageKey.outputs
    conc = (sqn ^ int.from_bytes(o[16:22], "big")).to_bytes(6, "big")
    ck, ik = o[32:48], o[48:64]
    return EutranVector(
        rand=rand,
        xres=o[24:32],
        autn=conc + amf + o[:8],
        kasme=kasme_checked(o[32:64], plmn_id, conc),
        ck=ck,
        ik=ik,
        sqn=sqn,
        ak=o[16:22],
    )


def check_autn(k: bytes, opc: bytes, rand: bytes, autn: bytes) -> AutnResult:
    """USIM side (TS 33.102 §6.3.3): recover SQN with AK, verify MAC-A; raise :class:`MacFailure`
    when it does not match. The caller then checks SQN freshness and the AMF separation bit."""
    rand = octets("rand", rand, 16)
    autn = octets("autn", autn, 16)
    conc, amf, mac_a = autn[:6], autn[6:8], autn[8:]
    mk = milenage_key(k, opc)
    ak = mk.outputs(rand, _ZERO_SQN, amf)[16:22]  # f5 does not depend on SQN
    sqn_b = _xor(conc, ak)
    o = mk.outputs(rand, sqn_b, amf)
    if not hmac.compare_digest(o[:8], mac_a):
        raise MacFailure("MAC-A in AUTN does not verify")
    return AutnResult(sqn=int.from_bytes(sqn_b, "big"), amf=amf, res=o[24:32], ck=o[32:48], ik=o[48:64])


def make_auts(k: bytes, opc: bytes, rand: bytes, sqn_ms: int) -> bytes:
    """USIM side (TS 33.102 §6.3.3): AUTS = SQN_MS ⊕ AK* ‖ MAC-S (14 octets),
    MAC-S = f1*(K, SQN_MS, RAND, AMF = 0x0000)."""
    sqn_b = uint("sqn_ms", sqn_ms, _SQN_BITS).to_bytes(6, "big")
    o = milenage_key(k, opc).outputs(octets("rand", rand, 16), sqn_b, _RESYNC_AMF)
    return _xor(sqn_b, o[64:70]) + o[8:16]


def verify_auts(k: bytes, opc: bytes, rand: bytes, auts: bytes) -> int:
    """HSS side (TS 33.102 §6.3.5): recover SQN_MS with AK*, verify MAC-S, return SQN_MS;
    raise :class:`MacFailure` when MAC-S is wrong."""
    rand = octets("rand", rand, 16)
    auts = octets("auts", auts, 14)
    conc, mac_s = auts[:6], auts[6:]
    mk = milenage_key(k, opc)
    ak_star = mk.outputs(rand, _ZERO_SQN, _RESYNC_AMF)[64:70]  # f5* does not depend on SQN
    sqn_b = _xor(conc, ak_star)
    if not hmac.compare_digest(mk.outputs(rand, sqn_b, _RESYNC_AMF)[8:16], mac_s):
        raise MacFailure("MAC-S in AUTS does not verify")
    return int.from_bytes(sqn_b, "big")
