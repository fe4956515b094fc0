"""HMAC-SHA-256 (RFC 2104) over hashlib's SHA-256.

Every KDF of TS 33.220 Annex B (KASME, the NAS keys, KME_Check, the bound K'ASME) is one
HMAC-SHA-256, and the HSS, the CNN and each simulated UE compute several per procedure.
``hmac.digest(key, msg, "sha256")`` asks OpenSSL 3 to fetch the algorithm on each call:
5.8 µs per call here against 2.2 µs for the same HMAC from two ``hashlib.sha256`` objects
(12 % of the HSS's event-loop samples were ``hmac.digest`` for one KDF per AIR). Checked
against RFC 4231 and against :func:`hmac.digest` in tests/crypto/test_hmac.py.
"""

from __future__ import annotations

from hashlib import sha256

BLOCK = 64  # SHA-256's block size in octets (FIPS 180-4)
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA-256(key, msg), 32 octets (RFC 2104 §2; keys longer than a block are hashed)."""
    if len(key) > BLOCK:
        key = sha256(key).digest()
    key = key.ljust(BLOCK, b"\x00")
    return sha256(key.translate(_OPAD) + sha256(key.translate(_IPAD) + msg).digest()).digest()
