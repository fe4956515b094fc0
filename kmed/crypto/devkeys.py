"""Deterministic device keys and identity ranges for ``kmed admin provision-range`` and the load harness.

A lab provisions N devices in the HSS and runs N simulated MEs; both sides derive each device's
key pair from one shared seed and the device's IMEI, so no key files need to be exchanged
(definition in docs/protocol.md, "Device keys"). Never use this for real devices.
"""

from __future__ import annotations

import hmac

from kmed.crypto._check import octets
from kmed.crypto.ecies import P256_ORDER, parse_profile, public_from_private

__all__ = ["MIN_SEED_LEN", "derive_device_key", "imei_at", "imsi_at", "luhn_digit"]

MIN_SEED_LEN = 16
_LABEL = b"kmed-device-key"


def _digits(name: str, value: object, lengths: range | tuple[int, ...]) -> str:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) not in lengths:
        shown = value if isinstance(value, str) and len(value) <= 20 else type(value).__name__
        raise ValueError(f"{name} must be a string of {_describe(lengths)} decimal digits, got {shown!r}")
    return value


def _describe(lengths: range | tuple[int, ...]) -> str:
    if isinstance(lengths, range):
        return f"{lengths.start} to {lengths.stop - 1}"
    return " or ".join(str(n) for n in lengths)


def luhn_digit(digits14: str) -> str:
    """The IMEI check digit (TS 23.003 §6.2.1 and Annex B: Luhn over the 14 digits TAC ‖ SNR)."""
    _digits("digits14", digits14, (14,))
    total = 0
    for pos, ch in enumerate(reversed(digits14)):
        d = int(ch)
        if pos % 2 == 0:  # every second digit from the right, starting with the rightmost, is doubled
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


def _index(i: object) -> int:
    if not isinstance(i, int) or isinstance(i, bool) or i < 0:
        raise ValueError(f"i must be a non-negative int, got {i!r}")
    return i


def _increment(name: str, first: str, i: int) -> str:
    value = int(first) + _index(i)
    if value >= 10 ** len(first):
        raise ValueError(f"{name} + {i} overflows {len(first)} digits")
    return str(value).zfill(len(first))


def imei_at(imei_first14: str, i: int) -> str:
    """The i-th IMEI of a range: (the 14 digits + i, same width) ‖ its Luhn check digit."""
    body = _increment("imei_first14", _digits("imei_first14", imei_first14, (14,)), i)
    return body + luhn_digit(body)


def imsi_at(imsi_first: str, i: int) -> str:
    """The i-th IMSI of a range: decimal increment keeping the length (TS 23.003 §2.2: up to 15 digits)."""
    return _increment("imsi_first", _digits("imsi_first", imsi_first, range(6, 16)), i)


def _check_imei(imei: str) -> str:
    _digits("imei", imei, (15,))
    if luhn_digit(imei[:14]) != imei[14]:
        raise ValueError(f"imei {imei} has a wrong check digit (expected {luhn_digit(imei[:14])})")
    return imei


def derive_device_key(seed: bytes, imei: str, profile: str) -> tuple[bytes, bytes]:
    """(private, public) raw device key for ``imei`` (15 digits with check digit) from ``seed``.

    m = "kmed-device-key" ‖ 0x00 ‖ profile ‖ 0x00 ‖ IMEI (ASCII digits).
    Profile A: private = HMAC-SHA-256(seed, m), used as the X25519 scalar (RFC 7748 clamps it).
    Profile B: d = (HMAC-SHA-256(seed, m ‖ 0x01) ‖ HMAC-SHA-256(seed, m ‖ 0x02)) mod (n − 1) + 1,
    512 bits reduced into [1, n − 1] (bias below 2^-256), as a 32-octet big-endian scalar.
    """
    seed = octets("seed", seed)
    if len(seed) < MIN_SEED_LEN:
        raise ValueError(f"seed must be at least {MIN_SEED_LEN} octets, got {len(seed)}")
    p = parse_profile(profile)
    m = _LABEL + b"\x00" + p.encode() + b"\x00" + _check_imei(imei).encode()
    if p == "A":
        private = hmac.digest(seed, m, "sha256")
    else:
        wide = hmac.digest(seed, m + b"\x01", "sha256") + hmac.digest(seed, m + b"\x02", "sha256")
        private = (int.from_bytes(wide, "big") % (P256_ORDER - 1) + 1).to_bytes(32, "big")
    return private, public_from_private(p, private)
