"""The KME-Token: proof, carried from AIA (seed step 4) back in ULR (step 12), that this HSS
issued a given KME for a given IMSI and IMEI -- so the HSS stays stateless between the steps
and a ULR cannot install a KME the HSS did not issue (docs/hss.md, "KME token").

    token = MAC ‖ issued_at
    MAC   = first 16 octets of HMAC-SHA-256(token key,
              "kmed-kme-token" ‖ len(IMSI) ‖ IMSI ‖ len(IMEI) ‖ IMEI ‖ KME ‖ issued_at)

IMSI and IMEI as ASCII digits with a one-octet length; ``issued_at`` is microseconds since
the Unix epoch as 8 octets big-endian. Pure functions: the caller passes the clock.
"""

from __future__ import annotations

import hmac
import struct

from kmed.crypto._hmac import hmac_sha256

TOKEN_LABEL = b"kmed-kme-token"
MAC_LEN = 16
TOKEN_LEN = MAC_LEN + 8
KEY_LEN = 32
#: How far in the future an issued_at may be (clock steps on this host) before it is refused.
MAX_CLOCK_SKEW_US = 5_000_000


class TokenInvalid(Exception):
    """The token does not verify, is malformed, expired or from the future; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _field(text: str) -> bytes:
    data = text.encode("ascii")
    if len(data) > 255:
        raise ValueError("identity too long for the token")
    return bytes([len(data)]) + data


def _mac(key: bytes, imsi: str, imei: str, kme: bytes, issued_at: bytes) -> bytes:
    msg = TOKEN_LABEL + _field(imsi) + _field(imei) + kme + issued_at
    return hmac_sha256(key, msg)[:MAC_LEN]


def make_token(key: bytes, imsi: str, imei: str, kme: bytes, issued_at_us: int) -> bytes:
    """The KME-Token for a KME issued at ``issued_at_us`` for (IMSI, IMEI)."""
    if len(key) != KEY_LEN:
        raise ValueError(f"token key must be {KEY_LEN} octets")
    at = struct.pack(">Q", issued_at_us)
    return _mac(key, imsi, imei, kme, at) + at


def verify_token(
    key: bytes, imsi: str, imei: str, kme: bytes, token: bytes, now_us: int, lifetime_us: int
) -> int:
    """Check ``token`` for (IMSI, IMEI, KME); return its ``issued_at`` (µs).

    Raises :class:`TokenInvalid` when it is malformed, its MAC is wrong (forged, or issued
    for another IMSI, IMEI or KME), it is older than ``lifetime_us`` or from the future.
    """
    if len(token) != TOKEN_LEN:
        raise TokenInvalid("malformed token")
    mac, at = token[:MAC_LEN], token[MAC_LEN:]
    try:
        expected = _mac(key, imsi, imei, kme, at)
    except (ValueError, UnicodeEncodeError):
        raise TokenInvalid("malformed identity") from None
    if not hmac.compare_digest(mac, expected):
        raise TokenInvalid("MAC does not verify")
    (issued_at,) = struct.unpack(">Q", at)
    if issued_at > now_us + MAX_CLOCK_SKEW_US:
        raise TokenInvalid("issued in the future")
    if now_us - issued_at > lifetime_us:
        raise TokenInvalid("expired")
    return int(issued_at)
