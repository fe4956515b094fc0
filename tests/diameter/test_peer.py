"""Sans-I/O tests of the peer state machine (kmed.diameter.peer): no sockets, a fake clock.

RFC 6733 §5.3 (CER/CEA), §5.4 (DPR/DPA), §5.5.4 (failover, T flag), §7 (error answers);
RFC 3539 §3.4 (watchdog: OKAY, SUSPECT, DOWN, REOPEN).
"""

from __future__ import annotations

import itertools
import random
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.diameter import dictionary as d
from kmed.diameter.codec import decode, encode, encoded_avps
from kmed.diameter.message import Avp, Message
from kmed.diameter.node import LocalNode
from kmed.diameter.peer import (
    DO_NOT_WANT_TO_TALK_TO_YOU,
    REBOOTING,
    Close,
    DeliverAnswer,
    DeliverRequest,
    Failover,
    Opened,
    Peer,
    PeerDisconnecting,
    PeerError,
    PeerState,
    RequestFailed,
    Role,
    Send,
    base_avp_codes,
    fill_missing,
    mark_retransmission,
)

MME = "mme.localdomain"
HSS = "hss.localdomain"
REALM = "localdomain"
TW = 30.0


def node(host: str, seed: int = 1, **kw: Any) -> LocalNode:
    return LocalNode(host, REALM, host_ip_addresses=("127.0.0.1",), rng=random.Random(seed), **kw)


def sent(actions: list[Any]) -> list[Message]:
    return [decode(a.data) for a in actions if isinstance(a, Send)]


