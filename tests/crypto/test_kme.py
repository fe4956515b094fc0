"""KME functions (docs/protocol.md): lengths, definitions on the KDF, domain separation, checks."""

from __future__ import annotations

import hashlib

import pytest

from kmed.crypto.kdf import FC_KME_BIND, FC_KME_CHECK, FC_ME_RSP, kdf
from kmed.crypto.kme import bound_kasme, fingerprint, kme_check, me_rsp, new_kme

KME = bytes(range(32))
IMSI_IDENTITY = bytes.fromhex("0910101032547698")  # IMSI 001010123456789 as TS 24.301 §9.9.3.12 value


def test_new_kme_fresh() -> None:
    a, b = new_kme(), new_kme()
    assert len(a) == len(b) == 32 and a != b


def test_definitions() -> None:
    assert kme_check(KME, IMSI_IDENTITY) == kdf(KME, FC_KME_CHECK, IMSI_IDENTITY)[:16]
    nonce = bytes(16)
    assert me_rsp(KME, nonce) == kdf(KME, FC_ME_RSP, nonce)[:16]
    kasme = bytes(range(32, 64))
    assert bound_kasme(kasme, KME) == kdf(kasme, FC_KME_BIND, KME)
    assert fingerprint(KME) == hashlib.sha256(KME).hexdigest()


def test_domain_separation() -> None:
    """The same key and input give different outputs for the three uses."""
    x = bytes(16)
    assert kme_check(KME, x) != me_rsp(KME, x)
    assert kme_check(KME, IMSI_IDENTITY) != kme_check(KME, IMSI_IDENTITY[:-1] + b"\x99")
    assert kme_check(KME, IMSI_IDENTITY) != kme_check(bytes(32), IMSI_IDENTITY)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: kme_check(bytes(16), IMSI_IDENTITY), "kme"),
        (lambda: kme_check(KME, b""), "identity"),
        (lambda: kme_check(KME, "0910"), "identity"),
        (lambda: me_rsp(KME, bytes(8)), "nonce"),
        (lambda: bound_kasme(bytes(31), KME), "kasme"),
        (lambda: bound_kasme(bytes(32), bytes(33)), "kme"),
        (lambda: fingerprint("secret"), "secret"),
    ],
)
def test_bad_input(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        call()  # type: ignore[operator]


def test_error_messages_hold_no_key_material() -> None:
    with pytest.raises(ValueError) as exc:
        me_rsp(KME, b"\xab" * 15)
    assert "ab" not in str(exc.value) and KME.hex() not in str(exc.value)


def test_documented_example_values() -> None:
    """The example values published in docs/protocol.md (they change only if an FC or an encoding does)."""
    kasme = bytes(range(32, 64))
    assert kme_check(KME, bytes.fromhex("0910100000000010")).hex() == "154be0fbaac4583a4eed29bd5abf46ed"
    assert kme_check(KME, bytes.fromhex("f600f110800101c0000001")).hex() == "4b604f431e837c1630b2e84592b3d2da"
    assert me_rsp(KME, bytes(range(16))).hex() == "8cdeca4f0cefbda51b8facc56f829c71"
    assert bound_kasme(kasme, KME).hex() == "c705b187a240fc523da9c9e68ad2e0d4eeee5e396c984e5d3eed39b4b0458782"
