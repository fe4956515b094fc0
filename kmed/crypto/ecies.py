"""ECIES as in TS 33.501 Annex C.3 (the SUCI scheme), used here to encrypt KME to a device key.

- Profile A (C.3.4.1): X25519; Profile B (C.3.4.2): secp256r1 (P-256) with the ephemeral
  public key point-compressed (33 octets). Profile is ``"A"`` or ``"B"``.
- KDF: ANSI X9.63 with SHA-256, SharedInfo1 = the ephemeral public key as sent, 64 octets of
  keying data split as encryption key (16) ‖ ICB (16) ‖ MAC key (32) (C.3.2, C.3.4).
- Encryption: AES-128-CTR from the ICB; MAC: HMAC-SHA-256 over the ciphertext, first 8 octets.
- Output: ephemeral public key ‖ ciphertext ‖ MAC-tag (C.3.2, Figure C.3.2-1).

Keys are raw bytes: X25519 private and public 32 octets; P-256 private 32 octets (big-endian
scalar), public 33 octets compressed. Errors are :class:`EciesError` and never carry key material.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kmed.crypto._check import octets
from kmed.crypto._hmac import hmac_sha256

__all__ = [
    "PROFILES",
    "EciesError",
    "Profile",
    "decrypt",
    "encrypt",
    "generate_keypair",
    "load_private_key_pem",
    "load_public_key_pem",
    "parse_profile",
    "private_key_to_pem",
    "public_from_private",
    "public_key_to_pem",
]

Profile = Literal["A", "B"]
PROFILES: tuple[Profile, ...] = ("A", "B")

MAC_LEN = 8
_ENC_KEY_LEN = 16
_ICB_LEN = 16
_MAC_KEY_LEN = 32
#: Length of the ephemeral (and home/device) public key in the scheme output, per profile.
PUBLIC_KEY_LEN: dict[str, int] = {"A": 32, "B": 33}
PRIVATE_KEY_LEN = 32
_CURVE = ec.SECP256R1()
#: The order n of the P-256 base point (SEC 2 §2.4.2).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class EciesError(ValueError):
    """The data or a key cannot be used: wrong length, invalid point, MAC mismatch."""


def parse_profile(profile: object) -> Profile:
    """``"A"`` or ``"B"``; anything else raises :class:`EciesError`."""
    if profile == "A":
        return "A"
    if profile == "B":
        return "B"
    raise EciesError(f"profile must be 'A' or 'B', got {profile!r}")


# --- key objects (cached: building a P-256 key from raw bytes costs a point multiplication) ---


@functools.lru_cache(maxsize=256)
def _x25519_private(raw: bytes) -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.from_private_bytes(raw)


@functools.lru_cache(maxsize=256)
def _x25519_public(raw: bytes) -> x25519.X25519PublicKey:
    return x25519.X25519PublicKey.from_public_bytes(raw)


def _p256_from_scalar(raw: bytes) -> ec.EllipticCurvePrivateKey:
    value = int.from_bytes(raw, "big")
    if not 1 <= value < P256_ORDER:
        raise EciesError("private_key is not a valid P-256 scalar (must be in [1, n-1])")
    return ec.derive_private_key(value, _CURVE)


_p256_private = functools.lru_cache(maxsize=256)(_p256_from_scalar)


def _p256_point(raw: bytes, name: str) -> ec.EllipticCurvePublicKey:
    if raw[0] not in (2, 3):
        raise EciesError(f"{name} must be a compressed P-256 point (first octet 02 or 03)")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, raw)
    except ValueError:
        raise EciesError(f"{name} is not a point on P-256") from None


_p256_public = functools.lru_cache(maxsize=256)(_p256_point)


def _compressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)


def _x963_kdf(z: bytes, shared_info: bytes, length: int) -> bytes:
    """ANSI X9.63 KDF with SHA-256 (SEC 1 §3.6.1): SHA-256(Z ‖ counter32 ‖ SharedInfo) for counter = 1, 2, …"""
    out = b"".join(
        hashlib.sha256(z + i.to_bytes(4, "big") + shared_info).digest() for i in range(1, (length + 31) // 32 + 1)
    )
    return out[:length]


def _keys(z: bytes, eph_public: bytes) -> tuple[bytes, bytes, bytes]:
    """(encryption key, ICB, MAC key) from the shared secret (C.3.2, C.3.4)."""
    k = _x963_kdf(z, eph_public, _ENC_KEY_LEN + _ICB_LEN + _MAC_KEY_LEN)
    return k[:16], k[16:32], k[32:]


def _ctr(enc_key: bytes, icb: bytes, data: bytes) -> bytes:
    c = Cipher(algorithms.AES(enc_key), modes.CTR(icb)).encryptor()
    return c.update(data) + c.finalize()


def _mac(mac_key: bytes, ciphertext: bytes) -> bytes:
    return hmac_sha256(mac_key, ciphertext)[:MAC_LEN]


_PrivateKey = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey


def _private_key(profile: Profile, raw: bytes) -> _PrivateKey:
    return _x25519_private(raw) if profile == "A" else _p256_private(raw)


def _public_bytes(key: _PrivateKey) -> bytes:
    if isinstance(key, x25519.X25519PrivateKey):
        return key.public_key().public_bytes_raw()
    return _compressed(key.public_key())


def _exchange_with(key: _PrivateKey, peer_public: bytes, peer_name: str, one_time: bool = False) -> bytes:
    """ECDH shared secret Z (C.3.4: X25519, or the x-coordinate for P-256). ``one_time``: the
    peer key is an ephemeral one, seen once: kept out of the public-key caches."""
    try:
        if isinstance(key, x25519.X25519PrivateKey):
            if one_time:
                return key.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
            return key.exchange(_x25519_public(peer_public))
        point = _p256_point(peer_public, peer_name) if one_time else _p256_public(peer_public, peer_name)
        return key.exchange(ec.ECDH(), point)
    except EciesError:
        raise
    except ValueError:  # e.g. X25519 with a small-order point gives an all-zero secret
        raise EciesError(f"{peer_name} gives no usable shared secret") from None


def _key_object(profile: Profile, raw: bytes | None) -> _PrivateKey:
    """A private key object built outside the caches (a new one when ``raw`` is None): for
    one-time keys, and for a :class:`DeviceKey`, which keeps its own."""
    if profile == "A":
        if raw is None:
            return x25519.X25519PrivateKey.generate()
        return x25519.X25519PrivateKey.from_private_bytes(raw)
    if raw is None:
        return ec.generate_private_key(_CURVE)
    return _p256_from_scalar(raw)


# --- public API -----------------------------------------------------------------------------


def public_from_private(profile: str, private_key: bytes) -> bytes:
    """The raw public key (X25519 32 octets, P-256 compressed 33) of a raw private key."""
    p = parse_profile(profile)
    return _public_bytes(_private_key(p, octets("private_key", private_key, PRIVATE_KEY_LEN)))


def generate_keypair(profile: str) -> tuple[bytes, bytes]:
    """A new (private, public) key pair in raw form for ``profile``."""
    p = parse_profile(profile)
    if p == "A":
        priv = x25519.X25519PrivateKey.generate()
        return priv.private_bytes_raw(), priv.public_key().public_bytes_raw()
    key = ec.generate_private_key(_CURVE)
    return key.private_numbers().private_value.to_bytes(32, "big"), _compressed(key.public_key())


def encrypt(profile: str, public_key: bytes, plaintext: bytes, ephemeral_private_key: bytes | None = None) -> bytes:
    """ECIES-encrypt ``plaintext`` to ``public_key``: ephemeral public key ‖ ciphertext ‖ MAC-tag.

    ``ephemeral_private_key`` is for test vectors only; normally a fresh one is generated.
    """
    p = parse_profile(profile)
    public_key = octets("public_key", public_key, PUBLIC_KEY_LEN[p])
    plaintext = octets("plaintext", plaintext)
    if ephemeral_private_key is not None:
        ephemeral_private_key = octets("ephemeral_private_key", ephemeral_private_key, PRIVATE_KEY_LEN)
    eph = _key_object(p, ephemeral_private_key)
    eph_public = _public_bytes(eph)
    z = _exchange_with(eph, public_key, "public_key")
    enc_key, icb, mac_key = _keys(z, eph_public)
    ciphertext = _ctr(enc_key, icb, plaintext)
    return eph_public + ciphertext + _mac(mac_key, ciphertext)


def decrypt(profile: str, private_key: bytes, data: bytes) -> bytes:
    """Check the MAC-tag (constant time) and decrypt an ECIES scheme output; raise :class:`EciesError`."""
    p = parse_profile(profile)
    private_key = octets("private_key", private_key, PRIVATE_KEY_LEN)
    return _decrypt_with(p, _private_key(p, private_key), data)


def _decrypt_with(p: Profile, key: _PrivateKey, data: bytes) -> bytes:
    data = octets("data", data)
    n = PUBLIC_KEY_LEN[p]
    if len(data) < n + MAC_LEN:
        raise EciesError(f"data must be at least {n + MAC_LEN} octets for profile {p}, got {len(data)}")
    eph_public, ciphertext, tag = data[:n], data[n:-MAC_LEN], data[-MAC_LEN:]
    z = _exchange_with(key, eph_public, "ephemeral public key", one_time=True)
    enc_key, icb, mac_key = _keys(z, eph_public)
    if not hmac.compare_digest(_mac(mac_key, ciphertext), tag):
        raise EciesError("MAC-tag does not verify (wrong key or altered data)")
    return _ctr(enc_key, icb, ciphertext)


class DeviceKey:
    """A device's private key, made into a key object once (an ME keeps it): :meth:`decrypt`
    is :func:`decrypt` without rebuilding the key or consulting the key cache, which a load
    harness with thousands of devices would miss every time (a P-256 key costs a point
    multiplication to build)."""

    __slots__ = ("_key", "profile")

    def __init__(self, profile: str, private_key: bytes) -> None:
        self.profile: Profile = parse_profile(profile)
        raw = octets("private_key", private_key, PRIVATE_KEY_LEN)
        self._key = _key_object(self.profile, raw)

    def __repr__(self) -> str:
        return f"DeviceKey(profile={self.profile}, <private key redacted>)"

    def public_key(self) -> bytes:
        """The raw public key (X25519 32 octets, P-256 compressed 33)."""
        return _public_bytes(self._key)

    def decrypt(self, data: bytes) -> bytes:
        """As :func:`decrypt` with this key."""
        return _decrypt_with(self.profile, self._key, data)


# --- PEM ------------------------------------------------------------------------------------


def private_key_to_pem(profile: str, raw: bytes) -> bytes:
    """PKCS#8 PEM (unencrypted) of a raw private key."""
    p = parse_profile(profile)
    raw = octets("raw", raw, PRIVATE_KEY_LEN)
    return _private_key(p, raw).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_to_pem(profile: str, raw: bytes) -> bytes:
    """SubjectPublicKeyInfo PEM of a raw public key (X25519 32 octets, P-256 compressed 33)."""
    p = parse_profile(profile)
    raw = octets("raw", raw, PUBLIC_KEY_LEN[p])
    key: x25519.X25519PublicKey | ec.EllipticCurvePublicKey
    key = _x25519_public(raw) if p == "A" else _p256_public(raw, "raw")
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key_pem(data: bytes) -> tuple[Profile, bytes]:
    """(profile, raw private key) from a PEM private key: X25519 is ``"A"``, P-256 is ``"B"``."""
    data = octets("data", data)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise EciesError("data is not an unencrypted PEM private key") from None
    if isinstance(key, x25519.X25519PrivateKey):
        return "A", key.private_bytes_raw()
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "B", key.private_numbers().private_value.to_bytes(32, "big")
    raise EciesError("unsupported private key type (need X25519 for profile A or P-256 for profile B)")


def load_public_key_pem(data: bytes) -> tuple[Profile, bytes]:
    """(profile, raw public key) from a PEM public key: X25519 is ``"A"``, P-256 is ``"B"`` (compressed)."""
    data = octets("data", data)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise EciesError("data is not a PEM public key") from None
    if isinstance(key, x25519.X25519PublicKey):
        return "A", key.public_bytes_raw()
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "B", _compressed(key)
    raise EciesError("unsupported public key type (need X25519 for profile A or P-256 for profile B)")