def of(actions: list[Any], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def air(i: int = 0, extra: list[Any] | None = None) -> Message:
    return Message.request("AIR", None, [
        ("Session-Id", f"{MME};1;{i}"), ("Auth-Session-State", 1), ("Origin-Host", MME),
        ("Origin-Realm", REALM), ("Destination-Realm", REALM), ("User-Name", "001010000000001"),
        ("Visited-PLMN-Id", b"\x00\xf1\x10"),
        ("Requested-EUTRAN-Authentication-Info", [("Number-Of-Requested-Vectors", 1)]),
        *(extra or [])])


def aia(req: Message, extra: list[Any] | None = None) -> Message:
    return Message.answer_to(req, [("Result-Code", d.DIAMETER_SUCCESS), ("Auth-Session-State", 1),
                                   ("Origin-Host", HSS), ("Origin-Realm", REALM), *(extra or [])])


class Link:
    """A client (initiator) and a server (responder) peer joined back to back in memory."""

    def __init__(self, *, allowed: Any = (MME,), server_node: LocalNode | None = None,
                 client_node: LocalNode | None = None, reopen: bool = False, tw: float = TW) -> None:
        self.now = 0.0
        self.client = Peer(client_node or node(MME, 1), Role.INITIATOR, watchdog=tw, reopen=reopen,
                           rng=random.Random(2))
        self.server = Peer(server_node or node(HSS, 3), Role.RESPONDER, allowed_peers=allowed, watchdog=tw,
                           rng=random.Random(4))
        self.log: list[tuple[str, Any]] = []  # (who, action) for everything but Send
        self.wire: list[tuple[str, str]] = []  # (who, "DWR"/"AIA"/...) for every message sent
        self.server.start(self.now)
        self.deliver("client", self.client.start(self.now))

    def peers(self, who: str) -> tuple[Peer, Peer]:
        return (self.client, self.server) if who == "client" else (self.server, self.client)

    def deliver(self, who: str, actions: list[Any]) -> list[Any]:
        """Record ``who``'s actions and carry its Send actions to the other side (recursively)."""
        _src, dst = self.peers(who)
        other = "server" if who == "client" else "client"
        for a in actions:
            if isinstance(a, Send):
                self.wire.append((who, decode(a.data).name))
                self.deliver(other, dst.data_received(a.data, self.now))
            else:
                self.log.append((who, a))
        return actions

    def tick(self, t: float) -> None:
        self.now = t
        self.deliver("client", self.client.tick(t))
        self.deliver("server", self.server.tick(t))

    def actions(self, who: str, kind: type) -> list[Any]:
        return [a for w, a in self.log if w == who and isinstance(a, kind)]


# ------------------------------------------------------------------------- capabilities exchange


def test_cer_carries_the_capabilities_and_both_sides_open() -> None:
    client = Peer(node(MME), Role.INITIATOR, rng=random.Random(0))
    (cer,) = sent(client.start(0.0))
    assert cer.command_code == d.CMD_CER and cer.is_request and not cer.is_proxiable
    assert cer.application_id == 0
    assert cer.get("Origin-Host") == MME and cer.get("Origin-Realm") == REALM
    assert cer.get_all("Host-IP-Address") == ["127.0.0.1"]
    assert cer.get("Vendor-Id") == d.VENDOR_KMED
    assert cer.get("Product-Name") == "kmed"
    assert cer.get("Origin-State-Id") == client.node.origin_state_id
    assert sorted(cer.get_all("Supported-Vendor-Id")) == [d.VENDOR_3GPP, d.VENDOR_KMED]
    vsai = cer.group("Vendor-Specific-Application-Id")
    assert vsai is not None
    assert vsai.get("Vendor-Id") == d.VENDOR_3GPP and vsai.get("Auth-Application-Id") == d.APP_S6A
    assert cer.get("Firmware-Revision") is not None

    link = Link()
    assert link.client.state is PeerState.OKAY and link.server.state is PeerState.OKAY
    (opened,) = link.actions("server", Opened)
    assert opened.peer.origin_host == MME and d.APP_S6A in opened.peer.applications
    assert link.client.info is not None and link.client.info.origin_host == HSS
    assert link.client.info.supported_vendor_ids == {d.VENDOR_3GPP, d.VENDOR_KMED}


def test_host_ip_address_falls_back_to_the_connection_address() -> None:
    client = Peer(LocalNode(MME, REALM), Role.INITIATOR, local_addresses=["::1"])
    (cer,) = sent(client.start(0.0))
    assert cer.get_all("Host-IP-Address") == ["::1"]


def test_unknown_peer_gets_3010_and_is_closed() -> None:
    server = Peer(node(HSS), Role.RESPONDER, allowed_peers={"other.localdomain"})
    server.start(0.0)
    client = Peer(node(MME), Role.INITIATOR)
    out = server.data_received(client.start(0.0)[0].data, 0.0)
    (cea,) = sent(out)
    assert cea.result_code() == d.DIAMETER_UNKNOWN_PEER and cea.is_error
    assert of(out, Close) and server.state is PeerState.DOWN
    assert not of(out, Opened)
    # the client sees the refusal and closes too
    back = client.data_received(out[0].data, 0.0)
    assert of(back, Close) and "DIAMETER_UNKNOWN_PEER" in (client.close_reason or "")


def test_allowed_peers_may_be_a_predicate() -> None:
    link = Link(allowed=lambda host: host.endswith(".localdomain"))
    assert link.server.state is PeerState.OKAY


def test_no_common_application_gets_5010() -> None:
    client = Peer(node(MME, auth_application_ids=(4,), application_vendors={}), Role.INITIATOR)
    server = Peer(node(HSS), Role.RESPONDER, allowed_peers={MME})
    out = server.data_received(client.start(0.0)[0].data, 0.0)
    (cea,) = sent(out)
    assert cea.result_code() == d.DIAMETER_NO_COMMON_APPLICATION and not cea.is_error
    assert of(out, Close)


def test_relay_application_counts_as_common() -> None:
    client = Peer(node(MME), Role.INITIATOR)
    relay = node("relay.localdomain", auth_application_ids=(0xFFFFFFFF,), application_vendors={})
    server = Peer(relay, Role.RESPONDER)
    out = server.data_received(client.start(0.0)[0].data, 0.0)
    assert sent(out)[0].result_code() == d.DIAMETER_SUCCESS
    client.data_received(out[0].data, 0.0)
    assert client.state is PeerState.OKAY


def test_cer_without_origin_host_gets_5005_with_an_example_failed_avp() -> None:
    cer = Message.request("CER", 0, [("Origin-Realm", REALM), ("Host-IP-Address", "127.0.0.1"),
                                     ("Vendor-Id", 1), ("Product-Name", "x")], hop_by_hop=7, end_to_end=8)
    server = Peer(node(HSS), Role.RESPONDER)
    out = server.data_received(encode(cer), 0.0)
    (cea,) = sent(out)
    assert cea.result_code() == d.DIAMETER_MISSING_AVP
    failed = cea.group("Failed-AVP")
    assert failed is not None and failed.raw_avps()[0].code == 264
    assert of(out, Close)


@pytest.mark.parametrize("cmd", ["DWR", "AIR", "DPR"])
def test_anything_but_cer_before_the_exchange_closes(cmd: str) -> None:
    server = Peer(node(HSS), Role.RESPONDER)
    server.start(0.0)
    msg = air() if cmd == "AIR" else Message.request(cmd, 0, [("Origin-Host", MME), ("Origin-Realm", REALM)])
    out = server.data_received(encode(msg), 0.0)
    assert not sent(out) and of(out, Close) and server.state is PeerState.DOWN


def test_initiator_closes_on_a_request_before_cea() -> None:
    client = Peer(node(MME), Role.INITIATOR)
    client.start(0.0)
    dwr = Message.request("DWR", 0, [("Origin-Host", HSS), ("Origin-Realm", REALM)])
    assert of(client.data_received(encode(dwr), 0.0), Close)


def test_capabilities_exchange_times_out() -> None:
    server = Peer(node(HSS), Role.RESPONDER, handshake_timeout=5.0)
    server.start(0.0)
    assert server.next_timer() == 5.0
    assert not server.tick(4.9)
    assert of(server.tick(5.0), Close)


# ------------------------------------------------------------------------- watchdog (RFC 3539)


def test_dwr_after_tw_of_silence_and_dwa_keeps_okay() -> None:
    link = Link()
    tc, ts = link.client.next_timer(), link.server.next_timer()
    assert tc is not None and ts is not None
    assert TW - 2.0 <= tc <= TW + 2.0 and TW - 2.0 <= ts <= TW + 2.0  # jitter ±2 s (RFC 3539 §3.4.1)
    first = min(tc, ts)
    link.wire.clear()
    link.tick(first - 0.01)
    assert link.wire == []
    link.tick(first)  # the first timer to expire sends DWR, the other side answers DWA at once
    sender = "client" if tc <= ts else "server"
    other = "server" if sender == "client" else "client"
    assert link.wire == [(sender, "DWR"), (other, "DWA")]
    # the DWR was traffic for the other side too: no second DWR right after
    link.tick(max(tc, ts))
    assert len(link.wire) == 2
    for i in range(1, 11):  # ten more Tw of silence: one DWR/DWA pair per Tw or so, always OKAY
        link.tick(first + i * TW)
    assert 6 <= sum(1 for _w, n in link.wire if n == "DWR") <= 12
    assert link.client.state is PeerState.OKAY and link.server.state is PeerState.OKAY


def test_jitter_scales_down_for_a_small_tw() -> None:
    link = Link(tw=1.5)
    t = link.client.next_timer()
    assert t is not None and 1.4 <= t <= 1.6


def test_traffic_postpones_the_watchdog() -> None:
    link = Link()
    for i in range(1, 200):  # one request per second for 200 s: never a DWR
        link.now = float(i)
        link.deliver("client", link.client.send_request(air(i), i, link.now + 3))
        req = link.actions("server", DeliverRequest)[-1].message
        link.deliver("server", link.server.send_answer(aia(req)))
        link.tick(float(i) + 0.5)
    assert not [n for _w, n in link.wire if n == "DWR"]
    assert len(link.actions("client", DeliverAnswer)) == 199


def silent_server_link() -> Link:
    """A link whose server stops reading: the client's DWRs go unanswered."""
    link = Link()
    link.server.data_received = lambda data, now: []  # type: ignore[method-assign]
    link.server.tick = lambda now: []  # type: ignore[method-assign]
    return link


def test_okay_to_suspect_to_down_with_failover_of_pending_requests() -> None:
    link = silent_server_link()
    c = link.client
    link.deliver("client", c.send_request(air(1), "tok1", 1000.0))
    t1 = c.next_timer()
    assert t1 is not None
    link.tick(t1)  # DWR sent
    assert c._dwr_pending and c.state is PeerState.OKAY
    t2 = c.next_timer()
    assert t2 is not None and t2 > t1
    link.tick(t2)  # no DWA for Tw: SUSPECT, pending requests handed back (Failover())
    assert c.state is PeerState.SUSPECT
    (fo,) = link.actions("client", Failover)
    assert [p.token for p in fo.requests] == ["tok1"] and c.pending_count == 0
    with pytest.raises(PeerError):
        c.send_request(air(2), "tok2", 1000.0)
    t3 = c.next_timer()
    assert t3 is not None
    link.tick(t3)  # another Tw: DOWN, closed, to be reopened
    assert c.state is PeerState.DOWN and c.watchdog_failed
    assert link.actions("client", Close)


def test_traffic_in_suspect_returns_to_okay() -> None:
    link = Link()
    c = link.client
    original = link.server.data_received
    link.server.data_received = lambda data, now: []  # type: ignore[method-assign]
    link.tick(c.next_timer() or 0)
    link.tick(c.next_timer() or 0)
    assert c.state is PeerState.SUSPECT
    link.server.data_received = original  # type: ignore[method-assign]
    dwr = Message.request("DWR", 0, [("Origin-Host", HSS), ("Origin-Realm", REALM)], hop_by_hop=99)
    out = c.data_received(encode(dwr), link.now + 1)
    assert c.state is PeerState.OKAY
    assert sent(out)[0].command_code == d.CMD_DWA


def test_reopen_needs_three_dwas() -> None:
    link = Link(reopen=True)
    c = link.client
    assert c.state is PeerState.REOPEN  # first DWR went out with the handshake, DWA came back
    assert c._num_dwa == 1
    with pytest.raises(PeerError):
        c.send_request(air(), "tok", 100.0)
    link.tick(c.next_timer() or 0)
    assert c.state is PeerState.REOPEN and c._num_dwa == 2
    link.tick(c.next_timer() or 0)
    assert c.state is PeerState.OKAY


def test_reopen_without_dwa_closes_after_two_tw() -> None:
    link = silent_server_link()
    link.client = Peer(node(MME), Role.INITIATOR, watchdog=TW, reopen=True, rng=random.Random(5))
    # handshake by hand: the silent server cannot answer, so feed a CEA from a real responder
    responder = Peer(node(HSS), Role.RESPONDER)
    cea = responder.data_received(link.client.start(0.0)[0].data, 0.0)[0]
    out = link.client.data_received(cea.data, 0.0)
    assert link.client.state is PeerState.REOPEN and sent(out)[0].command_code == d.CMD_DWR
    t1 = link.client.next_timer() or 0
    assert not of(link.client.tick(t1), Close)  # pending DWR: one grace period (NumDWA = -1)
    t2 = link.client.next_timer() or 0
    assert of(link.client.tick(t2), Close) and link.client.watchdog_failed


def test_requests_received_in_reopen_are_thrown_away() -> None:
    link = Link(reopen=True)
    out = link.client.data_received(encode(air(5)), 1.0)
    assert not out and link.client.discarded_requests == 1


# ------------------------------------------------------------------------- DPR / DPA


@pytest.mark.parametrize("cause", [REBOOTING, DO_NOT_WANT_TO_TALK_TO_YOU])
def test_dpr_dpa_orderly_shutdown(cause: int) -> None:
    link = Link()
    link.deliver("server", link.server.disconnect(1.0, cause))
    (disc,) = link.actions("client", PeerDisconnecting)
    assert disc.cause == cause
    assert link.client.state is PeerState.CLOSING
    assert link.server.state is PeerState.DOWN  # DPA received: the DPR sender closes
    assert link.actions("server", Close)
    # the DPR receiver closes if the sender does not, after dpa_timeout
    link.tick(link.now + 5.0)
    assert link.client.state is PeerState.DOWN


def test_dpr_without_dpa_closes_after_timeout() -> None:
    link = silent_server_link()
    out = link.client.disconnect(1.0)
    (dpr,) = sent(out)
    assert dpr.command_code == d.CMD_DPR and dpr.get("Disconnect-Cause") == REBOOTING
    assert not of(link.client.tick(2.0), Close)
    assert of(link.client.tick(3.0), Close)


def test_requests_in_flight_during_dpr_are_still_delivered() -> None:
    s = open_server()
    dpr = Message.request("DPR", 0, [("Origin-Host", MME), ("Origin-Realm", REALM), ("Disconnect-Cause", 0)])
    out = s.data_received(encode(dpr), 1.0)
    assert sent(out)[0].command_code == d.CMD_DPA and s.state is PeerState.CLOSING
    # a request that crossed the DPR still reaches the application
    assert of(s.data_received(encode(air(3)), 1.1), DeliverRequest)


# ------------------------------------------------------------------------- requests and answers


def test_request_answer_and_identifiers() -> None:
    link = Link()
    c, s = link.client, link.server
    m1, m2 = air(1), air(2)
    link.deliver("client", c.send_request(m1, "a", 10.0))
    link.deliver("client", c.send_request(m2, "b", 10.0))
    assert m2.hop_by_hop == (m1.hop_by_hop + 1) & 0xFFFFFFFF
    assert m2.end_to_end != m1.end_to_end
    # RFC 6733 §3: the high 12 bits of the end-to-end id are the low 12 bits of the boot time
    assert m1.end_to_end >> 20 == c.node.origin_state_id & 0xFFF
    reqs = [a.message for a in link.actions("server", DeliverRequest)]
    assert [r.get("Session-Id") for r in reqs] == [m1.get("Session-Id"), m2.get("Session-Id")]
    # answers out of order, one with Route-Record added by a relay
    link.deliver("server", s.send_answer(aia(reqs[1], [("Route-Record", "relay.localdomain")])))
    link.deliver("server", s.send_answer(aia(reqs[0])))
    got = {a.token: a.message for a in link.actions("client", DeliverAnswer)}
    assert set(got) == {"a", "b"} and got["b"].get("Route-Record") == "relay.localdomain"
    assert c.pending_count == 0


def test_pending_request_times_out_and_late_answer_is_discarded() -> None:
    link = Link()
    c = link.client
    link.deliver("client", c.send_request(air(1), "late", 3.0))
    assert c.next_timer() == 3.0
    link.tick(2.9)
    assert not link.actions("client", RequestFailed)
    link.tick(3.0)
    (failed,) = link.actions("client", RequestFailed)
    assert failed.token == "late" and c.pending_count == 0
    req = link.actions("server", DeliverRequest)[0].message
    link.deliver("server", link.server.send_answer(aia(req)))
    assert not link.actions("client", DeliverAnswer) and c.unmatched_answers == 1


def test_connection_loss_hands_back_every_pending_request() -> None:
    link = Link()
    for i in range(5):
        link.deliver("client", link.client.send_request(air(i), i, 10.0))
    out = link.client.connection_lost(1.0)
    (fo,) = of(out, Failover)
    assert sorted(p.token for p in fo.requests) == [0, 1, 2, 3, 4]
    assert link.client.pending_count == 0 and link.client.state is PeerState.DOWN


def test_pending_table_is_bounded() -> None:
    link = Link()
    link.client.max_pending = 3
    for i in range(3):
        link.client.send_request(air(i), i, 10.0)
    with pytest.raises(PeerError):
        link.client.send_request(air(9), 9, 10.0)


def test_deadline_heap_stays_bounded_when_answers_come_first() -> None:
    link = Link()
    c = link.client
    for i in range(5000):
        link.deliver("client", c.send_request(air(i), i, 1e6 + i))
        req = link.actions("server", DeliverRequest)[-1].message
        link.deliver("server", link.server.send_answer(aia(req)))
    assert c.pending_count == 0
    assert len(c._deadlines) <= 1024 + 1


def test_retransmission_sets_t_and_a_new_hop_by_hop() -> None:
    link1, link2 = Link(), Link()
    link1.deliver("client", link1.client.send_request(air(1), "x", 10.0))
    (fo,) = of(link1.client.connection_lost(1.0), Failover)
    (p,) = fo.requests
    e2e = p.end_to_end
    link2.deliver("client", link2.client.resend(p))
    (req,) = [a.message for a in link2.actions("server", DeliverRequest)]
    assert req.retransmitted and req.end_to_end == e2e and req.hop_by_hop == link2.client._hbh
    link2.deliver("server", link2.server.send_answer(aia(req)))
    assert link2.actions("client", DeliverAnswer)[0].token == "x"


def test_mark_retransmission_changes_only_flags_and_hop_by_hop() -> None:
    data = encode(air(1))
    out = mark_retransmission(data, 0x01020304)
    assert out[4] == data[4] | d.FLAG_T and out[12:16] == b"\x01\x02\x03\x04"
    assert out[:4] == data[:4] and out[5:12] == data[5:12] and out[16:] == data[16:]


# ------------------------------------------------------------------------- protocol errors


def open_server() -> Peer:
    link = Link()
    return link.server


def test_unknown_command_gets_3001_with_e_bit() -> None:
    s = open_server()
    msg = Message(999, d.FLAG_R | d.FLAG_P, d.APP_S6A, 11, 12, [("Session-Id", "x"), ("Origin-Host", MME),
                                                               ("Origin-Realm", REALM)])
    (ans,) = sent(s.data_received(encode(msg), 1.0))
    assert ans.result_code() == d.DIAMETER_COMMAND_UNSUPPORTED and ans.is_error
    assert ans.hop_by_hop == 11 and ans.end_to_end == 12 and ans.get("Session-Id") == "x"
    assert s.state is PeerState.OKAY


def test_unknown_base_command_gets_3001() -> None:
    s = open_server()
    msg = Message(274, d.FLAG_R, 0, 1, 2, [("Origin-Host", MME), ("Origin-Realm", REALM)])  # ASR
    (ans,) = sent(s.data_received(encode(msg), 1.0))
    assert ans.result_code() == d.DIAMETER_COMMAND_UNSUPPORTED and ans.is_error


def test_unsupported_application_gets_3007() -> None:
    s = open_server()
    msg = Message(318, d.FLAG_R | d.FLAG_P, 4, 1, 2, [("Session-Id", "x"), ("Origin-Host", MME)])
    (ans,) = sent(s.data_received(encode(msg), 1.0))
    assert ans.result_code() == d.DIAMETER_APPLICATION_UNSUPPORTED and ans.is_error


def test_unknown_mandatory_avp_gets_5001_with_failed_avp() -> None:
    s = open_server()
    odd = Avp(9999, 10415, d.AVP_FLAG_M, b"\x00\x00\x00\x2a")
    out = s.data_received(encode(air(1, [odd])), 1.0)
    (ans,) = sent(out)
    assert ans.result_code() == d.DIAMETER_AVP_UNSUPPORTED and not ans.is_error
    failed = ans.group("Failed-AVP")
    assert failed is not None and failed.raw_avps() == [odd]
    assert not of(out, DeliverRequest)


def test_unknown_optional_avp_is_delivered_and_kept() -> None:
    s = open_server()
    odd = Avp(9999, 10415, 0, b"abcd")
    (dr,) = of(s.data_received(encode(air(1, [odd])), 1.0), DeliverRequest)
    assert odd in dr.message.raw_avps()


def avp_len_lt_8_request() -> bytes:
    good = encode(air(1))
    bad = good + struct.pack(">II", 1234, 0x40000004)  # an AVP claiming length 4
    return bytes([1]) + len(bad).to_bytes(3, "big") + bad[4:]


def test_avp_length_below_8_in_a_request_gets_5014_and_the_connection_stays() -> None:
    s = open_server()
    out = s.data_received(avp_len_lt_8_request(), 1.0)
    (ans,) = sent(out)
    assert ans.result_code() == d.DIAMETER_INVALID_AVP_LENGTH
    assert ans.group("Failed-AVP") is not None
    assert s.state is PeerState.OKAY and not of(out, Close)
    # the next good request still works
    assert of(s.data_received(encode(air(2)), 1.0), DeliverRequest)


def test_undecodable_answer_closes() -> None:
    link = Link()
    c = link.client
    link.deliver("client", c.send_request(air(1), "t", 10.0))
    body = encode(aia(link.actions("server", DeliverRequest)[0].message))
    bad = bytearray(body + struct.pack(">II", 1234, 0x40000004))
    bad[1:4] = len(bad).to_bytes(3, "big")
    out = c.data_received(bytes(bad), 1.0)
    assert of(out, Close) and of(out, Failover)


def test_wrong_version_is_answered_5011_then_closed() -> None:
    s = open_server()
    data = bytearray(encode(air(1)))
    data[0] = 2
    out = s.data_received(bytes(data), 1.0)
    (ans,) = sent(out)
    assert ans.result_code() == d.DIAMETER_UNSUPPORTED_VERSION
    assert of(out, Close)


def test_absurd_length_is_refused_without_buffering() -> None:
    s = open_server()
    header = bytes([1, 0xFF, 0xFF, 0xFC]) + encode(air(1))[4:20]  # 16 MiB claimed
    out = s.data_received(header, 1.0)
    (ans,) = sent(out)
    assert ans.result_code() == d.DIAMETER_INVALID_MESSAGE_LENGTH
    assert of(out, Close) and len(s._buf) == 0


def test_length_not_multiple_of_4_closes_without_answer_for_an_answer_header() -> None:
    s = open_server()
    data = bytearray(encode(aia(air(1))))
    data[3] |= 1
    out = s.data_received(bytes(data), 1.0)
    assert not sent(out) and of(out, Close)


def test_fragmented_stream_is_reassembled() -> None:
    s = open_server()
    stream = b"".join(encode(air(i)) for i in range(3))
    delivered = []
    for b in stream:  # one byte at a time
        delivered += of(s.data_received(bytes([b]), 1.0), DeliverRequest)
    assert [m.message.get("Session-Id") for m in delivered] == [f"{MME};1;{i}" for i in range(3)]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_fragmentation_delivers_the_same_requests(cuts: list[int]) -> None:
    s = open_server()
    stream = b"".join(encode(air(i)) for i in range(5))
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    delivered = []
    for a, b in itertools.pairwise(points):
        delivered += of(s.data_received(stream[a:b], 1.0), DeliverRequest)
    assert len(delivered) == 5 and s.state is PeerState.OKAY


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(min_size=1, max_size=300))
def test_garbage_never_raises_and_buffers_at_most_one_message(junk: bytes) -> None:
    s = open_server()
    out = s.data_received(junk, 1.0)
    for a in out:  # whatever comes out is an answer or a close, never an exception
        assert isinstance(a, Send | Close | DeliverRequest | Failover) or a.__class__.__name__ == "StateChanged"
    assert len(s._buf) <= s.max_message_size


