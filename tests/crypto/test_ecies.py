"""ECIES (TS 33.501 Annex C.3) against the C.4.3 / C.4.4 test data; properties; errors; PEM."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.crypto import ecies
from kmed.crypto.ecies import EciesError, decrypt, encrypt, generate_keypair
from tests.crypto.vectors import _HN_B_PUB_UNCOMPRESSED, ECIES_SETS

h = bytes.fromhex
KEYPAIRS = {p: generate_keypair(p) for p in ("A", "B")}


@pytest.mark.parametrize("clause", sorted(ECIES_SETS))
def test_official_scheme_output(clause: str) -> None:
    v = ECIES_SETS[clause]
    p = v["profile"]
    out = encrypt(p, h(v["hn_pub"]), h(v["plaintext"]), ephemeral_private_key=h(v["eph_priv"]))
    assert out == h(v["eph_pub"]) + h(v["ciphertext"]) + h(v["mac"])
    assert decrypt(p, h(v["hn_priv"]), out) == h(v["plaintext"])


@pytest.mark.parametrize("clause", sorted(ECIES_SETS))
def test_official_intermediate_values(clause: str) -> None:
    """Shared key, encryption key, ICB and MAC key as printed in C.4 (the KDF split of C.3.2)."""
    v = ECIES_SETS[clause]
    p = v["profile"]
    z = ecies._exchange_with(ecies._private_key(p, h(v["hn_priv"])), h(v["eph_pub"]), "eph")  # type: ignore[arg-type]
    assert z == h(v["shared"])
    enc_key, icb, mac_key = ecies._keys(z, h(v["eph_pub"]))
    assert enc_key == h(v["enc_key"]) and mac_key == h(v["mac_key"])
    if "icb" in v:
        assert icb == h(v["icb"])


def test_profile_b_home_key_uncompressed_form_matches() -> None:
    """The compressed home network key of C.4.4 is the same point as the uncompressed one."""
    v = ECIES_SETS["C.4.4.1"]
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), h(_HN_B_PUB_UNCOMPRESSED))
    assert pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint) == h(v["hn_pub"])


def test_profile_b_rejects_uncompressed_ephemeral_key() -> None:
    """C.3.4.2: the scheme output carries the compressed point; an uncompressed one is refused."""
    v = ECIES_SETS["C.4.4.1"]
    data = h(v["eph_pub_uncompressed"]) + h(v["ciphertext"]) + h(v["mac"])
    with pytest.raises(EciesError):
        decrypt("B", h(v["hn_priv"]), data)


@settings(max_examples=40, deadline=None)
@given(z=st.binary(min_size=1, max_size=200), info=st.binary(max_size=40), length=st.integers(1, 100))
def test_x963_kdf_matches_cryptography(z: bytes, info: bytes, length: int) -> None:
    """Differential check of our X9.63 KDF against cryptography's X963KDF."""
    ref = X963KDF(algorithm=hashes.SHA256(), length=length, sharedinfo=info).derive(z)
    assert ecies._x963_kdf(z, info, length) == ref


@settings(max_examples=25, deadline=None)
@given(profile=st.sampled_from(["A", "B"]), plaintext=st.binary(max_size=100))
def test_round_trip(profile: str, plaintext: bytes) -> None:
    priv, pub = KEYPAIRS[profile]
    out = encrypt(profile, pub, plaintext)
    assert len(out) == ecies.PUBLIC_KEY_LEN[profile] + len(plaintext) + 8
    assert decrypt(profile, priv, out) == plaintext
    assert encrypt(profile, pub, plaintext) != out  # fresh ephemeral key each time


@settings(max_examples=25, deadline=None)
@given(profile=st.sampled_from(["A", "B"]), plaintext=st.binary(min_size=1, max_size=40), where=st.integers(0, 10**6))
def test_tampering_fails(profile: str, plaintext: bytes, where: int) -> None:
    priv, pub = KEYPAIRS[profile]
    out = bytearray(encrypt(profile, pub, plaintext))
    n = ecies.PUBLIC_KEY_LEN[profile]
    # flip one bit in the ciphertext or the MAC-tag
    i = n + where % (len(out) - n)
    out[i] ^= 1 << (where % 8)
    with pytest.raises(EciesError):
        decrypt(profile, priv, bytes(out))


@pytest.mark.parametrize("profile", ["A", "B"])
def test_wrong_key_and_lengths_fail(profile: str) -> None:
    priv, pub = KEYPAIRS[profile]
    other_priv, _ = generate_keypair(profile)
    out = encrypt(profile, pub, b"k" * 32)
    with pytest.raises(EciesError, match="MAC-tag"):
        decrypt(profile, other_priv, out)
    with pytest.raises(EciesError, match="at least"):
        decrypt(profile, priv, out[: ecies.PUBLIC_KEY_LEN[profile] + 7])
    with pytest.raises(EciesError):
        decrypt(profile, priv, out[:-1])  # truncated MAC-tag
    with pytest.raises(EciesError):
        decrypt(profile, priv, out + b"\x00")  # extra octet
    with pytest.raises(ValueError, match=r"^public_key "):
        encrypt(profile, pub[:-1], b"x")
    with pytest.raises(ValueError, match=r"^private_key "):
        decrypt(profile, priv + b"\x00", out)
    with pytest.raises(ValueError, match=r"^plaintext "):
        encrypt(profile, pub, "text")  # type: ignore[arg-type]


