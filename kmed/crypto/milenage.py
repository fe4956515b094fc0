"""MILENAGE f1, f1*, f2, f3, f4, f5, f5* and OPc (3GPP TS 35.206 §4).

The kernel is AES-128 (TS 35.206 §4.1, the Rijndael choice). Creating an AES cipher object
costs far more than one block, so :class:`MilenageKey` keeps one ECB encryptor per K; the
module-level :func:`milenage` reuses them through a small LRU keyed by K.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from kmed.crypto._aes import new_ecb
from kmed.crypto._check import octets

__all__ = ["Milenage", "MilenageKey", "milenage", "opc_from_op"]

_MASK128 = (1 << 128) - 1

def _rot(x: int, r: int) -> int:
    """Cyclic left rotation of a 128-bit value by ``r`` bits (TS 35.206 §4.1, rot(x, r))."""
    return ((x << r) | (x >> (128 - r))) & _MASK128 if r else x


@dataclass(frozen=True, slots=True)
class Milenage:
    """The MILENAGE outputs (TS 35.206 §4.1): f1 = MAC-A, f1* = MAC-S, f2 = RES, f3 = CK, f4 = IK,
    f5 = AK, f5* = AK* (the resynchronisation anonymity key)."""

    mac_a: bytes
    mac_s: bytes
    res: bytes
    ck: bytes
    ik: bytes
    ak: bytes
    ak_star: bytes

    def __repr__(self) -> str:  # CK/IK are secrets: never print them
        return "Milenage(<redacted>)"


class MilenageKey:
    """MILENAGE for one subscriber (K, OPc) with its AES-128 encryptor kept for reuse.

    Not safe for concurrent use from several threads (the encryptor is stateful); asyncio
    daemons call it from one thread.
    """

    __slots__ = ("_enc", "_opc", "_opc5")

    def __init__(self, k: bytes, opc: bytes) -> None:
        self._enc = new_ecb(octets("k", k, 16))
        opc = octets("opc", opc, 16)
        self._opc = int.from_bytes(opc, "big")
        self._opc5 = int.from_bytes(opc * 5, "big")  # OPc over the five output blocks

    def __repr__(self) -> str:
        return "MilenageKey(<redacted>)"

    def compute(self, rand: bytes, sqn: bytes, amf: bytes) -> Milenage:
        """All of f1, f1*, f2–f5, f5* for one RAND, SQN (6 octets), AMF (2 octets)."""
        rand = octets("rand", rand, 16)
        sqn = octets("sqn", sqn, 6)
        amf = octets("amf", amf, 2)
        opc = self._opc
        enc = self._enc.update
        temp = int.from_bytes(enc((int.from_bytes(rand, "big") ^ opc).to_bytes(16, "big")), "big")
        in1 = int.from_bytes(sqn + amf + sqn + amf, "big")
        t = temp ^ opc
        # TS 35.206 §4.1: OUT1 = E[TEMP xor rot(IN1 xor OPc, r1) xor c1] xor OPc;
        # OUTi = E[rot(TEMP xor OPc, ri) xor ci] xor OPc for i = 2..5. All five in one call.
        blocks = (
            (temp ^ _rot(in1 ^ opc, 64)).to_bytes(16, "big")  # r1 = 64, c1 = 0
            + (t ^ 1).to_bytes(16, "big")  # r2 = 0, c2 = 1
            + (_rot(t, 32) ^ 2).to_bytes(16, "big")  # r3 = 32, c3 = 2
            + (_rot(t, 64) ^ 4).to_bytes(16, "big")  # r4 = 64, c4 = 4
            + (_rot(t, 96) ^ 8).to_bytes(16, "big")  # r5 = 96, c5 = 8
        )
        out = int.from_bytes(enc(blocks), "big") ^ self._opc5
        o = out.to_bytes(80, "big")
        o1, o2, o3, o4, o5 = o[:16], o[16:32], o[32:48], o[48:64], o[64:]
        return Milenage(
            mac_a=o1[:8],
            mac_s=o1[8:],
            res=o2[8:],
            ck=o3,
            ik=o4,
            ak=o2[:6],
            ak_star=o5[:6],
        )


_CACHE_SIZE = 1024
_cache: OrderedDict[tuple[bytes, bytes], MilenageKey] = OrderedDict()


def _key(k: bytes, opc: bytes) -> MilenageKey:
    """A :class:`MilenageKey` from a small LRU keyed by (K, OPc)."""
    k = octets("k", k, 16)
    opc = octets("opc", opc, 16)
    entry = _cache.get((k, opc))
    if entry is None:
        entry = MilenageKey(k, opc)
        _cache[(k, opc)] = entry
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end((k, opc))
    return entry


def milenage(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> Milenage:
    """f1, f1*, f2, f3, f4, f5, f5* of TS 35.206 §4.1 (K, OPc, RAND 16 octets; SQN 6; AMF 2)."""
    return _key(k, opc).compute(rand, sqn, amf)


def opc_from_op(k: bytes, op: bytes) -> bytes:
    """OPc = OP xor E_K(OP) (TS 35.206 §4.1)."""
    k = octets("k", k, 16)
    op = octets("op", op, 16)
    e = new_ecb(k).update(op)
    return (int.from_bytes(op, "big") ^ int.from_bytes(e, "big")).to_bytes(16, "big")
