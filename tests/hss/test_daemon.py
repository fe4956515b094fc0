"""The HSS daemon as a real process on loopback, with a real SQLite file: S6a over TCP,
admin while serving, restarts, SIGKILL, peers, configuration errors, file modes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmed.config import parse_endpoint
from kmed.crypto import ecies
from kmed.crypto import kme as kmefn
from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.client import DiameterClient
from kmed.diameter.message import Message
from kmed.diameter.node import LocalNode
from kmed.load.procinfo import children
from tests.hss.conftest import IMEI, IMSI, OPC, PLMN, K
from tests.hss.proc import HssProcess, kmed
from tests.hss.test_s6a import check_vector, vectors

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["process", "thread"])
def hss(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[HssProcess]:
    """The HSS with each group-commit writer ([store] writer, docs/hss.md)."""
    h = HssProcess(tmp_path / "hss", store_extra=f'writer = "{request.param}"')
    h.provision_subscriber(IMSI)
    h.start()
    yield h
    h.kill()


def air(imsi: str = IMSI, extra: list[Any] | None = None, vectors: int = 1) -> Message:
    return Message.request("AIR", None, [
        ("Session-Id", f"mme.localdomain;{os.urandom(4).hex()}"), ("Auth-Session-State", 1),
        ("User-Name", imsi), ("Visited-PLMN-Id", PLMN),
        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", vectors)]), *(extra or []),
    ])


def ulr(imsi: str = IMSI, extra: list[Any] | None = None) -> Message:
    return Message.request("ULR", None, [
        ("Session-Id", f"mme.localdomain;{os.urandom(4).hex()}"), ("Auth-Session-State", 1),
        ("User-Name", imsi), ("RAT-Type", 1004), ("ULR-Flags", 0x22), ("Visited-PLMN-Id", PLMN),
        ("Terminal-Information", [("IMEI", IMEI), ("Software-Version", "01")]), *(extra or []),
    ])


async def exchange(port: int, *requests: Message) -> list[Message]:
    client = DiameterClient(LocalNode("mme.localdomain", "localdomain"), [parse_endpoint(f"tcp://127.0.0.1:{port}")],
                            "localdomain", "hss.localdomain")
    await client.start(timeout=10)
    try:
        return [await client.request(r, 10) for r in requests]
    finally:
        await client.close()


def talk(port: int, *requests: Message) -> list[Message]:
    return asyncio.run(exchange(port, *requests))


def test_air_over_tcp_and_admin_while_serving(hss: HssProcess, tmp_path: Path) -> None:
    (a,) = talk(hss.port, air(vectors=2))
    assert a.result() == (0, d.DIAMETER_SUCCESS)
    for v in vectors(a):
        _sqn, kasme = check_vector(v)
        assert v.get("KASME") == kasme
    # admin writes while the HSS serves are seen at once: a new subscriber, device and pair.
    other = "001010000000777"
    (unknown,) = talk(hss.port, air(other))
    assert unknown.experimental_result() == (d.VENDOR_3GPP, d.DIAMETER_ERROR_USER_UNKNOWN)
    hss.provision_subscriber(other)
    (known,) = talk(hss.port, air(other))
    assert known.result() == (0, d.DIAMETER_SUCCESS)
    kme_request = [("KME-Request", 1), ("Terminal-Information", [("IMEI", IMEI)])]
    (no_device,) = talk(hss.port, air(extra=kme_request))
    assert no_device.experimental_result() == (d.VENDOR_KMED, d.DIAMETER_ERROR_KME_DEVICE_UNKNOWN)
    priv_pem, pub_pem = tmp_path / "me.key", tmp_path / "me.pub"
    keys = kmed("keys", "gen", "--profile", "A", "--private-key", str(priv_pem), "--public-key", str(pub_pem))
    assert keys.returncode == 0
    assert hss.admin("device", "add", "--imei", IMEI, "--public-key", str(pub_pem)).returncode == 0
    (not_allowed,) = talk(hss.port, air(extra=kme_request))
    assert not_allowed.experimental_result() == (d.VENDOR_KMED, d.DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED)
    assert hss.admin("pair", "allow", "--imsi", IMSI, "--imei", IMEI).returncode == 0
    (issued,) = talk(hss.port, air(extra=kme_request))
    assert issued.result() == (0, d.DIAMETER_SUCCESS)
    profile, private = ecies.load_private_key_pem(priv_pem.read_bytes())
    kme = issued.get("KME")
    assert ecies.decrypt(profile, private, issued.get("Encrypted-KME")) == kme
    v = vectors(issued)[0]
    assert v.get("KASME") == kmefn.bound_kasme(check_vector(v)[1], kme)
    token = issued.get("KME-Token")
    forged = bytearray(token)
    forged[3] ^= 1
    bad_token, bad_kme, good, replay = talk(
        hss.port,
        ulr(extra=[("KME", kme), ("KME-Token", bytes(forged))]),
        ulr(extra=[("KME", kmefn.new_kme()), ("KME-Token", token)]),
        ulr(extra=[("KME", kme), ("KME-Token", token)]),
        ulr(extra=[("KME", kme), ("KME-Token", token)]),
    )
    assert bad_token.experimental_result() == (d.VENDOR_KMED, d.DIAMETER_ERROR_KME_TOKEN_INVALID)
    assert bad_kme.experimental_result() == (d.VENDOR_KMED, d.DIAMETER_ERROR_KME_TOKEN_INVALID)
    assert good.result() == (0, d.DIAMETER_SUCCESS) and good.get("ULA-Flags") == 1
    assert replay.result() == (0, d.DIAMETER_SUCCESS)  # the same ULR again: idempotent
    shown = json.loads(hss.admin("show", "--imsi", IMSI).stdout)
    assert shown["kme_fingerprint"] == kmefn.fingerprint(kme) and shown["kme_imei"] == IMEI
    assert [e["event"] for e in shown["kme_audit"]][:3] == ["stored", "refused", "refused"]
    # KME-Check over the stored KME now matches, and the vector is bound to it.
    identity = bytes.fromhex("0910101000000010")
    (match,) = talk(hss.port, air(extra=[("KME-Check", kmefn.kme_check(kme, identity)),
                                         ("KME-Check-Identity", identity)]))
    assert match.get("KME-Status") == d.KME_STATUS_MATCH
    v = vectors(match)[0]
    assert v.get("KME-Binding") == d.KME_BINDING_BOUND_TO_CURRENT
    assert v.get("KASME") == kmefn.bound_kasme(check_vector(v)[1], kme)
    # the log has one event per request, with the seed step, and no secret
    assert hss.stop() == 0
    log = hss.log.read_text()
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    steps = [(e["event"], e.get("step"), e["outcome"]) for e in events
             if e.get("component") == "hss" and "outcome" in e]
    assert ("air", 4, "kme_issued") in steps and ("ulr", 13, "kme_stored") in steps
    assert ("ulr", 13, "token_invalid") in steps
    for secret in (K, OPC, kme, token):
        assert secret.hex() not in log


def sqn_of(answer: Message) -> int:
    return check_vector(vectors(answer)[0])[0]


def test_sqn_increases_across_restart(hss: HssProcess) -> None:
    answers = talk(hss.port, *[air() for _ in range(5)])
    sqns = [sqn_of(a) for a in answers]
    assert sqns == sorted(set(sqns))
    assert hss.stop() == 0
    hss.start()
    (after,) = talk(hss.port, air())
    assert sqn_of(after) > sqns[-1]


def test_store_and_key_files_are_private(hss: HssProcess) -> None:
    talk(hss.port, air())
    for p in (hss.store, hss.store.with_name("hss.sqlite-wal"), hss.store.with_name("hss.sqlite.token-key")):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p


def _raw_cer(origin_host: str) -> bytes:
    cer = Message.request("CER", None, [
        ("Origin-Host", origin_host), ("Origin-Realm", "localdomain"), ("Host-IP-Address", "127.0.0.1"),
        ("Vendor-Id", 32473), ("Product-Name", "test"), ("Auth-Application-Id", d.APP_S6A),
    ], hop_by_hop=1, end_to_end=1)
    return codec.encode(cer)


def _read_message(sock: socket.socket) -> Message:
    buf = b""
    for _ in range(1000):
        n = codec.frame_length(buf)
        if n is not None and len(buf) >= n:
            return codec.decode(buf[:n])
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    raise AssertionError("no complete message")


def test_unknown_peer_refused(hss: HssProcess) -> None:
    with socket.create_connection(("127.0.0.1", hss.port), timeout=10) as s:
        s.sendall(_raw_cer("intruder.localdomain"))
        cea = _read_message(s)
    assert cea.result_code() == d.DIAMETER_UNKNOWN_PEER


class _Burst(asyncio.Protocol):
    """Pipelined AIRs over one connection; records the SQN of every AIA received."""

    def __init__(self, imsis: list[str], template: bytes, imsi_at: int, stop_after: int,
                 on_threshold: Any) -> None:
        self.imsis, self.template, self.imsi_at = imsis, bytearray(template), imsi_at
        self.stop_after, self.on_threshold = stop_after, on_threshold
        self.buf = bytearray()
        self.sqns: dict[str, list[int]] = {i: [] for i in imsis}
        self.hbh_imsi: dict[int, str] = {}
        self.sent = 0
        self.open = False
        self.closed = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(_raw_cer("mme.localdomain"))

    def send(self, n: int) -> None:
        out = bytearray()
        for _ in range(n):
            self.sent += 1
            imsi = self.imsis[self.sent % len(self.imsis)]
            self.template[self.imsi_at:self.imsi_at + len(imsi)] = imsi.encode()
            self.template[12:16] = struct.pack(">I", self.sent)
            self.hbh_imsi[self.sent] = imsi
            out += self.template
        self.transport.write(bytes(out))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (n := codec.frame_length(self.buf)) is not None and len(self.buf) >= n:
            msg = codec.decode(bytes(self.buf[:n]))
            del self.buf[:n]
            if not self.open:
                self.open = True
                self.send(64)
                continue
            if msg.result_code() == d.DIAMETER_SUCCESS:
                imsi = self.hbh_imsi[msg.hop_by_hop]
                self.sqns[imsi].append(sqn_of(msg))
                answered = sum(len(v) for v in self.sqns.values())
                if answered == self.stop_after:
                    self.on_threshold()
                self.send(1)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def test_sigkill_during_burst_loses_no_answered_sqn(hss: HssProcess) -> None:
    imsis = [f"00101000000{i:04d}" for i in range(100, 104)]
    for imsi in imsis:
        hss.provision_subscriber(imsi)
    template = codec.encode(air(imsis[0]))
    imsi_at = template.index(imsis[0].encode())
    assert hss.proc is not None
    pid = hss.proc.pid

    async def burst() -> _Burst:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            lambda: _Burst(imsis, template, imsi_at, 300, lambda: os.kill(pid, 9)), "127.0.0.1", hss.port)
        await asyncio.wait_for(proto.closed, 60)
        return proto

    proto = asyncio.run(burst())
    hss.kill()
    answered = proto.sqns
    assert sum(len(v) for v in answered.values()) >= 300
    hss.start()
    for imsi in imsis:
        (a,) = talk(hss.port, air(imsi))
        assert a.result() == (0, d.DIAMETER_SUCCESS)
        got = answered[imsi]
        assert got == sorted(set(got)), "SQNs answered for one IMSI are strictly increasing"
        assert sqn_of(a) > max(got), f"{imsi}: an answered SQN was not durable"


def test_metrics_sighup_and_overload(tmp_path: Path) -> None:
    from tests.hss.proc import free_port

    mport = free_port()
    h = HssProcess(tmp_path / "m", extra=f'[metrics]\nlisten = "127.0.0.1:{mport}"\n[hss]\nmax_pending = 1\n')
    h.provision_subscriber(IMSI)
    h.start()
    try:
        # overload: 64 AIRs pipelined with room for one awaiting commit -> 3004 for some
        template = codec.encode(air())
        with socket.create_connection(("127.0.0.1", h.port), timeout=10) as s:
            s.sendall(_raw_cer("mme.localdomain"))
            assert _read_message(s).result_code() == d.DIAMETER_SUCCESS
            s.sendall(b"".join(template[:12] + struct.pack(">I", i) + template[16:] for i in range(64)))
            results = [_read_message_buffered(s) for _ in range(64)]
        codes = [m.result_code() for m in results]
        assert codes.count(d.DIAMETER_TOO_BUSY) >= 1 and codes.count(d.DIAMETER_SUCCESS) >= 1
        assert all(m.is_error for m in results if m.result_code() == d.DIAMETER_TOO_BUSY)
        with socket.create_connection(("127.0.0.1", mport), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            body = b""
            while chunk := s.recv(65536):
                body += chunk
        text = body.decode()
        ok = int(codes.count(d.DIAMETER_SUCCESS))
        assert f'kmed_diameter_answers_total{{command="AIR",result_code="2001"}} {ok}' in text
        assert 'kmed_diameter_answers_total{command="AIR",result_code="3004"}' in text
        # SIGHUP: the peer is no longer allowed -> a new CER gets 3010
        h.config.write_text(h.config.read_text().replace('["mme.localdomain"]', '["other.localdomain"]'))
        assert h.proc is not None
        h.proc.send_signal(1)
        for _ in range(100):
            if "hss_reloaded" in h.log.read_text():
                break
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", h.port), timeout=10) as s:
            s.sendall(_raw_cer("mme.localdomain"))
            assert _read_message(s).result_code() == d.DIAMETER_UNKNOWN_PEER
        assert h.stop() == 0
    finally:
        h.kill()


_pending: dict[int, bytes] = {}


def _read_message_buffered(sock: socket.socket) -> Message:
    """Read one message, keeping any following bytes for the next call (per socket)."""
    buf = _pending.pop(sock.fileno(), b"")
    for _ in range(10000):
        n = codec.frame_length(buf)
        if n is not None and len(buf) >= n:
            _pending[sock.fileno()] = buf[n:]
            return codec.decode(buf[:n])
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    raise AssertionError("no complete message")


def test_resync_and_kme_mismatch_over_tcp(hss: HssProcess) -> None:
    from kmed.crypto import aka

    (first,) = talk(hss.port, air())
    before = sqn_of(first)
    rand = os.urandom(16)
    good = aka.make_auts(K, OPC, rand, (4000 << 5) | 3)
    bad = bytearray(good)
    bad[-1] ^= 0x01
    identity = bytes.fromhex("0910101000000010")
    refused, after_bad, resynced, mismatch = talk(
        hss.port,
        _with_resync(air(), rand + bytes(bad)),
        air(),
        _with_resync(air(), rand + good),
        air(extra=[("KME-Check", bytes(16)), ("KME-Check-Identity", identity)]),
    )
    assert refused.experimental_result() == (d.VENDOR_3GPP, d.DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE)
    assert sqn_of(after_bad) > before and sqn_of(after_bad) >> 5 == (before >> 5) + 1  # bad MAC-S: SQN untouched
    assert sqn_of(resynced) >> 5 == 4001
    assert mismatch.get("KME-Status") == d.KME_STATUS_PROVISIONING_REQUIRED
    assert vectors(mismatch)[0].get("KME-Binding") == d.KME_BINDING_NOT_BOUND


def _with_resync(req: Message, resync: bytes) -> Message:
    info = req.group("Requested-EUTRAN-Authentication-Info")
    assert info is not None
    req.set("Requested-EUTRAN-Authentication-Info", [*info.avps, ("Re-Synchronization-Info", resync)])
    return req


def test_writer_process_ends_with_the_hss_and_its_death_stops_the_hss(tmp_path: Path) -> None:
    """[store] writer = "process": SIGTERM ends the child too (exit 0); a child that dies
    makes the HSS stop with status 1 (systemd restarts it), logging hss_writer_failed."""
    h = HssProcess(tmp_path / "hss")
    h.provision_subscriber(IMSI)
    h.start()
    try:
        assert h.proc is not None
        (child,) = children(h.proc.pid)
        (a,) = talk(h.port, air())
        assert a.result() == (0, d.DIAMETER_SUCCESS)
        assert h.stop() == 0
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{child}").exists(), "the writer child outlived the HSS"
        h.start()
        assert h.proc is not None
        (child,) = children(h.proc.pid)
        os.kill(child, 9)
        assert h.proc.wait(20) == 1
        events = [json.loads(line) for line in h.log.read_text().splitlines() if line.startswith("{")]
        assert any(e["event"] == "hss_writer_failed" for e in events)
        h.proc = None
        h.start()  # the store is fine: a restart serves again, SQN above the one answered
        (b,) = talk(h.port, air())
        assert b.result() == (0, d.DIAMETER_SUCCESS)
    finally:
        h.kill()


def _events(log: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if f'"{name}"' in line]


def test_cache_warmed_at_start_and_after_sighup(tmp_path: Path) -> None:
    """docs/hss.md "Read cache": the subscribers are in memory before READY=1, so the AIRs
    only hit; a SIGHUP empties the cache and warms it again while serving."""
    h = HssProcess(tmp_path / "w", store_extra='writer = "process"')
    others = [f"00101000000010{i}" for i in range(3)]
    for imsi in (IMSI, *others):
        h.provision_subscriber(imsi, sqn=64)
    h.start()
    try:
        (warmed,) = _events(h.log, "hss_cache_warmed")
        assert (warmed["cached"], warmed["loaded"], warmed["read"], warmed["overtaken"]) == (4, 4, 4, False)
        answers = talk(h.port, *[air(imsi) for imsi in (IMSI, *others, IMSI)])
        sqns = [sqn_of(a) for a in answers]
        assert all(s >> 5 == 3 for s in sqns[:4]) and sqns[4] >> 5 == 4  # SEQ_HE 2 (sqn 64) + 1, + 2
        assert h.proc is not None
        h.proc.send_signal(1)
        for _ in range(100):
            if len(_events(h.log, "hss_cache_warmed")) == 2:
                break
            time.sleep(0.1)
        assert _events(h.log, "hss_cache_warmed")[1]["loaded"] == 4
        (after,) = talk(h.port, air(IMSI))
        assert sqn_of(after) >> 5 == 5  # the committed SQN, read again by the second warm-up
        assert h.stop() == 0
        (stopped,) = _events(h.log, "hss_stopped")
        assert (stopped["cache_hits"], stopped["cache_misses"], stopped["read_ahead"]) == (6, 0, 0)
    finally:
        h.kill()
