"""AES-128 primitives with per-key state kept for reuse (creating a cipher object costs ~20x one block).

:class:`AesKey` makes, on first use, the one cipher object each use needs: an ECB encryptor for
the CTR keystream (one ``update`` over the counter blocks) and a CBC encryptor for CMAC, whose
chaining value is tracked so that CBC-MAC over a fresh IV of zero needs no new cipher object:
XOR-ing the previous last ciphertext block into the first block undoes the chaining, and a
whole MAC is one ``update``. A NAS key is used for one of the two (K_NASint: CMAC, K_NASenc:
CTR), so it pays for one cipher object. The objects are not thread-safe: use them from one
thread (the asyncio daemons do).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

_MASK128 = (1 << 128) - 1
_RB = 0x87  # NIST SP 800-38B §5.3: R_128
_ECB = modes.ECB()
_ZERO = bytes(16)


_CBC0 = modes.CBC(_ZERO)  # CBC with IV = 0: CBC-MAC (the chaining is tracked by AesKey)


def _public(key: bytes, mode: modes.Mode) -> CipherContext:
    cipher: Any = Cipher(algorithms.AES(key), mode)
    return cipher.encryptor()  # type: ignore[no-any-return]


def _rust_factory() -> Callable[[bytes, modes.Mode], CipherContext] | None:
    """The context factory ``Cipher.encryptor`` ends in (cryptography >= 42), without its
    Python-level checks (~1/3 of the cost of a new context); None when this version of
    cryptography lays it out otherwise, or when it fails FIPS-197 Appendix C.1's known answer
    (in ECB, and in CBC with IV = 0, where one block is the same)."""
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        create: Any = rust_openssl.ciphers.create_encryption_ctx

        def fast(key: bytes, mode: modes.Mode) -> CipherContext:
            return create(algorithms.AES(key), mode)  # type: ignore[no-any-return]

        key, plain = bytes(range(16)), bytes.fromhex("00112233445566778899aabbccddeeff")
        expected = bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")
        if fast(key, _ECB).update(plain) != expected or fast(key, _CBC0).update(plain) != expected:
            return None
        return fast
    except Exception:  # any layout change: use the public API
        return None


_new: Callable[[bytes, modes.Mode], CipherContext] = _rust_factory() or _public


def new_ecb(key: bytes) -> CipherContext:
    """A fresh AES ECB encryptor (single-block uses only: MILENAGE kernel, CTR keystream, CMAC)."""
    return _new(key, _ECB)  # algorithms.AES refuses a key of another size (ValueError)


def _dbl(x: int) -> int:
    """Doubling in GF(2^128) as used for the CMAC subkeys (NIST SP 800-38B §6.1)."""
    x <<= 1
    return (x ^ _RB) & _MASK128 if x >> 128 else x


class AesKey:
    """One AES-128 key with its reusable encryptors (made on first use) and CMAC subkeys."""

    __slots__ = ("_cbc", "_cbc_last", "_ecb", "_k1", "_k2", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) not in (16, 24, 32):  # refused now (ValueError), as a cipher would refuse it
            raise ValueError(f"Invalid key size ({8 * len(key)}) for AES.")
        self._key = key
        self._ecb: CipherContext | None = None
        self._cbc: CipherContext | None = None
        self._cbc_last = 0  # chaining value of the CBC encryptor (its IV is zero at the start)
        self._k1 = -1  # CMAC subkeys, derived on the first MAC (NIST SP 800-38B §6.1)
        self._k2 = 0

    def __repr__(self) -> str:
        return "AesKey(<redacted>)"

    @property
    def ecb(self) -> CipherContext:
        """The key's ECB encryptor (single blocks, CTR keystream)."""
        ecb = self._ecb
        if ecb is None:
            ecb = self._ecb = new_ecb(self._key)
        return ecb

    def _subkeys(self) -> None:
        l_ = int.from_bytes(self.cbc_mac(_ZERO), "big")  # L = AES(K, 0^128)
        self._k1 = _dbl(l_)
        self._k2 = _dbl(self._k1)

    @property
    def k1(self) -> int:
        """CMAC subkey K1 (NIST SP 800-38B §6.1)."""
        if self._k1 < 0:
            self._subkeys()
        return self._k1

    @property
    def k2(self) -> int:
        """CMAC subkey K2 (NIST SP 800-38B §6.1)."""
        if self._k1 < 0:
            self._subkeys()
        return self._k2

    def _cbc_mac(self, buf: bytearray) -> bytes:
        """CBC-MAC with IV = 0 over ``buf`` (a non-empty multiple of 16 octets; changed in place)."""
        cbc = self._cbc
        if cbc is None:
            cbc = self._cbc = _new(self._key, _CBC0)
        if self._cbc_last:
            buf[:16] = (int.from_bytes(buf[:16], "big") ^ self._cbc_last).to_bytes(16, "big")
        last = cbc.update(buf)[-16:]
        self._cbc_last = int.from_bytes(last, "big")
        return last

    def cbc_mac(self, blocks: bytes) -> bytes:
        """Last block of AES-CBC with IV = 0 over ``blocks`` (a non-empty multiple of 16 octets)."""
        if not blocks or len(blocks) % 16:
            raise ValueError("CBC-MAC takes a non-empty multiple of 16 octets")
        return self._cbc_mac(bytearray(blocks))

    def cmac_bits(self, data: bytes, nbits: int) -> bytes:
        """AES-CMAC (NIST SP 800-38B, RFC 4493) of the first ``nbits`` bits of ``data``.

        ``data`` holds at least ceil(nbits / 8) octets; bits after ``nbits`` are ignored.
        """
        if self._k1 < 0:
            self._subkeys()
        nbytes = (nbits + 7) // 8
        buf = bytearray(data[:nbytes])
        if nbits % 8:
            buf[-1] &= (0xFF << (8 - nbits % 8)) & 0xFF
        if nbits and nbits % 128 == 0:
            subkey = self._k1
        else:
            if nbits % 8 == 0:
                buf.append(0x80)
            else:
                buf[-1] |= 0x80 >> (nbits % 8)
            buf.extend(bytes(-len(buf) % 16))
            subkey = self._k2
        buf[-16:] = (int.from_bytes(buf[-16:], "big") ^ subkey).to_bytes(16, "big")
        return self._cbc_mac(buf)

    def ctr_keystream(self, icb: int, nbytes: int) -> bytes:
        """``nbytes`` of AES-CTR keystream from the 128-bit initial counter block ``icb``
        (NIST SP 800-38A standard incrementing function over the whole block)."""
        if nbytes <= 16:
            return self.ecb.update(icb.to_bytes(16, "big"))[:nbytes]
        nblocks = (nbytes + 15) // 16
        counters = b"".join(((icb + i) & _MASK128).to_bytes(16, "big") for i in range(nblocks))
        return self.ecb.update(counters)[:nbytes]


#: The cached :class:`AesKey` for ``key`` (an LRU of at most 1024 keys).
aes_key = functools.lru_cache(maxsize=1024)(AesKey)
