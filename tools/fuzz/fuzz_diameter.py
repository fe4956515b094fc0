#!/usr/bin/env python3
"""atheris: ``kmed.diameter.codec.decode`` on any octets (tools/fuzz/README.md).

Property: only DecodeError (with an RFC 6733 result code) comes out; what decodes reads
completely (every value at every depth, DecodeError 5004/5014 allowed) and re-encodes to a
message with the same AVPs.
"""

from __future__ import annotations

import atheris
import common

with atheris.instrument_imports():
    from kmed.diameter import codec
    from kmed.diameter import dictionary as d
    from kmed.diameter.message import DecodeError, Message


def test_one_input(data: bytes) -> None:
    try:
        msg = codec.decode(data)
    except DecodeError as err:
        assert 3000 <= err.result_code < 6000, err.result_code
        return
    try:
        items = msg.avps
        msg.result()
    except DecodeError as err:
        assert err.result_code in (d.DIAMETER_INVALID_AVP_VALUE, d.DIAMETER_INVALID_AVP_LENGTH), err
        return
    again = codec.decode(codec.encode(msg))
    assert again.avps == items and again.command_code == msg.command_code


def seeds() -> list[bytes]:
    air = Message.request("AIR", d.APP_S6A, [
        ("Session-Id", "mme;1"), ("Origin-Host", "mme.localdomain"), ("Origin-Realm", "localdomain"),
        ("User-Name", "001010000000001"), ("Visited-PLMN-Id", bytes.fromhex("00f110")),
        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1)]),
        ("KME-Check", bytes(16)), ("KME-Check-Identity", bytes(8)),
        ("Terminal-Information", [("IMEI", "356938035643809"), ("Software-Version", "01")]),
    ], hop_by_hop=1, end_to_end=2)
    aia = Message.answer_to(air, [("Result-Code", 2001), ("Authentication-Info", [("E-UTRAN-Vector", [
        ("Item-Number", 1), ("RAND", bytes(16)), ("XRES", bytes(8)), ("AUTN", bytes(16)), ("KASME", bytes(32)),
        ("KME-Binding", 1)])]), ("KME-Status", 0)])
    return [codec.encode(air), codec.encode(aia)]


if __name__ == "__main__":
    common.fuzz(test_one_input, seeds)
