"""What the HSS refuses, against the real daemon (``kmed hss`` on loopback, a real SQLite file),
with the store checked through ``kmed admin show`` afterwards (docs/security.md):

- a CER from an Origin-Host not in ``allowed_peers``: CEA 3010, the connection closed, and no
  request on it is served (RFC 6733 §5.3, §7.1.3);
- a ULR carrying a KME this HSS did not issue for that IMSI and IMEI (no token, a forged one,
  the token of another KME, of another IMSI): 5903 and nothing stored, an audit row ``refused``;
- a replayed ULR (a genuine, unexpired token older than the KME now held): 5903, the newer KME kept;
- one malformed request (a Session-Id that is not UTF-8) does not cost the peer its connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from kmed.config import parse_endpoint
from kmed.crypto import ecies
from kmed.crypto import kme as kmefn
from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.client import DiameterClient
from kmed.diameter.message import Avp, Message
from kmed.diameter.node import LocalNode
from tests.hss.proc import HssProcess

pytestmark = pytest.mark.timeout(180)

IMSI = "001010000000001"
IMSI_2 = "001010000000002"
IMEI = "356938035643809"
PLMN = bytes.fromhex("00f110")
TOKEN_INVALID = (d.VENDOR_KMED, d.DIAMETER_ERROR_KME_TOKEN_INVALID)


@pytest.fixture(scope="module")
def hss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HssProcess]:
    root = tmp_path_factory.mktemp("hss-sec")
    h = HssProcess(root)
    for imsi in (IMSI, IMSI_2):
        h.provision_subscriber(imsi)
    _, public = ecies.generate_keypair("A")
    pem = root / "device.pub.pem"
    pem.write_bytes(ecies.public_key_to_pem("A", public))
    for args in (("device", "add", "--imei", IMEI, "--public-key", str(pem)),
                 ("pair", "allow", "--imsi", IMSI, "--imei", IMEI),
                 ("pair", "allow", "--imsi", IMSI_2, "--imei", IMEI)):
        done = h.admin(*args)
        assert done.returncode == 0, done.stderr
    h.start()
    yield h
    h.kill()


def _sid() -> str:
    return f"mme.localdomain;{os.urandom(4).hex()}"


def kme_air(imsi: str = IMSI) -> Message:
    """Seed step 3: AIR with KME-Request for (IMSI, IMEI)."""
    return Message.request("AIR", None, [
        ("Session-Id", _sid()), ("Auth-Session-State", 1), ("User-Name", imsi), ("Visited-PLMN-Id", PLMN),
        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1)]),
        ("KME-Request", 1), ("Terminal-Information", [("IMEI", IMEI)]),
    ])


def kme_ulr(kme: bytes, token: bytes | None, imsi: str = IMSI) -> Message:
    """Seed step 12: ULR carrying a KME (and its token when given)."""
    items: list[Any] = [
        ("Session-Id", _sid()), ("Auth-Session-State", 1), ("User-Name", imsi), ("RAT-Type", 1004),
        ("ULR-Flags", 0x22), ("Visited-PLMN-Id", PLMN), ("Terminal-Information", [("IMEI", IMEI)]), ("KME", kme)]
    if token is not None:
        items.append(("KME-Token", token))
    return Message.request("ULR", None, items)


async def _exchange(port: int, *requests: Message) -> list[Message]:
    client = DiameterClient(LocalNode("mme.localdomain", "localdomain"), [parse_endpoint(f"tcp://127.0.0.1:{port}")],
                            "localdomain", "hss.localdomain")
    await client.start(timeout=10)
    try:
        return [await client.request(r, 10) for r in requests]
    finally:
        await client.close()


def talk(hss: HssProcess, *requests: Message) -> list[Message]:
    return asyncio.run(_exchange(hss.port, *requests))


def show(hss: HssProcess, imsi: str = IMSI) -> dict[str, Any]:
    done = hss.admin("show", "--imsi", imsi)
    assert done.returncode == 0, done.stderr
    obj = json.loads(done.stdout)
    assert isinstance(obj, dict)
    return obj


def issue(hss: HssProcess, imsi: str = IMSI) -> tuple[bytes, bytes]:
    """A KME the HSS issues (AIA of step 4): (KME, KME-Token)."""
    (aia,) = talk(hss, kme_air(imsi))
    assert aia.result_code() == d.DIAMETER_SUCCESS
    return bytes(aia.get("KME")), bytes(aia.get("KME-Token"))


# --- peers ------------------------------------------------------------------------------------------


def _cer(origin_host: str) -> bytes:
    return codec.encode(Message.request("CER", None, [
        ("Origin-Host", origin_host), ("Origin-Realm", "localdomain"), ("Host-IP-Address", "127.0.0.1"),
        ("Vendor-Id", d.VENDOR_3GPP), ("Product-Name", "intruder"),
        ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)]),
    ], hop_by_hop=1, end_to_end=1))


def _read(sock: socket.socket, buf: bytearray) -> Message | None:
    """The next message on ``sock`` (None when the peer closed)."""
    while True:
        n = codec.frame_length(buf)
        if n is not None and len(buf) >= n:
            msg = codec.decode(bytes(buf[:n]))
            del buf[:n]
            return msg
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk


def test_unknown_peer_gets_3010_the_connection_closed_and_no_service(hss: HssProcess) -> None:
    before = show(hss)["sqn"]
    with socket.create_connection(("127.0.0.1", hss.port), timeout=10) as s:
        buf = bytearray()
        s.sendall(_cer("intruder.localdomain"))
        cea = _read(s, buf)
        assert cea is not None and cea.result_code() == d.DIAMETER_UNKNOWN_PEER
        air = Message.request("AIR", d.APP_S6A, kme_air().avps, hop_by_hop=2, end_to_end=2)
        try:
            s.sendall(codec.encode(air))
            answer = _read(s, buf)
        except (BrokenPipeError, ConnectionResetError):
            answer = None
    assert answer is None, "a request from an unknown peer was answered"
    assert show(hss)["sqn"] == before and show(hss)["kme_fingerprint"] is None


# --- KMEs the HSS did not issue --------------------------------------------------------------------


def test_ulr_with_a_kme_the_hss_did_not_issue_is_refused_and_nothing_stored(hss: HssProcess) -> None:
    issued_kme, issued_token = issue(hss)  # a genuine KME and token exist, for other KMEs to borrow
    other_kme, other_token = issue(hss, IMSI_2)
    forged = [
        kme_ulr(kmefn.new_kme(), None),  # no token at all
        kme_ulr(kmefn.new_kme(), os.urandom(24)),  # a forged token
        kme_ulr(kmefn.new_kme(), issued_token),  # the genuine token of another KME
        kme_ulr(other_kme, other_token),  # a KME and token issued for another IMSI
        kme_ulr(issued_kme[:-1] + bytes([issued_kme[-1] ^ 1]), issued_token),  # one bit of the KME changed
        kme_ulr(issued_kme, issued_token[:-1] + bytes([issued_token[-1] ^ 1])),  # issued_at moved
    ]
    answers = talk(hss, *forged)
    assert [a.experimental_result() for a in answers] == [TOKEN_INVALID] * len(forged)
    shown = show(hss)
    assert shown["kme_fingerprint"] is None, "the HSS stored a KME it did not issue"
    refused = [a for a in shown["kme_audit"] if a["event"] == "refused"]
    assert len(refused) >= len(forged) and all(a["reason"] for a in refused)
    assert all(kme.hex() not in json.dumps(shown) for kme in (issued_kme, other_kme))  # fingerprints only


def test_replayed_ulr_with_an_older_token_is_refused_and_the_newer_kme_kept(hss: HssProcess) -> None:
    old_kme, old_token = issue(hss, IMSI_2)
    new_kme, new_token = issue(hss, IMSI_2)
    (first,) = talk(hss, kme_ulr(old_kme, old_token, IMSI_2))  # the old one stored first ...
    (second,) = talk(hss, kme_ulr(new_kme, new_token, IMSI_2))  # ... then the newer one
    assert first.result_code() == second.result_code() == d.DIAMETER_SUCCESS
    assert show(hss, IMSI_2)["kme_fingerprint"] == kmefn.fingerprint(new_kme)
    (replay,) = talk(hss, kme_ulr(old_kme, old_token, IMSI_2))  # a valid, unexpired token, but older
    assert replay.experimental_result() == TOKEN_INVALID
    assert show(hss, IMSI_2)["kme_fingerprint"] == kmefn.fingerprint(new_kme)
    (again,) = talk(hss, kme_ulr(new_kme, new_token, IMSI_2))  # a retransmission of the stored one: 2001
    assert again.result_code() == d.DIAMETER_SUCCESS


def test_a_malformed_request_does_not_cost_the_peer_its_connection(hss: HssProcess) -> None:
    """tests/fuzz/test_regressions.py #1 against the daemon: the AIR with a non-UTF-8 Session-Id
    is answered, and the next request on the same connection too."""
    with socket.create_connection(("127.0.0.1", hss.port), timeout=10) as s:
        buf = bytearray()
        s.sendall(_cer("mme.localdomain"))
        cea = _read(s, buf)
        assert cea is not None and cea.result_code() == d.DIAMETER_SUCCESS
        items = [Avp(263, 0, d.AVP_FLAG_M, b"mme;\xc3\x28"), *kme_air(IMSI_2).avps[1:]]
        bad = Message.request("AIR", d.APP_S6A, items, hop_by_hop=7, end_to_end=7)
        good = Message.request("AIR", d.APP_S6A, kme_air(IMSI_2).avps, hop_by_hop=8, end_to_end=8)
        s.sendall(codec.encode(bad) + codec.encode(good))
        answers = [_read(s, buf), _read(s, buf)]
    assert all(a is not None for a in answers), "the HSS closed the connection"
    assert {a.hop_by_hop: a.result_code() for a in answers if a is not None} == {7: 2001, 8: 2001}
