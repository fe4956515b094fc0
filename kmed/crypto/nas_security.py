"""128-EIA2 (AES-CMAC) and 128-EEA2 (AES-CTR), TS 33.401 Annex B.2.3 and B.1.3.

Both take the 128-bit key, the 32-bit COUNT, the 5-bit BEARER, the 1-bit DIRECTION
(0 uplink, 1 downlink) and the message. NAS messages are whole octets; ``length_bits``
(optional) gives the exact bit length for the official test sets, which include
non-octet lengths (TS 33.401 Annex C).
"""

from __future__ import annotations

from kmed.crypto._aes import AesKey, aes_key
from kmed.crypto._check import octets, uint

__all__ = ["DIRECTION_DOWNLINK", "DIRECTION_UPLINK", "NasKey", "eea2", "eia2"]

DIRECTION_UPLINK = 0
DIRECTION_DOWNLINK = 1


def _header(count: int, bearer: int, direction: int) -> int:
    """COUNT[32] ‖ BEARER[5] ‖ DIRECTION[1] ‖ 0[26] as a 64-bit integer (B.1.3, B.2.3), checked."""
    uint("count", count, 32)
    uint("bearer", bearer, 5)
    uint("direction", direction, 1)
    return _pack(count, bearer, direction)


def _pack(count: int, bearer: int, direction: int) -> int:
    """:func:`_header` for values the caller keeps in range."""
    return (count << 32) | (bearer << 27) | (direction << 26)


def _mac(aes: AesKey, header: int, message: bytes, nbits: int) -> bytes:
    """128-EIA2 (B.2.3): the first 32 bits of AES-CMAC over header ‖ the message's ``nbits``."""
    return aes.cmac_bits(header.to_bytes(8, "big") + message, 64 + nbits)[:4]


def _ctr(aes: AesKey, header: int, message: bytes, nbits: int) -> bytes:
    """128-EEA2 (B.1.3): the message XOR the AES-CTR keystream from T1 = header ‖ 0^64; the
    bits after the ``nbits``-th are 0."""
    n = len(message)
    if n == 0:
        return b""
    out = int.from_bytes(message, "big") ^ int.from_bytes(aes.ctr_keystream(header << 64, n), "big")
    if nbits % 8:
        out &= ~((1 << (8 - nbits % 8)) - 1)
    return out.to_bytes(n, "big")


def _bits(message: bytes, length_bits: int | None) -> int:
    """The message length in bits, checked against the octets given (no silent truncation)."""
    if length_bits is None:
        return len(message) * 8
    uint("length_bits", length_bits, 32)
    if (length_bits + 7) // 8 != len(message):
        raise ValueError(f"message must be ceil(length_bits / 8) = {(length_bits + 7) // 8} octets, got {len(message)}")
    return length_bits


def eia2(
    key: bytes, count: int, bearer: int, direction: int, message: bytes, *, length_bits: int | None = None
) -> bytes:
    """128-EIA2 MAC-I/NAS-MAC (TS 33.401 B.2.3): the first 32 bits of
    AES-CMAC(key, COUNT ‖ BEARER ‖ DIRECTION ‖ 0^26 ‖ MESSAGE)."""
    key = octets("key", key, 16)
    message = octets("message", message)
    nbits = _bits(message, length_bits)
    return _mac(aes_key(key), _header(count, bearer, direction), message, nbits)


def eea2(
    key: bytes, count: int, bearer: int, direction: int, message: bytes, *, length_bits: int | None = None
) -> bytes:
    """128-EEA2 (TS 33.401 B.1.3): AES-CTR with T1 = COUNT ‖ BEARER ‖ DIRECTION ‖ 0^90.

    Encrypts and decrypts. With ``length_bits``, the bits after the last message bit are 0.
    """
    key = octets("key", key, 16)
    message = octets("message", message)
    nbits = _bits(message, length_bits)
    return _ctr(aes_key(key), _header(count, bearer, direction), message, nbits)


class NasKey:
    """One 128-bit NAS key with its AES state, for a security context that uses it many times:
    :meth:`eia2` and :meth:`eea2` are the functions above for whole-octet messages, with the
    key's cipher object made once (on first use) instead of looked up per message.

    ``count`` (32 bits), ``bearer`` (5) and ``direction`` (1) are the caller's to keep in range
    (:class:`kmed.nas.security.NasSecurityContext` does); they are not re-checked here.
    """

    __slots__ = ("_aes", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = octets("key", key, 16)
        self._aes: AesKey | None = None

    def __repr__(self) -> str:
        return "NasKey(<redacted>)"

    def _state(self) -> AesKey:
        aes = self._aes
        if aes is None:
            aes = self._aes = AesKey(self._key)
        return aes

    def eia2(self, count: int, bearer: int, direction: int, message: bytes) -> bytes:
        """128-EIA2 (TS 33.401 B.2.3) of ``message``: the 32-bit MAC."""
        return _mac(self._state(), _pack(count, bearer, direction), message, 8 * len(message))

    def eea2(self, count: int, bearer: int, direction: int, message: bytes) -> bytes:
        """128-EEA2 (TS 33.401 B.1.3) of ``message`` (encrypts and decrypts)."""
        return _ctr(self._state(), _pack(count, bearer, direction), message, 8 * len(message))
