"""The KME functions of the device-binding procedure (docs/protocol.md; DESIGN §2).

All are the TS 33.220 Annex B KDF with kmed's FC values from :mod:`kmed.crypto.kdf`.
"""

from __future__ import annotations

import hashlib
import secrets

from kmed.crypto._check import octets
from kmed.crypto.kdf import FC_KME_BIND, FC_KME_CHECK, FC_ME_RSP, kdf

__all__ = ["KME_LEN", "NONCE_LEN", "bound_kasme", "fingerprint", "kme_check", "me_rsp", "new_kme"]

KME_LEN = 32
NONCE_LEN = 16
_MAX_IDENTITY = 255  # an EPS mobile identity value is at most 11 octets (GUTI); an IE length fits in one octet


def new_kme() -> bytes:
    """A fresh KME: 256 bits from the OS CSPRNG."""
    return secrets.token_bytes(KME_LEN)


def kme_check(kme: bytes, identity: bytes) -> bytes:
    """KME_Check = first 16 octets of KDF(KME, FC_KME_CHECK, identity).

    ``identity`` is the EPS mobile identity *value* exactly as carried in the NAS message
    (TS 24.301 §9.9.3.12 contents after the length octet: the IMSI/GUTI octets with their
    type-of-identity and odd/even indicator).
    """
    kme = octets("kme", kme, KME_LEN)
    identity = octets("identity", identity)
    if not 1 <= len(identity) <= _MAX_IDENTITY:
        raise ValueError(f"identity must be 1 to {_MAX_IDENTITY} octets, got {len(identity)}")
    return kdf(kme, FC_KME_CHECK, identity)[:16]


def me_rsp(kme: bytes, nonce: bytes) -> bytes:
    """ME_Rsp = first 16 octets of KDF(KME, FC_ME_RSP, Nonce), Nonce 16 octets from the CNN."""
    kme = octets("kme", kme, KME_LEN)
    nonce = octets("nonce", nonce, NONCE_LEN)
    return kdf(kme, FC_ME_RSP, nonce)[:16]


def bound_kasme(kasme: bytes, kme: bytes) -> bytes:
    """K'ASME = KDF(KASME, FC_KME_BIND, KME): the KASME of an AV bound to KME (32 octets)."""
    kasme = octets("kasme", kasme, 32)
    kme = octets("kme", kme, KME_LEN)
    return kdf(kasme, FC_KME_BIND, kme)


def fingerprint(secret: bytes) -> str:
    """Hex SHA-256 of a secret: what logs and ``kmed ue``'s ``kme_fingerprint`` show instead of it."""
    return hashlib.sha256(octets("secret", secret)).hexdigest()