# ------------------------------------------------------------------------- filling base AVPs


def test_answer_without_origin_gets_it_added_and_complete_answers_are_unchanged() -> None:
    s = open_server()
    req = decode(encode(air(1)))
    bare = Message.answer_to(req, [("Result-Code", d.DIAMETER_SUCCESS)])
    (out,) = sent(s.send_answer(bare))
    assert out.get("Origin-Host") == HSS and out.get("Origin-Realm") == REALM
    assert out.get("Session-Id") == req.get("Session-Id") and out.result_code() == d.DIAMETER_SUCCESS
    full = aia(req)
    assert s.encode_answer(full) == encode(full)


def test_request_fill_adds_only_what_is_missing() -> None:
    link = Link()
    fill = encoded_avps([("Origin-Host", MME), ("Origin-Realm", REALM), ("Destination-Host", HSS),
                         ("Destination-Realm", REALM)])
    bare = Message.request("AIR", None, [("Session-Id", "s;1"), ("Auth-Session-State", 1),
                                         ("Destination-Realm", "other.realm")])
    link.deliver("client", link.client.send_request(bare, "t", 10.0, fill))
    (req,) = [a.message for a in link.actions("server", DeliverRequest)]
    assert req.get("Origin-Host") == MME and req.get("Destination-Host") == HSS
    assert req.get_all("Destination-Realm") == ["other.realm"]  # the caller's own value is kept
    assert base_avp_codes(encode(req)) == {263, 277, 283, 264, 296, 293}


