"""AES-128 primitives with per-key state kept for reuse (creating a cipher object costs ~20x one block).

:class:`AesKey` holds one ECB encryptor per key and serves both modes kmed needs with it: the
CTR keystream (one ``update`` over the counter blocks) and CMAC, whose CBC-MAC chain is run block
by block (NAS messages are a few blocks). The CMAC subkeys are derived on the first MAC only, so
a ciphering-only key never pays for them. The objects are stateless between calls but not
thread-safe: use them from one thread (the asyncio daemons do).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

_MASK128 = (1 << 128) - 1
_RB = 0x87  # NIST SP 800-38B §5.3: R_128
_ECB = modes.ECB()
_ZERO = bytes(16)


def _public_ecb(key: bytes) -> CipherContext:
    return Cipher(algorithms.AES(key), _ECB).encryptor()


def _rust_factory() -> Callable[[bytes], CipherContext] | None:
    """The context factory ``Cipher.encryptor`` ends in (cryptography >= 42), without its
    Python-level checks (~2/3 of the cost of a new context); None when this version of
    cryptography lays it out otherwise, or when it fails FIPS-197 Appendix C.1's known answer."""
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        create: Any = rust_openssl.ciphers.create_encryption_ctx

        def fast(key: bytes) -> CipherContext:
            return create(algorithms.AES(key), _ECB)  # type: ignore[no-any-return]

        kat = fast(bytes(range(16))).update(bytes.fromhex("00112233445566778899aabbccddeeff"))
        if kat != bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a"):
            return None
        return fast
    except Exception:  # any layout change: use the public API
        return None


_new_ecb: Callable[[bytes], CipherContext] = _rust_factory() or _public_ecb


def new_ecb(key: bytes) -> CipherContext:
    """A fresh AES ECB encryptor (single-block uses only: MILENAGE kernel, CTR keystream, CMAC)."""
    return _new_ecb(key)  # algorithms.AES refuses a key of another size (ValueError)


def _dbl(x: int) -> int:
    """Doubling in GF(2^128) as used for the CMAC subkeys (NIST SP 800-38B §6.1)."""
    x <<= 1
    return (x ^ _RB) & _MASK128 if x >> 128 else x


class AesKey:
    """One AES-128 key with its reusable ECB encryptor and (once used) its CMAC subkeys."""

    __slots__ = ("_k1", "_k2", "ecb")

    def __init__(self, key: bytes) -> None:
        self.ecb = new_ecb(key)
        self._k1 = -1  # CMAC subkeys, derived on the first MAC (NIST SP 800-38B §6.1)
        self._k2 = 0

    def __repr__(self) -> str:
        return "AesKey(<redacted>)"

    def _subkeys(self) -> None:
        l_ = int.from_bytes(self.ecb.update(_ZERO), "big")
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

    def _chain(self, buf: bytes | bytearray, last_xor: int) -> bytes:
        """CBC-MAC with IV = 0 over ``buf`` (a non-empty multiple of 16 octets), ``last_xor``
        XOR-ed into the last block first (the CMAC subkey; 0 for plain CBC-MAC)."""
        enc = self.ecb.update
        from_bytes = int.from_bytes
        n = len(buf) - 16
        c = 0
        for i in range(0, n, 16):
            c = from_bytes(enc((from_bytes(buf[i:i + 16], "big") ^ c).to_bytes(16, "big")), "big")
        return enc((from_bytes(buf[n:], "big") ^ c ^ last_xor).to_bytes(16, "big"))

    def cbc_mac(self, blocks: bytes) -> bytes:
        """Last block of AES-CBC with IV = 0 over ``blocks`` (a non-empty multiple of 16 octets)."""
        if not blocks or len(blocks) % 16:
            raise ValueError("CBC-MAC takes a non-empty multiple of 16 octets")
        return self._chain(blocks, 0)

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
        return self._chain(buf, subkey)

    def ctr_keystream(self, icb: int, nbytes: int) -> bytes:
        """``nbytes`` of AES-CTR keystream from the 128-bit initial counter block ``icb``
        (NIST SP 800-38A standard incrementing function over the whole block)."""
        if nbytes <= 16:
            return self.ecb.update(icb.to_bytes(16, "big"))[:nbytes]
        nblocks = (nbytes + 15) // 16
        counters = b"".join(((icb + i) & _MASK128).to_bytes(16, "big") for i in range(nblocks))
        return self.ecb.update(counters)[:nbytes]


_CACHE_SIZE = 1024
_cache: OrderedDict[bytes, AesKey] = OrderedDict()


def aes_key(key: bytes) -> AesKey:
    """The cached :class:`AesKey` for ``key`` (a small LRU, at most 1024 keys)."""
    entry = _cache.get(key)
    if entry is None:
        entry = AesKey(key)
        _cache[key] = entry
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return entry
