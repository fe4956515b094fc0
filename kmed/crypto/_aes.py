"""AES-128 primitives with per-key state kept for reuse (creating a cipher object costs ~20x one block).

:class:`AesKey` holds an ECB encryptor (single blocks, CTR keystream) and a CBC encryptor whose
chaining value is tracked so that CBC-MAC over a fresh IV of zero needs no new cipher object:
XOR-ing the previous last ciphertext block into the first block undoes the chaining.
The objects are stateful: use them from one thread (the asyncio daemons do).
"""

from __future__ import annotations

from collections import OrderedDict

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

_MASK128 = (1 << 128) - 1
_RB = 0x87  # NIST SP 800-38B §5.3: R_128


def new_ecb(key: bytes) -> CipherContext:
    """A fresh AES ECB encryptor (single-block uses only: MILENAGE kernel, CTR keystream, CMAC subkeys)."""
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()


def _dbl(x: int) -> int:
    """Doubling in GF(2^128) as used for the CMAC subkeys (NIST SP 800-38B §6.1)."""
    x <<= 1
    return (x ^ _RB) & _MASK128 if x >> 128 else x


class AesKey:
    """One AES-128 key with its reusable encryptors and CMAC subkeys."""

    __slots__ = ("_cbc", "_cbc_last", "ecb", "k1", "k2")

    def __init__(self, key: bytes) -> None:
        self.ecb = new_ecb(key)
        self._cbc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
        self._cbc_last = 0  # chaining value of the CBC encryptor (its IV is zero at the start)
        l_ = int.from_bytes(self.ecb.update(bytes(16)), "big")
        self.k1 = _dbl(l_)
        self.k2 = _dbl(self.k1)

    def __repr__(self) -> str:
        return "AesKey(<redacted>)"

    def cbc_mac(self, blocks: bytes) -> bytes:
        """Last block of AES-CBC with IV = 0 over ``blocks`` (a non-empty multiple of 16 octets)."""
        first = (int.from_bytes(blocks[:16], "big") ^ self._cbc_last).to_bytes(16, "big")
        out = self._cbc.update(first + blocks[16:])
        last = out[-16:]
        self._cbc_last = int.from_bytes(last, "big")
        return last

    def cmac_bits(self, data: bytes, nbits: int) -> bytes:
        """AES-CMAC (NIST SP 800-38B, RFC 4493) of the first ``nbits`` bits of ``data``.

        ``data`` holds at least ceil(nbits / 8) octets; bits after ``nbits`` are ignored.
        """
        nbytes = (nbits + 7) // 8
        buf = bytearray(data[:nbytes])
        if nbits % 8:
            buf[-1] &= (0xFF << (8 - nbits % 8)) & 0xFF
        if nbits and nbits % 128 == 0:
            subkey = self.k1
        else:
            if nbits % 8 == 0:
                buf.append(0x80)
            else:
                buf[-1] |= 0x80 >> (nbits % 8)
            buf.extend(bytes(-len(buf) % 16))
            subkey = self.k2
        last = (int.from_bytes(buf[-16:], "big") ^ subkey).to_bytes(16, "big")
        return self.cbc_mac(bytes(buf[:-16]) + last)

    def ctr_keystream(self, icb: int, nbytes: int) -> bytes:
        """``nbytes`` of AES-CTR keystream from the 128-bit initial counter block ``icb``
        (NIST SP 800-38A standard incrementing function over the whole block)."""
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
