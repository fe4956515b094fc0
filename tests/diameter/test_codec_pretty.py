"""kmed.diameter.pretty: the python-diameter based dump names AVPs, results and hides secrets."""

from __future__ import annotations

import pytest

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Avp, DecodeError, Message
from kmed.diameter.pretty import dump


def _answer() -> bytes:
    req = Message.request("AIR", None, [("Session-Id", "mme;1"), ("Origin-Host", "mme.localdomain")])
    return codec.encode(Message.answer_to(req, [
        ("Experimental-Result", [("Vendor-Id", d.VENDOR_3GPP), ("Experimental-Result-Code", 5001)]),
        ("Result-Code", 5001),
        ("Origin-Host", "hss.localdomain"),
        ("Authentication-Info", [("E-UTRAN-Vector", [("RAND", b"\x01" * 16), ("KASME", b"\x02" * 32),
                                                     ("KME-Binding", d.KME_BINDING_BOUND_TO_NEW)])]),
        ("KME", bytes.fromhex("ab" * 32)),
        Avp(9999, 0, d.AVP_FLAG_M, b"zz"),
    ]))


def test_dump_names_everything() -> None:
    text = dump(_answer())
    assert text.splitlines()[0].startswith("AIA (command 318, -P--) application 3GPP S6a/S6d")
    assert "Experimental-Result-Code (code 298) -M-: DIAMETER_ERROR_USER_UNKNOWN (5001)" in text
    assert "Result-Code (code 268) -M-: DIAMETER_AVP_UNSUPPORTED (5001)" in text
    assert "Origin-Host (code 264) -M-: hss.localdomain" in text
    assert "      KME-Binding (code 8, vendor 32473) V--: BOUND_TO_NEW (2)" in text
    assert "RAND (code 1447, vendor 10415) VM-: " + "01" * 16 in text
    assert "AVP 9999 (code 9999) -M-: 7a7a" in text


def test_dump_redacts_secrets_unless_asked() -> None:
    assert "ab" * 32 not in dump(_answer()) and "02" * 32 not in dump(_answer())
    assert "ab" * 32 in dump(_answer(), redact=False)


def test_dump_refuses_garbage() -> None:
    with pytest.raises(DecodeError):
        dump(b"\x01\x00\x00\x10garbage!")