def test_fill_missing_keeps_the_message_decodable() -> None:
    data = encode(air(1))
    assert fill_missing(data, encoded_avps([("Origin-Host", MME)])) == data  # already there
    more = fill_missing(data, encoded_avps([("Destination-Host", HSS)]))
    assert int.from_bytes(more[1:4], "big") == len(more)
    assert decode(more).get("Destination-Host") == HSS


def test_request_with_reserved_or_error_header_bits_gets_3008() -> None:
    s = open_server()
    for flags in (d.FLAG_R | d.FLAG_P | d.FLAG_E, d.FLAG_R | d.FLAG_P | 0x01):
        data = bytearray(encode(air(1)))
        data[4] = flags
        (ans,) = sent(s.data_received(bytes(data), 1.0))
        assert ans.result_code() == d.DIAMETER_INVALID_HDR_BITS and ans.is_error
    assert s.state is PeerState.OKAY


def test_reserved_avp_flag_bits_get_3009_with_failed_avp() -> None:
    s = open_server()
    msg = air(1)
    msg.append_avp(Avp(1, 0, 0x40, b"x"))  # User-Name again, to be corrupted below
    data = bytearray(encode(msg))
    data[-12 + 4] |= 0x01  # the last AVP (8-octet header, 1 octet of data, 3 of padding)
    (ans,) = sent(s.data_received(bytes(data), 1.0))
    assert ans.result_code() == d.DIAMETER_INVALID_AVP_BITS and ans.is_error
    assert ans.group("Failed-AVP") is not None


def test_origin_host_must_be_a_name_of_the_tls_certificate() -> None:
    client = Peer(node(MME), Role.INITIATOR)
    server = Peer(node(HSS), Role.RESPONDER, certificate_names=["other.localdomain"])
    out = server.data_received(client.start(0.0)[0].data, 0.0)  # type: ignore[union-attr]
    assert sent(out)[0].result_code() == d.DIAMETER_UNKNOWN_PEER and of(out, Close)
    server = Peer(node(HSS), Role.RESPONDER, certificate_names=["MME.localdomain"])  # case-insensitive
    client = Peer(node(MME), Role.INITIATOR, certificate_names=["hss.other"])
    out = server.data_received(client.start(0.0)[0].data, 0.0)  # type: ignore[union-attr]
    assert server.state is PeerState.OKAY
    assert of(client.data_received(out[0].data, 0.0), Close)  # type: ignore[union-attr]
    assert "certificate" in (client.close_reason or "")
