"""MILENAGE f1, f1*, f2, f3, f4, f5, f5* and OPc (3GPP TS 35.206 §4).

The kernel is AES-128 (TS 35.206 §4.1, the Rijndael choice). Creating an AES cipher object
costs far more than one block, so :class:`MilenageKey` keeps one ECB encryptor per K; the
module-level :func:`milenage` reuses them through a small LRU keyed by K.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from kmed.crypto._aes import new_ecb
from kmed.crypto._check import octets

__all__ = ["Milenage", "MilenageKey", "key", "milenage", "opc_from_op"]

_MASK128 = (1 << 128) - 1


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
        o = self.outputs(octets("rand", rand, 16), octets("sqn", sqn, 6), octets("amf", amf, 2))
        return Milenage(mac_a=o[:8], mac_s=o[8:16], res=o[24:32], ck=o[32:48], ik=o[48:64], ak=o[16:22],
                        ak_star=o[64:70])

    def outputs(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """OUT1 ‖ OUT2 ‖ OUT3 ‖ OUT4 ‖ OUT5 (80 octets) for arguments already checked (RAND 16,
        SQN 6, AMF 2 octets): MAC-A = [0:8], MAC-S = [8:16], AK = [16:22], RES = [24:32],
        CK = [32:48], IK = [48:64], AK* = [64:70] (TS 35.206 §4.1). The hot path of
        :mod:`kmed.crypto.aka`, without building a :class:`Milenage`."""
        opc = self._opc
        enc = self._enc.update
        temp = int.from_bytes(enc((int.from_bytes(rand, "big") ^ opc).to_bytes(16, "big")), "big")
        x = int.from_bytes(sqn + amf + sqn + amf, "big") ^ opc
        t = temp ^ opc
        # TS 35.206 §4.1: OUT1 = E[TEMP xor rot(IN1 xor OPc, r1) xor c1] xor OPc;
        # OUTi = E[rot(TEMP xor OPc, ri) xor ci] xor OPc for i = 2..5. All five in one call.
        # Rotations by 32, 64 and 96 bits of a 128-bit block, inlined (r1 = r4 = 64, r3 = 32, r5 = 96).
        t64 = ((t << 64) | (t >> 64)) & _MASK128
        blocks = (
            (temp ^ ((x << 64) | (x >> 64)) & _MASK128).to_bytes(16, "big")  # c1 = 0
            + (t ^ 1).to_bytes(16, "big")  # r2 = 0, c2 = 1
            + ((((t << 32) | (t >> 96)) & _MASK128) ^ 2).to_bytes(16, "big")  # c3 = 2
            + (t64 ^ 4).to_bytes(16, "big")  # c4 = 4
            + ((((t << 96) | (t >> 32)) & _MASK128) ^ 8).to_bytes(16, "big")  # c5 = 8
        )
        return (int.from_bytes(enc(blocks), "big") ^ self._opc5).to_bytes(80, "big")


_cached_key = functools.lru_cache(maxsize=1024)(MilenageKey)


def _key(k: bytes, opc: bytes) -> MilenageKey:
    """A :class:`MilenageKey` from a small LRU keyed by (K, OPc)."""
    return _cached_key(octets("k", k, 16), octets("opc", opc, 16))


def key(k: bytes, opc: bytes) -> MilenageKey:
    """The :class:`MilenageKey` for (K, OPc) from the module's LRU (K and OPc checked)."""
    return _key(k, opc)


def milenage(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> Milenage:
    """f1, f1*, f2, f3, f4, f5, f5* of TS 35.206 §4.1 (K, OPc, RAND 16 octets; SQN 6; AMF 2)."""
    return _key(k, opc).compute(rand, sqn, amf)


def opc_from_op(k: bytes, op: bytes) -> bytes:
    """OPc = OP xor E_K(OP) (TS 35.206 §4.1)."""
    k = octets("k", k, 16)
    op = octets("op", op, 16)
    e = new_ecb(k).update(op)
    return (int.from_bytes(op, "big") ^ int.from_bytes(e, "big")).to_bytes(16, "big")
