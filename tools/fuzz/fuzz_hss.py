#!/usr/bin/env python3
"""atheris: the HSS request path on any octets: Diameter peer (opened by the MME's CER), S6a
handlers over a real SQLite store, writes committed before the answer (tests/fuzz/hss_pipeline.py;
tools/fuzz/README.md).

Properties: nothing but answers comes out (no exception); every answer decodes, is an answer
with exactly one result; the KME held for a subscriber is only ever a KME this HSS issued for it
(seed step 13: a ULR cannot install a KME the HSS did not issue). The seeds are a valid AIR,
a KME-Request AIR and a ULR carrying a genuine KME-Token.
"""

from __future__ import annotations

import atheris
import common

with atheris.instrument_imports(include=["kmed"]):  # coverage of kmed only, not of the test helpers
    import kmed.diameter.peer
    import kmed.hss.s6a
    import kmed.hss.sqlite_store  # noqa: F401
    from kmed.diameter import codec
    from kmed.diameter import dictionary as d
    from kmed.diameter.message import Message

import atexit

from tests.fuzz.hss_pipeline import IMEI_A, IMSI_A, PLMN, SUBSCRIBERS, close_hss, open_hss

HSS = open_hss()
atexit.register(close_hss, HSS)
ISSUED: set[tuple[str, bytes]] = set()


def _air(kme_request: bool) -> bytes:
    items = [("Session-Id", "mme;1"), ("Origin-Host", "mme.localdomain"), ("Origin-Realm", "localdomain"),
             ("Destination-Realm", "localdomain"), ("User-Name", IMSI_A), ("Visited-PLMN-Id", PLMN),
             ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1)])]
    if kme_request:
        items += [("KME-Request", 1), ("Terminal-Information", [("IMEI", IMEI_A)])]
    else:
        items += [("KME-Check", bytes(16)), ("KME-Check-Identity", b"\x09\x10\x10")]
    return codec.encode(Message.request("AIR", d.APP_S6A, items, hop_by_hop=1, end_to_end=1))


def _record(answer: Message) -> None:
    """An AIA with a KME (seed step 4): issued for the request's IMSI, which the answer does
    not name; the request was one of the fuzzed octets, so it is kept for every subscriber
    (the property still catches any KME that no AIA ever carried)."""
    kme = answer.get("KME")
    if answer.command_code == d.CMD_AIA and kme is not None:
        for imsi in SUBSCRIBERS:
            ISSUED.add((imsi, bytes(kme)))


def test_one_input(data: bytes) -> None:
    HSS.new_peer()  # each input on a new connection: nothing buffered from the one before
    for answer in HSS.serve(data):
        assert not answer.is_request
        assert (answer.result_code() is None) != (answer.experimental_result() is None)
        _record(answer)
    for imsi in SUBSCRIBERS:
        held = HSS.kme_held(imsi)
        assert held is None or (imsi, held.kme) in ISSUED, "a KME the HSS did not issue is stored"


def seeds() -> list[bytes]:
    (aia,) = HSS.serve(_air(True))
    _record(aia)
    ulr = Message.request("ULR", d.APP_S6A, [
        ("Session-Id", "mme;2"), ("Origin-Host", "mme.localdomain"), ("Origin-Realm", "localdomain"),
        ("Destination-Realm", "localdomain"), ("User-Name", IMSI_A), ("RAT-Type", d.RAT_TYPE_EUTRAN),
        ("ULR-Flags", 0x22), ("Visited-PLMN-Id", PLMN), ("Terminal-Information", [("IMEI", IMEI_A)]),
        ("KME", aia.get("KME")), ("KME-Token", aia.get("KME-Token"))], hop_by_hop=2, end_to_end=2)
    return [_air(False), _air(True), codec.encode(ulr)]


if __name__ == "__main__":
    common.fuzz(test_one_input, seeds)
