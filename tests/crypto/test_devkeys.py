"""Deterministic device keys and identity ranges (docs/protocol.md, "Device keys")."""

from __future__ import annotations

import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.crypto import ecies
from kmed.crypto.devkeys import derive_device_key, imei_at, imsi_at, luhn_digit

SEED = bytes.fromhex("00112233445566778899aabbccddeeff")


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("49015420323751", "8"),  # the worked example of TS 23.003 Annex B (IMEI 490154203237518)
        ("35693803564380", "9"),  # the CONTRACT's example UE, IMEI 356938035643809
        ("00000000000000", "0"),
    ],
)
def test_luhn(body: str, check: str) -> None:
    assert luhn_digit(body) == check


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="0123456789", min_size=14, max_size=14))
def test_luhn_property(body: str) -> None:
    """The full 15 digits pass the Luhn check: the doubled-digit sum is a multiple of 10."""
    digits = [int(c) for c in body + luhn_digit(body)]
    total = 0
    for pos, d in enumerate(reversed(digits)):
        if pos % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    assert total % 10 == 0


def test_ranges() -> None:
    assert imei_at("35693803000000", 0) == "356938030000005"  # Luhn sum 35 -> 5
    assert imei_at("35693803000000", 5)[:14] == "35693803000005"
    assert imsi_at("001010000000001", 9) == "001010000000010"
    assert imsi_at("001010000000001", 0) == "001010000000001"
    assert imsi_at("00101999", 1) == "00102000"
    with pytest.raises(ValueError, match="overflow"):
        imsi_at("999999", 1)
    with pytest.raises(ValueError, match="overflow"):
        imei_at("99999999999999", 1)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: luhn_digit("1234"), "digits14"),
        (lambda: luhn_digit("1234567890123x"), "digits14"),
        (lambda: imei_at("356938035643809", 0), "imei_first14"),
        (lambda: imei_at("35693803000000", -1), "i"),
        (lambda: imsi_at("12345", 0), "imsi_first"),
        (lambda: imsi_at("1234567890123456", 0), "imsi_first"),
        (lambda: derive_device_key(SEED, "35693803564380", "A"), "imei"),
        (lambda: derive_device_key(SEED, "356938035643808", "A"), "imei"),
        (lambda: derive_device_key(SEED[:15], "356938035643809", "A"), "seed"),
        (lambda: derive_device_key("00" * 16, "356938035643809", "A"), "seed"),
        (lambda: derive_device_key(SEED, "356938035643809", "C"), "profile"),
    ],
)
def test_bad_input(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        call()  # type: ignore[operator]


def test_profile_a_definition() -> None:
    imei = "356938035643809"
    priv, pub = derive_device_key(SEED, imei, "A")
    m = b"kmed-device-key\x00A\x00" + imei.encode()
    assert priv == hmac.digest(SEED, m, "sha256")
    assert pub == ecies.public_from_private("A", priv)


def test_profile_b_definition() -> None:
    imei = "356938035643809"
    priv, pub = derive_device_key(SEED, imei, "B")
    m = b"kmed-device-key\x00B\x00" + imei.encode()
    wide = hmac.digest(SEED, m + b"\x01", "sha256") + hmac.digest(SEED, m + b"\x02", "sha256")
    assert int.from_bytes(priv, "big") == int.from_bytes(wide, "big") % (ecies.P256_ORDER - 1) + 1
    assert len(pub) == 33 and pub == ecies.public_from_private("B", priv)


def test_p256_order_constant() -> None:
    """P256_ORDER is the group order: n-1 is a valid scalar, n is not."""
    ec.derive_private_key(ecies.P256_ORDER - 1, ec.SECP256R1())
    with pytest.raises(ValueError):
        ec.derive_private_key(ecies.P256_ORDER, ec.SECP256R1())


@pytest.mark.parametrize("profile", ["A", "B"])
def test_deterministic_distinct_and_usable(profile: str) -> None:
    imeis = [imei_at("35693803000000", i) for i in range(5)]
    keys = [derive_device_key(SEED, imei, profile) for imei in imeis]
    assert keys == [derive_device_key(SEED, imei, profile) for imei in imeis]
    assert len({k for k, _ in keys}) == 5
    assert derive_device_key(SEED, imeis[0], "A")[0] != derive_device_key(SEED, imeis[0], "B")[0]
    assert derive_device_key(bytes(16), imeis[0], profile) != keys[0]
    priv, pub = keys[3]
    assert ecies.decrypt(profile, priv, ecies.encrypt(profile, pub, b"kme")) == b"kme"


def test_documented_example_values() -> None:
    """The device keys published in docs/protocol.md for the first IMEI of a range."""
    imei = imei_at("35693803000000", 0)
    assert imei == "356938030000005"
    assert [k.hex() for k in derive_device_key(SEED, imei, "A")] == [
        "988d5680f4c98d72c7f01a2dea1c4a071dbe7c418adfb6b076188f89d3c998d2",
        "612779b99962ff139a25601e2098ec0e08b7b63cb2b8a3b0cf4bfe734baa7642",
    ]
    assert [k.hex() for k in derive_device_key(SEED, imei, "B")] == [
        "eba3461d88af5b2d80848838837a7d3464cc13426df4cf812e75c265b60f2304",
        "02cd3cf1b4f0f6d5b1ca14c6c61d0e0937752c358667dca3887eec5da3aadcbe1a",
    ]
