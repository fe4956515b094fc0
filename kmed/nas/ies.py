"""NAS EPS information element formats and value types (TS 24.301 clause 9.9, TS 24.007 §11.2).

An IE's *format* (T, V, TV, LV, TLV, LV-E, TLV-E) says how it is framed in a message; its
*value type* says how its value part maps to a Python value. Value types are pairs of plain
functions so the compiled codec (`kmed.nas.codec`) calls them without indirection:

- most values are the value part as ``bytes`` (identities, RAND, AUTN, containers...);
- one-octet values (EMM cause, GPRS timer, NAS security algorithms) are ``int``;
- half-octet values (type 1 IEs, or V 1/2) are ``int`` 0..15, except where an enum is nicer
  (`KME_SCHEME`: ``"A"``/``"B"``).

Helpers building value parts (capabilities, algorithm octets, TAI lists) live here too; mobile
identities are in `kmed.nas.identity`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "EMM_PD",
    "IEI_KME_BINDING_INDICATOR",
    "IEI_KME_CHECK",
    "KME_SCHEME_VALUES",
    "EpsAttachResult",
    "EpsAttachType",
    "EpsUpdateType",
    "Format",
    "IdentityType",
    "KmeBindingIndicator",
    "NasCipheringAlgorithm",
    "NasIntegrityAlgorithm",
    "Presence",
    "SecurityHeaderType",
    "ValueType",
    "nas_security_algorithms",
    "parse_nas_security_algorithms",
    "parse_ue_security_capability",
    "tai_list",
    "ue_network_capability",
    "ue_security_capability",
]

EMM_PD = 0x7  # EPS mobility management protocol discriminator, TS 24.007 §11.2.3.1.1


class Format(StrEnum):
    """IE formats, TS 24.007 §11.2.1.1."""

    T = "T"
    V = "V"
    TV = "TV"
    LV = "LV"
    TLV = "TLV"
    LV_E = "LV-E"
    TLV_E = "TLV-E"


class Presence(StrEnum):
    """M mandatory, O optional, C conditional (TS 24.007 §11.2.5)."""

    M = "M"
    O = "O"  # noqa: E741
    C = "C"


class SecurityHeaderType(IntEnum):
    """TS 24.301 §9.3.1, table 9.3.1."""

    PLAIN = 0
    INTEGRITY = 1
    INTEGRITY_CIPHERED = 2
    INTEGRITY_NEW_CONTEXT = 3
    INTEGRITY_CIPHERED_NEW_CONTEXT = 4
    SERVICE_REQUEST = 12


class NasCipheringAlgorithm(IntEnum):
    """Type of ciphering algorithm, TS 24.301 §9.9.3.23 (as `kmed.crypto.kdf.nas_keys` takes it)."""

    EEA0 = 0
    EEA1 = 1  # 128-EEA1
    EEA2 = 2  # 128-EEA2
    EEA3 = 3  # 128-EEA3


class NasIntegrityAlgorithm(IntEnum):
    """Type of integrity protection algorithm, TS 24.301 §9.9.3.23."""

    EIA0 = 0
    EIA1 = 1  # 128-EIA1
    EIA2 = 2  # 128-EIA2
    EIA3 = 3  # 128-EIA3


class EpsAttachType(IntEnum):
    """TS 24.301 §9.9.3.11."""

    EPS_ATTACH = 1
    COMBINED_EPS_IMSI_ATTACH = 2
    EPS_RLOS_ATTACH = 5
    EPS_EMERGENCY_ATTACH = 6


class EpsAttachResult(IntEnum):
    """TS 24.301 §9.9.3.10."""

    EPS_ONLY = 1
    COMBINED_EPS_IMSI_ATTACH = 2


class EpsUpdateType(IntEnum):
    """TS 24.301 §9.9.3.14 (bits 1-3; bit 4 is the "active" flag)."""

    TA_UPDATING = 0
    COMBINED_TA_LA_UPDATING = 1
    COMBINED_TA_LA_UPDATING_WITH_IMSI_ATTACH = 2
    PERIODIC_UPDATING = 3


class IdentityType(IntEnum):
    """Identity type 2, TS 24.301 §9.9.3.17."""

    IMSI = 1
    IMEI = 2
    IMEISV = 3
    TMSI = 4


class KmeBindingIndicator(IntEnum):
    """kmed's KME binding indicator (new IE, docs/ue-link.md): which KME the AV is bound to."""

    NOT_BOUND = 0
    BOUND_TO_CURRENT = 1
    BOUND_TO_NEW = 2


