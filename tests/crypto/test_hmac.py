"""kmed.crypto._hmac against RFC 4231's HMAC-SHA-256 test cases and against the stdlib."""

from __future__ import annotations

import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.crypto._hmac import hmac_sha256

# RFC 4231 §4.2, 4.3, 4.7 (test cases 1, 2 and 6: a key longer than the block)
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
]


def test_rfc4231_vectors() -> None:
    for key, msg, mac in RFC4231:
        assert hmac_sha256(key, msg).hex() == mac


@settings(max_examples=200)
@given(st.binary(max_size=200), st.binary(max_size=300))
def test_same_as_the_stdlib(key: bytes, msg: bytes) -> None:
    assert hmac_sha256(key, msg) == hmac.digest(key, msg, "sha256")
