"""NAS security: integrity protection, ciphering, NAS COUNT and replay refusal.

TS 24.301 §4.4 and §9.3, TS 33.401 §8 and Annex B. A security protected NAS message is

    octet 0      security header type (bits 8-5) ‖ EMM protocol discriminator 0x7 (bits 4-1)
    octets 1-4   message authentication code (MAC)
    octet 5      sequence number (the 8 low bits of the NAS COUNT)
    octets 6-    the NAS message, plain or ciphered

The MAC is computed over sequence number ‖ NAS message (the ciphered one when ciphered) with
COUNT = NAS overflow (16 bits) ‖ SN (8 bits), BEARER 0 and DIRECTION 0 uplink / 1 downlink
(TS 24.301 §4.4.3.1, §4.4.3.3; TS 33.401 §8.1.1). Ciphering applies to the plain NAS message
(header types 2 and 4). Uplink and downlink have separate COUNTs.

A `NasSecurityContext` is the state of *one* end: it protects what this end sends and
unprotects what it receives. The receiver estimates the COUNT from the 8-bit SN (the next
value not below the last accepted COUNT + 1), checks the MAC, then accepts; a COUNT at or
below the last accepted one is refused as a replay.
"""

from __future__ import annotations

import hmac

from kmed.crypto import nas_security
from kmed.nas.ies import EMM_PD, NasCipheringAlgorithm, NasIntegrityAlgorithm, SecurityHeaderType

__all__ = [
    "DOWNLINK",
    "NAS_BEARER",
    "UPLINK",
    "NasCountExhausted",
    "NasIntegrityError",
    "NasReplayError",
    "NasSecurityContext",
    "NasSecurityError",
    "security_header_type",
]

UPLINK = 0
DOWNLINK = 1
NAS_BEARER = 0  # TS 33.401 §8.1.1: BEARER is the constant 0 for NAS
MAX_COUNT = 0xFFFFFF  # 16-bit overflow ‖ 8-bit SN (TS 24.301 §4.4.3.1)
_PROTECTED_TYPES = frozenset(
    {
        SecurityHeaderType.INTEGRITY,
        SecurityHeaderType.INTEGRITY_CIPHERED,
        SecurityHeaderType.INTEGRITY_NEW_CONTEXT,
        SecurityHeaderType.INTEGRITY_CIPHERED_NEW_CONTEXT,
    }
)
_CIPHERED_TYPES = frozenset(
    {SecurityHeaderType.INTEGRITY_CIPHERED, SecurityHeaderType.INTEGRITY_CIPHERED_NEW_CONTEXT}
)


class NasSecurityError(Exception):
    """Base class of NAS security failures: the message is dropped (and counted)."""


class NasIntegrityError(NasSecurityError):
    """The MAC does not verify, or the PDU is not a well-formed security protected message."""


class NasReplayError(NasSecurityError):
    """The MAC verifies with a COUNT already used: a replayed message (TS 24.301 §4.4.3.2)."""


class NasCountExhausted(NasSecurityError):
    """The 24-bit NAS COUNT would wrap: a new EPS security context is needed (TS 33.401 §7.2.4.3)."""


def security_header_type(pdu: bytes) -> int:
    """The security header type of an EMM PDU (0 plain, 1-4 protected; -1 if not EMM or empty)."""
    if not pdu or pdu[0] & 0x0F != EMM_PD:
        return -1
    return pdu[0] >> 4


