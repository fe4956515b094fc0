"""128-EIA2 / 128-EEA2 against TS 33.401 Annex C.2 and C.1, plus properties and input checks."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.crypto import _aes
from kmed.crypto.nas_security import NasKey, eea2, eia2
from tests.crypto.vectors import EEA2_SETS, EIA2_SETS

h = bytes.fromhex


def _exact(hexstr: str, nbits: int) -> bytes:
    """The spec prints data in whole 32-bit words: drop the zero octets past ceil(LENGTH / 8)."""
    data = h(hexstr)
    n = (nbits + 7) // 8
    assert not any(data[n:]), "only zero padding may be dropped"
    return data[:n]


@pytest.mark.parametrize("n", sorted(EIA2_SETS))
def test_eia2_official(n: int) -> None:
    key, count, bearer, direction, nbits, message, mac = EIA2_SETS[n]
    assert eia2(h(key), count, bearer, direction, _exact(message, nbits), length_bits=nbits) == h(mac)


@pytest.mark.parametrize("n", sorted(EEA2_SETS))
def test_eea2_official(n: int) -> None:
    key, count, bearer, direction, nbits, plain, cipher = EEA2_SETS[n]
    p, c = _exact(plain, nbits), _exact(cipher, nbits)
    assert eea2(h(key), count, bearer, direction, p, length_bits=nbits) == c
    assert eea2(h(key), count, bearer, direction, c, length_bits=nbits) == p


def test_eia2_octet_message_default_length() -> None:
    """Test set 2 is whole octets: the default length (8 x octets) gives the same MAC."""
    key, count, bearer, direction, _, message, mac = EIA2_SETS[2]
    assert eia2(h(key), count, bearer, direction, h(message)) == h(mac)


keys = st.binary(min_size=16, max_size=16)
counts = st.integers(0, 2**32 - 1)
bearers = st.integers(0, 31)
directions = st.integers(0, 1)


@settings(max_examples=60, deadline=None)
@given(key=keys, count=counts, bearer=bearers, direction=directions, msg=st.binary(max_size=300))
def test_eia2_equals_reference_cmac(key: bytes, count: int, bearer: int, direction: int, msg: bytes) -> None:
    """Differential: our CMAC (cached CBC state) equals cryptography's AES-CMAC over the B.2.3 input."""
    header = ((count << 32) | (bearer << 27) | (direction << 26)).to_bytes(8, "big")
    ref = CMAC(algorithms.AES(key))
    ref.update(header + msg)
    assert eia2(key, count, bearer, direction, msg) == ref.finalize()[:4]


@settings(max_examples=60, deadline=None)
@given(key=keys, count=counts, bearer=bearers, direction=directions, msg=st.binary(max_size=300))
def test_eea2_round_trip_and_reference(key: bytes, count: int, bearer: int, direction: int, msg: bytes) -> None:
    c = eea2(key, count, bearer, direction, msg)
    assert len(c) == len(msg)
    assert eea2(key, count, bearer, direction, c) == msg
    icb = ((count << 96) | (bearer << 91) | (direction << 90)).to_bytes(16, "big")
    enc = Cipher(algorithms.AES(key), modes.CTR(icb)).encryptor()
    assert c == enc.update(msg) + enc.finalize()


@settings(max_examples=40, deadline=None)
@given(key=keys, count=counts, msg=st.binary(min_size=1, max_size=64), flip=st.integers(0, 10_000))
def test_eia2_detects_tampering(key: bytes, count: int, msg: bytes, flip: int) -> None:
    mac = eia2(key, count, 0, 0, msg)
    i = flip % (len(msg) * 8)
    tampered = bytearray(msg)
    tampered[i // 8] ^= 0x80 >> (i % 8)
    assert eia2(key, count, 0, 0, bytes(tampered)) != mac
    assert eia2(key, (count + 1) % 2**32, 0, 0, msg) != mac
    assert eia2(key, count, 0, 1, msg) != mac


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("key", dict(key=bytes(15))),
        ("key", dict(key="00" * 16)),
        ("count", dict(count=2**32)),
        ("count", dict(count=-1)),
        ("bearer", dict(bearer=32)),
        ("direction", dict(direction=2)),
        ("message", dict(message="abc")),
        ("message", dict(message=b"abc", length_bits=30)),
        ("length_bits", dict(message=b"abc", length_bits=-1)),
    ],
)
@pytest.mark.parametrize("fn", [eia2, eea2])
def test_bad_input_names_parameter(fn: object, name: str, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = dict(key=bytes(16), count=0, bearer=0, direction=0, message=b"x")
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name} "):
        fn(**args)  # type: ignore[operator]


@settings(max_examples=60, deadline=None)
@given(key=keys, count=counts, bearer=bearers, direction=directions, msg=st.binary(max_size=300))
def test_nas_key_agrees_with_the_functions(key: bytes, count: int, bearer: int, direction: int, msg: bytes) -> None:
    """A NasKey (one AES state per key, as a security context holds it) gives the same MAC and
    ciphertext as eia2/eea2, message after message with the same object."""
    k = NasKey(key)
    for i in range(2):
        c = (count + i) % 2**32
        assert k.eia2(c, bearer, direction, msg) == eia2(key, c, bearer, direction, msg)
        assert k.eea2(c, bearer, direction, msg) == eea2(key, c, bearer, direction, msg)
    assert key.hex() not in repr(k)


def test_nas_key_refuses_a_bad_key() -> None:
    with pytest.raises(ValueError, match=r"^key "):
        NasKey(bytes(15))


def test_cmac_subkeys_rfc4493() -> None:
    """RFC 4493 §4: the subkeys of the example key (derived on first use)."""
    aes = _aes.AesKey(h("2b7e151628aed2a6abf7158809cf4f3c"))
    assert aes.k1 == int("fbeed618357133667c85e08f7236a8de", 16)
    assert aes.k2 == int("f7ddac306ae266ccf90bc11ee46d513b", 16)


@settings(max_examples=40, deadline=None)
@given(key=keys, nblocks=st.integers(1, 6), data=st.binary(min_size=96, max_size=96))
def test_cbc_mac_equals_cbc_encryption(key: bytes, nblocks: int, data: bytes) -> None:
    """CBC-MAC with IV = 0 from one CBC encryptor kept across calls (its chaining undone each
    time): every call equals a fresh CBC encryption, interleaved with CMACs of the same key."""
    aes = _aes.AesKey(key)
    for i in range(3):
        blocks = data[16 * i:16 * (i + nblocks)] or data[:16]
        enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
        assert aes.cbc_mac(blocks) == enc.update(blocks)[-16:]
        ref = CMAC(algorithms.AES(key))
        ref.update(blocks[:20])
        assert aes.cmac_bits(blocks[:20], 8 * len(blocks[:20])) == ref.finalize()


def test_fast_ecb_factory_equals_the_public_api() -> None:
    """new_ecb may skip cryptography's Python-level checks (``_rust_factory``); whichever it uses
    encrypts as the public API does, and a wrong key size is still refused."""
    key = bytes(range(16, 32))
    block = bytes(range(16))
    with pytest.raises(ValueError):
        _aes.new_ecb(bytes(15))
    fast = _aes._rust_factory()
    if fast is None:
        pytest.skip("this cryptography lays its contexts out otherwise: new_ecb is the public API")
    assert fast(key, _aes._ECB).update(block) == _aes._public(key, _aes._ECB).update(block)
    assert fast(key, _aes._CBC0).update(block * 3) == _aes._public(key, _aes._CBC0).update(block * 3)
