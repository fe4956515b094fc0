"""Sans-I/O tests of the peer layer's flow rules (kmed.diameter.peer, no sockets, a fake clock):

- ``Peer.data_received(..., limit)``: at most ``limit`` messages per call, the rest kept
  whole for a later call (the asyncio edge bounds its work per loop iteration with it,
  docs/faults.md finding 1);
- answers owed when a connection closes (RFC 6733 §5.4): after DPR/DPA the connection waits,
  at most ``drain_timeout``, for the answers to the requests it delivered and for its own;
- ``LocalNode.base_message_hook``: CER/CEA, DWR/DWA, DPR/DPA sent and received;
- :func:`kmed.diameter.client.reconnect_delay`, the client's reconnect schedule.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.diameter import dictionary as d
from kmed.diameter.client import RECONNECT_FRACTION, reconnect_delay
from kmed.diameter.codec import decode, encode
from kmed.diameter.message import Message
from kmed.diameter.node import BaseMessageEvent, LocalNode
from kmed.diameter.peer import (
    REBOOTING,
    Close,
    DeliverRequest,
    Failover,
    Peer,
    PeerState,
    Role,
    Send,
)
from tests.diameter.counters import BaseMessageCounters

from .test_peer import HSS, MME, REALM, Link, aia, air, node, of, sent

# ------------------------------------------------------------------------- data_received's limit


def _frames(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        req = air(i)
        req.hop_by_hop, req.end_to_end = i + 1, 1000 + i
        out.append(encode(req))
    return out


def _open_server() -> Peer:
    link = Link()
    assert link.server.state is PeerState.OKAY
    return link.server


def _delivered(actions: list[Any]) -> list[str]:
    return [a.message.get("Session-Id") for a in actions if isinstance(a, DeliverRequest)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), cuts=st.lists(st.integers(1, 5000), max_size=8), limit=st.integers(1, 7),
       drains=st.lists(st.booleans(), max_size=30))
def test_limit_delivers_every_request_once_in_order_whatever_the_chunks(
        n: int, cuts: list[int], limit: int, drains: list[bool]) -> None:
    """Whatever the chunking and the interleaving of chunks with b"" calls, a limited peer
    delivers exactly the requests, in order, at most ``limit`` per call, and ``backlog`` is True
    exactly when a whole message waits."""
    server = _open_server()
    stream = b"".join(_frames(n))
    points = sorted({c % len(stream) for c in cuts} - {0})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    got: list[str] = []
    steps = iter(drains)
    for chunk in chunks:
        out = server.data_received(chunk, 1.0, limit)
        assert len(_delivered(out)) <= limit
        got += _delivered(out)
        if next(steps, False) and server.backlog:
            out = server.data_received(b"", 1.0, limit)
            assert len(_delivered(out)) <= limit
            got += _delivered(out)
    for _ in range(n + 1):  # bounded: each call delivers at least one while backlog is True
        if not server.backlog:
            break
        out = server.data_received(b"", 1.0, limit)
        assert 1 <= len(_delivered(out)) <= limit
        got += _delivered(out)
    assert not server.backlog
    assert got == [f"{MME};1;{i}" for i in range(n)]
    assert server.frames_received == n + 1  # + the CER


def test_limit_zero_buffers_without_handling_and_no_limit_handles_everything() -> None:
    server = _open_server()
    stream = b"".join(_frames(5))
    assert server.data_received(stream, 1.0, 0) == [] and server.backlog
    assert len(_delivered(server.data_received(b"", 1.0, 2))) == 2 and server.backlog
    assert len(_delivered(server.data_received(b"", 1.0))) == 3 and not server.backlog


def test_a_closed_peer_drops_its_backlog() -> None:
    server = _open_server()
    server.data_received(b"".join(_frames(4)), 1.0, 1)
    assert server.backlog
    out = server.abort("test")
    assert of(out, Close) and not server.backlog
    assert server.data_received(b"", 1.0, 10) == []


def test_a_framing_error_behind_the_limit_is_still_answered_and_closes() -> None:
    server = _open_server()
    bad = bytearray(_frames(1)[0])
    bad[0] = 2  # version 2: 5011 DIAMETER_UNSUPPORTED_VERSION, then close (RFC 6733 §7.1.5)
    server.data_received(b"".join(_frames(2)) + bytes(bad), 1.0, 1)
    assert server.backlog
    out = server.data_received(b"", 1.0, 5)
    assert len(_delivered(out)) == 1
    (answer,) = sent(out)
    assert answer.result_code() == d.DIAMETER_UNSUPPORTED_VERSION
    assert of(out, Close) and server.state is PeerState.DOWN


# ------------------------------------------------------------------------- answers owed at DPR


def _dpr_link() -> tuple[Link, Message]:
    """The server sent DPR; the client answered DPA; the DPA is not delivered yet. Returns the
    link and the DPA (to deliver when the test wants)."""
    link = Link()
    dpr_out = link.server.disconnect(link.now, REBOOTING)
    (dpr,) = sent(dpr_out)
    assert dpr.command_code == d.CMD_DPR and link.server.state is PeerState.CLOSING
    return link, dpr


def test_requests_after_our_dpr_are_answered_before_the_close() -> None:
    link, dpr = _dpr_link()
    # two requests cross the DPR on the wire: the server delivers them
    out = link.server.data_received(encode(air(1)) + encode(air(2)), link.now)
    reqs = [a.message for a in of(out, DeliverRequest)]
    assert len(reqs) == 2 and not link.server.drained
    # the client's DPA arrives before the answers are ready: no close yet
    dpa = link.client.data_received(encode(dpr), link.now)
    out = link.server.data_received(dpa[0].data, link.now)
    assert not of(out, Close) and link.server.state is PeerState.CLOSING
    assert link.server.encode_answer(aia(reqs[0])) is not None
    assert not of(link.server.tick(link.now), Close)  # one answer still owed
    assert link.server.encode_answer(aia(reqs[1])) is not None
    out = link.server.tick(link.now)
    assert of(out, Close) and link.server.close_reason == "disconnected (DPA received)"


def test_dpa_with_nothing_owed_closes_at_once() -> None:
    link, dpr = _dpr_link()
    dpa = link.client.data_received(encode(dpr), link.now)
    out = link.server.data_received(dpa[0].data, link.now)
    assert of(out, Close) and link.server.close_reason == "disconnected (DPA received)"


def test_owed_answers_wait_at_most_the_drain_timeout() -> None:
    link, dpr = _dpr_link()
    link.server.data_received(encode(air(1)), link.now)
    dpa = link.client.data_received(encode(dpr), link.now)
    assert not of(link.server.data_received(dpa[0].data, link.now), Close)
    deadline = link.server.next_timer()
    assert deadline is not None and deadline <= link.now + link.server.drain_timeout
    assert not of(link.server.tick(deadline - 0.01), Close)
    out = link.server.tick(deadline)
    assert of(out, Close)
    assert "1 answers owed" in (link.server.close_reason or "")
    assert link.server.encode_answer(aia(air(1))) is None  # too late: nothing to send on


def test_no_dpa_and_answers_owed_waits_one_drain_timeout_more() -> None:
    link, _dpr = _dpr_link()
    link.server.data_received(encode(air(1)), link.now)
    t = link.server.next_timer()
    assert t is not None
    assert not of(link.server.tick(t), Close)  # the DPA timeout: answers still owed
    t2 = link.server.next_timer()
    assert t2 is not None and t2 > t
    assert of(link.server.tick(t2), Close)
    assert (link.server.close_reason or "").startswith("disconnected (no DPA)")


def test_the_dpr_receiver_waits_for_its_pending_answers_then_hands_them_back() -> None:
    """The client got DPR with a request unanswered: it keeps the connection up to read the
    answer (up to the DPA timeout plus the drain timeout), then fails the request over."""
    link = Link()
    link.client.send_request(air(1), "token", 100.0)
    (req_bytes,) = [a.data for a in link.client.send_request(air(2), "token2", 100.0)]
    (dpr,) = of(link.server.disconnect(link.now, REBOOTING), Send)
    client_out = link.client.data_received(dpr.data, link.now)
    assert link.client.state is PeerState.CLOSING and sent(client_out)[0].command_code == d.CMD_DPA
    t = link.client.next_timer()
    assert t is not None
    assert not of(link.client.tick(t), Close)  # requests of ours still pending: wait once more
    # an answer arrives meanwhile (the server answered the request it had)
    req2 = decode(req_bytes)
    link.client.data_received(encode(aia(req2)), t)
    t2 = link.client.next_timer()
    assert t2 is not None
    out = link.client.tick(t2)
    (fo,) = of(out, Failover)
    assert [p.token for p in fo.requests] == ["token"]
    assert of(out, Close)


# ------------------------------------------------------------------------- base message hook


def test_base_message_hook_sees_every_base_message_both_ways() -> None:
    cc, sc = BaseMessageCounters(), BaseMessageCounters()
    events: list[BaseMessageEvent] = []

    def client_hook(ev: BaseMessageEvent) -> None:
        events.append(ev)
        cc(ev)

    link = Link(client_node=node(MME, 1, base_message_hook=client_hook),
                server_node=node(HSS, 3, base_message_hook=sc), tw=1.0)
    assert cc.get("CER", "sent") == 1 and cc.get("CEA", "received") == 1
    assert sc.get("CER", "received") == 1 and sc.get("CEA", "sent") == 1
    cea = next(e for e in events if e.message == "CEA")
    assert cea == BaseMessageEvent("CEA", False, HSS, None, d.DIAMETER_SUCCESS)
    link.tick(2.0)  # Tw passed: both send DWR, both answer
    assert cc.get("DWR", "sent") + sc.get("DWR", "sent") >= 1
    assert cc.get("DWR", "sent") == sc.get("DWR", "received") and cc.get("DWA", "received") == sc.get("DWA", "sent")
    link.deliver("client", link.client.disconnect(link.now, REBOOTING))
    assert cc.get("DPR", "sent") == 1 and sc.get("DPR", "received") == 1
    assert sc.get("DPA", "sent") == 1 and cc.get("DPA", "received") == 1
    # application traffic is not counted
    link2 = Link(client_node=node(MME, 1, base_message_hook=cc))
    before = sum(cc.counts.values())
    link2.deliver("client", link2.client.send_request(air(1), "t", 10.0))
    assert sum(cc.counts.values()) == before


def test_a_failing_hook_does_not_break_the_connection() -> None:
    def bad(ev: BaseMessageEvent) -> None:
        raise RuntimeError("metrics down")

    link = Link(server_node=node(HSS, 3, base_message_hook=bad))
    assert link.server.state is PeerState.OKAY and link.server.hook_errors == 2  # CER in, CEA out


def test_unknown_peer_cer_is_reported_with_its_origin_host() -> None:
    seen: list[BaseMessageEvent] = []
    server = Peer(LocalNode(HSS, REALM, base_message_hook=seen.append), Role.RESPONDER, allowed_peers=set())
    server.start(0.0)
    client = Peer(node(MME), Role.INITIATOR)
    server.data_received(of(client.start(0.0), Send)[0].data, 0.0)
    assert [(e.message, e.sent, e.peer) for e in seen] == [("CER", False, MME), ("CEA", True, None)]
    assert seen[1].result_code == d.DIAMETER_UNKNOWN_PEER


# ------------------------------------------------------------------------- reconnect schedule


@settings(max_examples=200, deadline=None)
@given(down_for=st.floats(0, 1e5), initial=st.floats(0.001, 1.0), maximum=st.floats(1.0, 120.0),
       seed=st.integers(0, 2**32))
def test_reconnect_delay_is_bounded_and_proportional_to_the_outage(
        down_for: float, initial: float, maximum: float, seed: int) -> None:
    delay = reconnect_delay(down_for, initial, maximum, random.Random(seed))
    assert initial * 0.5 <= delay <= maximum
    assert delay <= max(initial, RECONNECT_FRACTION * down_for)


def test_reconnect_schedule_reopens_a_short_outage_quickly() -> None:
    """Attempt times of one client from the moment a connection is lost: the first within
    ``initial``, then growing geometrically; for every outage up to 60 s, the first attempt
    after the peer is back comes at most a quarter of the outage (or ``initial``) later."""
    for seed in range(20):
        rng = random.Random(seed)
        t, attempts = 0.0, []
        for _ in range(200):  # bounded
            t += reconnect_delay(t, 0.05, 30.0, rng)
            attempts.append(t)
            if t > 60.0:
                break
        assert attempts[0] <= 0.05
        for back in (0.5, 1.0, 2.0, 2.5, 3.5, 10.0, 60.0):
            first = next(a for a in attempts if a >= back)
            assert first - back <= max(0.05, RECONNECT_FRACTION * back)
        assert len(attempts) < 60  # geometric, not a busy loop