class NasSecurityContext:
    """An EPS NAS security context (TS 24.301 §4.4.2) as one end holds it.

    `ksi` is the NAS key set identifier; `int_alg`/`enc_alg` the algorithm identifiers of
    TS 24.301 §9.9.3.23 (the values `kmed.crypto.kdf.nas_keys` takes). 128-EIA2/128-EEA2 and
    the null algorithms are implemented; the null integrity algorithm is refused unless
    `emergency` is set (TS 33.401 §5.1.4.2: EIA0 only for unauthenticated emergency sessions).
    """

    __slots__ = ("_enc", "_int", "_next", "emergency", "enc_alg", "int_alg", "ksi")

    def __init__(
        self,
        ksi: int,
        k_nas_int: bytes,
        k_nas_enc: bytes,
        int_alg: int = NasIntegrityAlgorithm.EIA2,
        enc_alg: int = NasCipheringAlgorithm.EEA2,
        *,
        emergency: bool = False,
    ) -> None:
        if not 0 <= ksi <= 7:
            raise ValueError("ksi must be in 0..7 (7 = no key available)")
        if int_alg not in (NasIntegrityAlgorithm.EIA0, NasIntegrityAlgorithm.EIA2):
            raise ValueError(f"integrity algorithm {int_alg} not supported (EIA2, or EIA0 for emergency)")
        if enc_alg not in (NasCipheringAlgorithm.EEA0, NasCipheringAlgorithm.EEA2):
            raise ValueError(f"ciphering algorithm {enc_alg} not supported (EEA2 or EEA0)")
        if int_alg == NasIntegrityAlgorithm.EIA0 and not emergency:
            raise ValueError("EIA0 is allowed only for emergency bearer services (TS 33.401 5.1.4.2)")
        if not isinstance(k_nas_int, bytes) or len(k_nas_int) != 16:
            raise ValueError("k_nas_int must be 16 octets")
        if not isinstance(k_nas_enc, bytes) or len(k_nas_enc) != 16:
            raise ValueError("k_nas_enc must be 16 octets")
        self.ksi = ksi
        self.int_alg = int(int_alg)
        self.enc_alg = int(enc_alg)
        self.emergency = emergency
        # one AES state per key, made on first use, kept for the context's life (TS 33.401 B.1.3, B.2.3)
        self._int = nas_security.NasKey(k_nas_int)
        self._enc = nas_security.NasKey(k_nas_enc)
        self._next = [0, 0]  # next NAS COUNT per direction: to send, or the lowest acceptable

    def __repr__(self) -> str:  # keys never shown
        return (
            f"NasSecurityContext(ksi={self.ksi}, int_alg={self.int_alg}, enc_alg={self.enc_alg}, "
            f"ul_count={self._next[UPLINK]}, dl_count={self._next[DOWNLINK]})"
        )

    @property
    def ul_count(self) -> int:
        """The next uplink NAS COUNT (to be sent by the UE / the lowest the network accepts)."""
        return self._next[UPLINK]

    @property
    def dl_count(self) -> int:
        """The next downlink NAS COUNT."""
        return self._next[DOWNLINK]

    def set_count(self, direction: int, count: int) -> None:
        """Set the next NAS COUNT of a direction (e.g. restored state, or tests)."""
        if not 0 <= count <= MAX_COUNT + 1:
            raise ValueError("NAS COUNT is 24 bits")
        self._next[_direction(direction)] = count

    # -- crypto --------------------------------------------------------------------------------

    def _mac(self, count: int, direction: int, data: bytes) -> bytes:
        if self.int_alg == NasIntegrityAlgorithm.EIA0:
            return b"\x00\x00\x00\x00"
        return self._int.eia2(count, NAS_BEARER, direction, data)

    def _cipher(self, count: int, direction: int, data: bytes) -> bytes:
        if self.enc_alg == NasCipheringAlgorithm.EEA0 or not data:
            return data
        return self._enc.eea2(count, NAS_BEARER, direction, data)

    # -- protect / unprotect -----------------------------------------------------------------

    def protect(
        self,
        plain_pdu: bytes,
        direction: int,
        security_header_type: int = SecurityHeaderType.INTEGRITY_CIPHERED,
    ) -> bytes:
        """Wrap a plain NAS message (header type 0) into a security protected one, using and
        advancing this direction's NAS COUNT. Header types 2 and 4 also cipher it."""
        direction = _direction(direction)
        if security_header_type not in _PROTECTED_TYPES:
            raise ValueError(f"security header type {security_header_type} is not 1-4")
        if len(plain_pdu) < 2 or plain_pdu[0] != EMM_PD:
            raise ValueError("plain_pdu must be a plain EMM message (first octet 0x07)")
        count = self._next[direction]
        if count > MAX_COUNT:
            raise NasCountExhausted("NAS COUNT exhausted: run a new authentication")
        body = self._cipher(count, direction, plain_pdu) if security_header_type in _CIPHERED_TYPES else plain_pdu
        signed = bytes((count & 0xFF,)) + body
        mac = self._mac(count, direction, signed)
        self._next[direction] = count + 1
        return bytes(((security_header_type << 4) | EMM_PD,)) + mac + signed

    def unprotect(self, pdu: bytes, direction: int) -> bytes:
        """The plain NAS message inside a security protected PDU received in `direction`.

        Raises NasIntegrityError (malformed or bad MAC) or NasReplayError (COUNT already
        used); the COUNT state is updated only when the message is accepted.
        """
        direction = _direction(direction)
        if len(pdu) < 8 or pdu[0] & 0x0F != EMM_PD:
            raise NasIntegrityError("not a security protected EMM message")
        sht = pdu[0] >> 4
        if sht not in _PROTECTED_TYPES:
            raise NasIntegrityError(f"security header type {sht} is not a protected message")
        mac = pdu[1:5]
        signed = bytes(pdu[5:])
        sn = signed[0]
        expected = self._next[direction]
        count = (expected & ~0xFF) | sn
        if count < expected:
            count += 0x100  # the SN wrapped: the overflow counter advances (TS 24.301 §4.4.3.1)
        if count > MAX_COUNT:
            raise NasIntegrityError("NAS COUNT beyond 24 bits")
        if self.int_alg != NasIntegrityAlgorithm.EIA0 and not hmac.compare_digest(
            self._mac(count, direction, signed), mac
        ):
            old = count - 0x100
            if 0 <= old < expected and hmac.compare_digest(self._mac(old, direction, signed), mac):
                raise NasReplayError(f"NAS COUNT {old} already used (next acceptable {expected})")
            raise NasIntegrityError("NAS MAC does not verify")
        self._next[direction] = count + 1
        body = signed[1:]
        plain = self._cipher(count, direction, body) if sht in _CIPHERED_TYPES else body
        if len(plain) < 2 or plain[0] != EMM_PD:
            # a MAC that verifies over a body that does not decipher to an EMM message: wrong
            # header type or algorithm mismatch; the COUNT stays consumed (it was authentic).
            raise NasIntegrityError("protected body is not a plain EMM message")
        return plain


def _direction(direction: int) -> int:
    if direction not in (UPLINK, DOWNLINK):
        raise ValueError("direction must be 0 (uplink) or 1 (downlink)")
    return direction