# New IEIs (docs/ue-link.md: checked against TS 24.301 V19.6.0 tables 8.2.4.1, 8.2.29.1, 8.2.7.1).
IEI_KME_CHECK = 0x3C
IEI_KME_BINDING_INDICATOR = 0x3D

# KME scheme: the ECIES profile, numbered as the SUCI protection scheme identifiers of
# TS 24.501 §9.11.3.4 (Profile A = 1, Profile B = 2).
KME_SCHEME_VALUES: dict[str, int] = {"A": 1, "B": 2}
_KME_SCHEME_BY_VALUE = {v: k for k, v in KME_SCHEME_VALUES.items()}


@dataclass(frozen=True, slots=True)
class ValueType:
    """How a value part maps to a Python value. `encode` returns bytes (or an int nibble when
    `half`); `decode` takes what `encode` returns; both raise ValueError on a bad value."""

    name: str
    ref: str
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    half: bool = False
    fixed: int | None = None  # octets, when the value part has one length


def _enc_octets(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise ValueError(f"expected bytes, got {type(value).__name__}")


def _dec_octets(data: bytes) -> bytes:
    return data


def _enc_uint8(value: Any) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
        raise ValueError(f"expected an int in [0, 255], got {value!r}")
    return bytes((value,))


def _dec_uint8(data: bytes) -> int:
    return data[0]


def _nibble(bits: int) -> tuple[Callable[[Any], int], Callable[[int], int]]:
    mask = (1 << bits) - 1

    def enc(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= mask:
            raise ValueError(f"expected an int in [0, {mask}], got {value!r}")
        return int(value)

    def dec(nibble: int) -> int:
        return nibble & mask

    return enc, dec


def _enc_kme_scheme(value: Any) -> int:
    try:
        return KME_SCHEME_VALUES[value]
    except (KeyError, TypeError):
        raise ValueError(f"KME scheme must be 'A' or 'B', got {value!r}") from None


def _dec_kme_scheme(nibble: int) -> str:
    try:
        return _KME_SCHEME_BY_VALUE[nibble]
    except KeyError:
        raise ValueError(f"unknown KME scheme {nibble}") from None


_BINDINGS = tuple(KmeBindingIndicator)
_BINDING_OCTETS = {b: bytes((b,)) for b in _BINDINGS}


def _enc_binding(value: Any) -> bytes:
    try:
        return _BINDING_OCTETS[value]
    except (KeyError, TypeError):
        raise ValueError(f"KME binding indicator must be 0, 1 or 2, got {value!r}") from None


def _dec_binding(data: bytes) -> KmeBindingIndicator:
    try:
        return _BINDINGS[data[0] & 0x03]  # bits 3-8 spare
    except IndexError:
        raise ValueError("reserved KME binding indicator value 3") from None


def octets(name: str, ref: str, fixed: int | None = None) -> ValueType:
    """A value type whose value is the value part itself."""
    return ValueType(name, ref, _enc_octets, _dec_octets, fixed=fixed)


def uint8(name: str, ref: str) -> ValueType:
    """A one-octet value type (int 0..255)."""
    return ValueType(name, ref, _enc_uint8, _dec_uint8, fixed=1)


def nibble(name: str, ref: str, bits: int = 4) -> ValueType:
    """A half-octet value type (int; `bits` low bits significant, the others spare)."""
    enc, dec = _nibble(bits)
    return ValueType(name, ref, enc, dec, half=True)


def _enc_spare(value: Any) -> int:
    return 0


SPARE_HALF = ValueType("spare half octet", "9.9.2.9", _enc_spare, _enc_spare, half=True)
KME_SCHEME = ValueType("KME scheme", "kmed", _enc_kme_scheme, _dec_kme_scheme, half=True)
KME_BINDING = ValueType("KME binding indicator", "kmed", _enc_binding, _dec_binding, fixed=1)


# --- value-part builders --------------------------------------------------------------------


def _bitmap(numbers: Iterable[int]) -> int:
    """Bit 8 = algorithm 0, ..., bit 1 = algorithm 7 (TS 24.301 §9.9.3.34 / §9.9.3.36)."""
    octet = 0
    for n in numbers:
        if not 0 <= n <= 7:
            raise ValueError(f"algorithm number {n} out of range 0..7")
        octet |= 0x80 >> n
    return octet


def ue_network_capability(eea: Iterable[int] = (0, 1, 2), eia: Iterable[int] = (1, 2)) -> bytes:
    """UE network capability value part (TS 24.301 §9.9.3.34), octets 3-4: EEA and EIA bitmaps."""
    return bytes((_bitmap(eea), _bitmap(eia)))


def ue_security_capability(eea: Iterable[int] = (0, 1, 2), eia: Iterable[int] = (1, 2)) -> bytes:
    """UE security capability value part (TS 24.301 §9.9.3.36), the EPS octets only."""
    return bytes((_bitmap(eea), _bitmap(eia)))


def parse_ue_security_capability(value: bytes) -> tuple[frozenset[int], frozenset[int]]:
    """(EEA numbers, EIA numbers) from a UE network/security capability value part."""
    if len(value) < 2:
        raise ValueError("capability value part shorter than 2 octets")
    return _ALGORITHM_BITS[value[0]], _ALGORITHM_BITS[value[1]]


#: The algorithm numbers an octet of a capability announces (bit 8 = algorithm 0, ..., bit 1 = 7).
_ALGORITHM_BITS = tuple(frozenset(n for n in range(8) if octet & (0x80 >> n)) for octet in range(256))


def nas_security_algorithms(enc_alg: int, int_alg: int) -> int:
    """Selected NAS security algorithms octet (TS 24.301 §9.9.3.23): bits 7-5 EEA, bits 3-1 EIA."""
    if not 0 <= enc_alg <= 7 or not 0 <= int_alg <= 7:
        raise ValueError("algorithm identifiers are 0..7")
    return (enc_alg << 4) | int_alg


def parse_nas_security_algorithms(octet: int) -> tuple[int, int]:
    """(enc_alg, int_alg) from the selected NAS security algorithms octet."""
    return (octet >> 4) & 0x07, octet & 0x07


@functools.lru_cache(maxsize=64)
def plmn_octets(mcc: str, mnc: str) -> bytes:
    """MCC/MNC in the 3-octet BCD layout of TS 24.008 §10.5.1.3 (MNC digit 3 = F if 2 digits)."""
    if len(mcc) != 3 or not mcc.isdigit() or len(mnc) not in (2, 3) or not mnc.isdigit():
        raise ValueError("MCC must be 3 digits and MNC 2 or 3 digits")
    d = [int(c) for c in mcc]
    m = [int(c) for c in mnc]
    mnc3 = m[2] if len(m) == 3 else 0xF
    return bytes(((d[1] << 4) | d[0], (mnc3 << 4) | d[2], (m[1] << 4) | m[0]))


def parse_plmn_octets(data: bytes) -> tuple[str, str]:
    """(mcc, mnc) from the 3-octet PLMN layout; raises ValueError on non-decimal digits."""
    if len(data) != 3:
        raise ValueError("PLMN identity is 3 octets")
    return _plmn_digits(bytes(data))


@functools.lru_cache(maxsize=256)  # a node sees a handful of PLMNs
def _plmn_digits(data: bytes) -> tuple[str, str]:
    digits = [data[0] & 0xF, data[0] >> 4, data[1] & 0xF, data[2] & 0xF, data[2] >> 4, data[1] >> 4]
    if any(x > 9 for x in digits[:5]) or (digits[5] > 9 and digits[5] != 0xF):
        raise ValueError("PLMN identity has a non-decimal digit")
    mcc = "".join(map(str, digits[:3]))
    mnc = "".join(map(str, digits[3:5])) + ("" if digits[5] == 0xF else str(digits[5]))
    return mcc, mnc


def tai_list(mcc: str, mnc: str, tacs: Iterable[int]) -> bytes:
    """Tracking area identity list value part (TS 24.301 §9.9.3.33), one partial list of type
    "00": non-consecutive TACs of one PLMN (1 to 16 TACs)."""
    tac_list = list(tacs)
    if not 1 <= len(tac_list) <= 16:
        raise ValueError("a partial TAI list holds 1 to 16 TACs")
    out = bytearray(((len(tac_list) - 1) & 0x1F,))
    out += plmn_octets(mcc, mnc)
    for tac in tac_list:
        out += tac.to_bytes(2, "big")
    return bytes(out)