def test_bad_points() -> None:
    with pytest.raises(EciesError, match="public_key"):
        encrypt("B", b"\x02" + b"\xff" * 32, b"x")  # x >= p: not on the curve
    with pytest.raises(EciesError, match="public_key"):
        encrypt("B", b"\x04" + bytes(32), b"x")
    with pytest.raises(EciesError, match="public_key"):
        encrypt("A", bytes(32), b"x")  # small-order X25519 point: all-zero shared secret
    priv, _ = KEYPAIRS["B"]
    with pytest.raises(EciesError, match="ephemeral"):
        decrypt("B", priv, b"\x03" + b"\xff" * 32 + bytes(8))
    with pytest.raises(EciesError, match="private_key"):
        decrypt("B", bytes(32), b"\x02" + bytes(32) + bytes(8))  # scalar 0


def test_bad_profile() -> None:
    with pytest.raises(EciesError, match="profile"):
        generate_keypair("C")
    with pytest.raises(EciesError, match="profile"):
        encrypt("a", bytes(32), b"")


def test_errors_hold_no_key_material() -> None:
    priv, pub = KEYPAIRS["A"]
    other, _ = generate_keypair("A")
    out = encrypt("A", pub, b"secret-kme")
    with pytest.raises(EciesError) as exc:
        decrypt("A", other, out)
    text = str(exc.value)
    for secret in (priv, other, pub, out):
        assert secret.hex() not in text


@pytest.mark.parametrize("profile", ["A", "B"])
def test_pem_round_trip(profile: str) -> None:
    priv, pub = KEYPAIRS[profile]
    assert ecies.load_private_key_pem(ecies.private_key_to_pem(profile, priv)) == (profile, priv)
    assert ecies.load_public_key_pem(ecies.public_key_to_pem(profile, pub)) == (profile, pub)
    assert ecies.private_key_to_pem(profile, priv).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert ecies.public_key_to_pem(profile, pub).startswith(b"-----BEGIN PUBLIC KEY-----")


def test_pem_profile_from_openssl_style_keys() -> None:
    """Profile deduced from the key type of keys made by another tool (cryptography here)."""
    k = ec.generate_private_key(ec.SECP256R1())
    pem = k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    profile, raw = ecies.load_private_key_pem(pem)
    assert profile == "B" and int.from_bytes(raw, "big") == k.private_numbers().private_value
    pub_pem = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    profile, raw_pub = ecies.load_public_key_pem(pub_pem)
    assert profile == "B" and len(raw_pub) == 33
    assert decrypt("B", raw, encrypt("B", raw_pub, b"abc")) == b"abc"


def test_pem_unsupported_or_garbage() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_pem = ed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(EciesError, match="unsupported"):
        ecies.load_private_key_pem(ed_pem)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(EciesError, match="unsupported"):
        ecies.load_public_key_pem(
            p384.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    with pytest.raises(EciesError, match="PEM"):
        ecies.load_private_key_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(EciesError, match="PEM"):
        ecies.load_public_key_pem(b"not a key")
    enc_pem = ed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    with pytest.raises(EciesError):
        ecies.load_private_key_pem(enc_pem)


@pytest.mark.parametrize("profile", ["A", "B"])
def test_ephemeral_keys_stay_out_of_key_caches(profile: str) -> None:
    """The caches hold long-lived device/home keys; one-time keys must not evict them."""
    _, pub = KEYPAIRS[profile]
    caches = (ecies._x25519_private, ecies._p256_private)
    before = [c.cache_info().currsize for c in caches]
    for _ in range(5):
        encrypt(profile, pub, b"x")
    assert [c.cache_info().currsize for c in caches] == before


@pytest.mark.parametrize("clause", sorted(ECIES_SETS))
def test_device_key_decrypts_the_official_outputs(clause: str) -> None:
    v = ECIES_SETS[clause]
    key = ecies.DeviceKey(v["profile"], h(v["hn_priv"]))
    out = h(v["eph_pub"]) + h(v["ciphertext"]) + h(v["mac"])
    assert key.decrypt(out) == h(v["plaintext"])
    assert key.public_key() == ecies.public_from_private(v["profile"], h(v["hn_priv"]))
    assert "redacted" in repr(key) and v["hn_priv"] not in repr(key)


@pytest.mark.parametrize("profile", ["A", "B"])
def test_device_key_refuses_what_decrypt_refuses(profile: str) -> None:
    priv, pub = KEYPAIRS[profile]
    key = ecies.DeviceKey(profile, priv)
    out = bytearray(encrypt(profile, pub, b"k" * 32))
    assert key.decrypt(bytes(out)) == b"k" * 32
    out[-1] ^= 1
    with pytest.raises(EciesError, match="MAC-tag"):
        key.decrypt(bytes(out))
    with pytest.raises(EciesError, match="at least"):
        key.decrypt(bytes(out[:10]))
    with pytest.raises(EciesError, match="private_key"):
        ecies.DeviceKey("B", bytes(32))  # scalar 0
    with pytest.raises(EciesError, match="profile"):
        ecies.DeviceKey("C", priv)


def test_ephemeral_keys_stay_out_of_the_public_key_cache() -> None:
    priv, pub = KEYPAIRS["A"]
    ecies._x25519_public.cache_clear()
    encrypt("A", pub, b"x")  # the device's public key: cached (the HSS encrypts to it again)
    for _ in range(3):
        decrypt("A", priv, encrypt("A", pub, b"x"))  # one-time ephemeral keys: not cached
    assert ecies._x25519_public.cache_info().currsize == 1
