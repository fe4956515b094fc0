"""Mobile identities: the EPS mobile identity (TS 24.301 §9.9.3.12) and the mobile identity of
TS 24.008 §10.5.1.4 (used by Identity Response, the IMEISV of Security Mode Complete).

Functions return or take the IE's *value part* (what follows the length octet). Digits are
BCD, first digit in the high nibble of the first octet next to the odd/even flag and the
type; an even count ends with the filler 0xF.

Type numbers differ between the two IEs: EPS 1 IMSI, 3 IMEI, 6 GUTI; TS 24.008 1 IMSI,
2 IMEI, 3 IMEISV, 4 TMSI. `parse_mobile_identity` accepts both: type 3 is an IMEI when it
carries 15 digits (EPS) and an IMEISV when it carries 16 (TS 24.008).
"""

from __future__ import annotations

from kmed.nas.ies import parse_plmn_octets, plmn_octets

__all__ = [
    "TYPE_GUTI",
    "TYPE_IMEI",
    "TYPE_IMEISV",
    "TYPE_IMSI",
    "TYPE_TMSI",
    "guti_identity",
    "imei_identity",
    "imeisv_identity",
    "imsi_identity",
    "parse_mobile_identity",
]

TYPE_IMSI = 1
TYPE_IMEI = 2  # TS 24.008; the EPS mobile identity uses 3 for the IMEI
TYPE_IMEISV = 3
TYPE_TMSI = 4
TYPE_GUTI = 6
_EPS_TYPE_IMEI = 3
#: The two BCD digits of an octet, low nibble first, as hexadecimal characters (a-f: not a digit).
_BCD_PAIR = tuple(f"{o & 0xF:x}{o >> 4:x}" for o in range(256))


def _digits_identity(digits: str, type_: int) -> bytes:
    """BCD digits with the odd/even indicator and the type in the first octet."""
    if not digits.isdigit() or not digits.isascii():
        raise ValueError("identity must be decimal digits")
    odd = len(digits) % 2
    first = (int(digits[0]) << 4) | (odd << 3) | type_
    rest = digits[1:] + ("" if odd else "F")
    out = bytearray((first,))
    for i in range(0, len(rest), 2):
        lo = int(rest[i])
        hi = 0xF if rest[i + 1] == "F" else int(rest[i + 1])
        out.append((hi << 4) | lo)
    return bytes(out)


def _parse_digits(value: bytes) -> str:
    digits = "%x" % (value[0] >> 4) + "".join([_BCD_PAIR[octet] for octet in value[1:]])
    if not (value[0] >> 3) & 1:  # even count: the last nibble is the filler
        if digits[-1] != "f":
            raise ValueError("even number of digits without the 0xF filler")
        digits = digits[:-1]
    if digits and not digits.isdigit():  # a nibble above 9 shows as a-f
        raise ValueError("identity has a non-decimal digit")
    return digits


def imsi_identity(imsi: str) -> bytes:
    """IMSI (6 to 15 digits) as an EPS mobile identity / mobile identity value part."""
    if not 6 <= len(imsi) <= 15:
        raise ValueError("IMSI must have 6 to 15 digits")
    return _digits_identity(imsi, TYPE_IMSI)


def imei_identity(imei: str, *, eps: bool = False) -> bytes:
    """IMEI (15 digits) as a TS 24.008 mobile identity (type 2) or, with ``eps=True``, as an
    EPS mobile identity (type 3)."""
    if len(imei) != 15:
        raise ValueError("IMEI must have 15 digits")
    return _digits_identity(imei, _EPS_TYPE_IMEI if eps else TYPE_IMEI)


def imeisv_identity(imeisv: str) -> bytes:
    """IMEISV (16 digits: TAC, SNR, 2-digit SVN) as a TS 24.008 mobile identity (type 3)."""
    if len(imeisv) != 16:
        raise ValueError("IMEISV must have 16 digits")
    return _digits_identity(imeisv, TYPE_IMEISV)


def guti_identity(mcc: str, mnc: str, mme_group_id: int, mme_code: int, m_tmsi: int) -> bytes:
    """GUTI as an EPS mobile identity value part (11 octets, TS 24.301 figure 9.9.3.12.1)."""
    if not 0 <= mme_group_id <= 0xFFFF or not 0 <= mme_code <= 0xFF or not 0 <= m_tmsi <= 0xFFFFFFFF:
        raise ValueError("MME group id is 16 bits, MME code 8 bits, M-TMSI 32 bits")
    return (
        bytes((0xF0 | TYPE_GUTI,))
        + plmn_octets(mcc, mnc)
        + mme_group_id.to_bytes(2, "big")
        + bytes((mme_code,))
        + m_tmsi.to_bytes(4, "big")
    )


def parse_mobile_identity(value: bytes) -> tuple[str, dict[str, str | int]]:
    """(type, fields) of an EPS mobile identity or TS 24.008 mobile identity value part.

    Types and fields: ``"imsi"`` {imsi}, ``"imei"`` {imei}, ``"imeisv"`` {imeisv},
    ``"guti"`` {mcc, mnc, mme_group_id, mme_code, m_tmsi}, ``"tmsi"`` {tmsi}.
    Raises ValueError when the value is malformed or of another type.
    """
    if not value:
        raise ValueError("empty mobile identity")
    type_ = value[0] & 0x07
    if type_ == TYPE_GUTI:
        if len(value) != 11:
            raise ValueError("GUTI value part must be 11 octets")
        mcc, mnc = parse_plmn_octets(value[1:4])
        return "guti", {
            "mcc": mcc,
            "mnc": mnc,
            "mme_group_id": int.from_bytes(value[4:6], "big"),
            "mme_code": value[6],
            "m_tmsi": int.from_bytes(value[7:11], "big"),
        }
    if type_ == TYPE_TMSI:
        if len(value) != 5:
            raise ValueError("TMSI value part must be 5 octets")
        return "tmsi", {"tmsi": int.from_bytes(value[1:5], "big")}
    if type_ in (TYPE_IMSI, TYPE_IMEI, _EPS_TYPE_IMEI):
        digits = _parse_digits(value)
        if type_ == TYPE_IMSI:
            if not 6 <= len(digits) <= 15:
                raise ValueError("IMSI must have 6 to 15 digits")
            return "imsi", {"imsi": digits}
        if len(digits) == 15:
            return "imei", {"imei": digits}
        if type_ == TYPE_IMEISV and len(digits) == 16:
            return "imeisv", {"imeisv": digits}
        raise ValueError(f"identity type {type_} with {len(digits)} digits")
    raise ValueError(f"unsupported identity type {type_}")
