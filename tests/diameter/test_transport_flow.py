"""The peer layer's flow rules over real loopback sockets (kmed.diameter.transport, server, client):

- a deep backlog of requests is handled at most ``MAX_MESSAGES_PER_ITERATION`` per event-loop
  iteration, so answers flow while it drains (docs/faults.md finding 1);
- a client whose write buffer is full keeps reading its answers, so a client and a server
  cannot both stop reading and wait on each other (finding 2);
- requests that cross the server's DPR are answered before the connection closes (RFC 6733
  §5.4), within a bounded drain;
- the client reconnects quickly after a short outage of its only peer (finding 3) and
  retransmits the requests pending on the lost connection to that peer with the T flag
  (RFC 6733 §5.5.4);
- ``LocalNode.base_message_hook`` counts the base messages of real connections.

The reconnect tests measure a behaviour bound (an outage of a few seconds costs well under
1.5 s after the peer is back), not a performance figure.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter

import pytest

from kmed.diameter import dictionary as d
from kmed.diameter.client import DiameterClient
from kmed.diameter.codec import encode
from kmed.diameter.message import Message
from kmed.diameter.node import LocalNode, PeerInfo
from kmed.diameter.server import DiameterServer
from kmed.diameter.transport import MAX_MESSAGES_PER_ITERATION, PeerConnection, RequestTimeout
from tests.diameter.counters import BaseMessageCounters

from .test_transport import (
    HSS,
    MME,
    REALM,
    ep,
    make_aia,
    make_air,
    mme_node,
    raw_open,
    read_message,
    read_until_eof,
    run,
    s6a_handler,
    serve,
    wait_for,
)


class Ticker:
    """Counts event-loop iterations: a callback that reschedules itself with ``call_soon``
    runs exactly once per iteration."""

    def __init__(self) -> None:
        self.n = 0
        self.running = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.n += 1
        if self.running:
            asyncio.get_running_loop().call_soon(self._tick)


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_a_deep_backlog_is_handled_a_bounded_number_per_iteration(use_uvloop: bool) -> None:
    """3,000 AIRs written in one burst while the server is busy: the server handles at most
    MAX_MESSAGES_PER_ITERATION per loop iteration, answers every one, in order, and writes
    answers before it has read the whole backlog."""
    total = 3000
    per_iteration: Counter[int] = Counter()
    order: list[str] = []
    handled_at_answer: list[int] = []  # requests the server had handled when each answer was read

    def handler(req: Message, peer: PeerInfo) -> Message:
        per_iteration[ticker.n] += 1
        order.append(req.get("Session-Id"))
        return make_aia(req)

    async def read_answers(reader: asyncio.StreamReader) -> list[Message]:
        out = []
        for _ in range(total):
            out.append(await read_message(reader))
            handled_at_answer.append(len(order))
        return out

    async def main() -> None:
        nonlocal ticker
        server = await serve(handler)
        reader, writer = await raw_open(server.ports[0])
        ticker = Ticker()
        answers_task = asyncio.create_task(read_answers(reader))
        writer.write(b"".join(encode(_with_ids(make_air(i), i)) for i in range(total)))
        answers = await answers_task
        assert [a.hop_by_hop for a in answers] == [i + 1 for i in range(total)]
        assert all(a.result_code() == d.DIAMETER_SUCCESS for a in answers)
        ticker.running = False
        writer.close()
        await server.stop(1.0)

    ticker: Ticker
    run(main(), uvloop=use_uvloop)
    assert order == [f"{MME};1;{i}" for i in range(total)]
    assert max(per_iteration.values()) <= MAX_MESSAGES_PER_ITERATION
    assert handled_at_answer[0] < total // 2  # answers flowed while the backlog was read


def _with_ids(msg: Message, i: int) -> Message:
    msg.hop_by_hop, msg.end_to_end = i + 1, 0x1000 + i
    return msg


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_a_client_with_a_full_write_buffer_keeps_reading_its_answers(use_uvloop: bool) -> None:
    """The backlog probe's mutual stall (finding 2), small: the server stops reading (the
    probe SIGSTOPs the HSS) while the client queues 4,000 AIRs, far above its write buffer's
    high-water mark; then the server reads and answers. Small socket buffers make the
    server's own write buffer fill quickly: if the client stopped reading because its writes
    are stuck, the server would stop reading because its answers are, and neither would ever
    resume (before the watchdog). Every request must be answered."""
    total = 4000

    async def main() -> None:
        server = await serve(s6a_handler)
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM, request_timeout=120.0)
        await client.start()
        await wait_for(lambda: bool(server.connections))
        cconn = next(s.conn for s in client._slots if s.conn is not None)
        sconn = server.connections[0]
        assert cconn.transport is not None and sconn.transport is not None
        for conn in (cconn, sconn):
            sock = conn.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
        sconn.transport.pause_reading()  # the server is busy
        tasks = [asyncio.create_task(client.request(make_air(i))) for i in range(total)]
        await wait_for(lambda: cconn.transport is not None and cconn.transport.get_write_buffer_size() > 256 * 1024)
        sconn.transport.resume_reading()
        done, _ = await asyncio.wait(tasks, timeout=30.0)  # less than 2 Tw: the watchdog is no rescue
        assert len(done) == total, f"{total - len(done)} requests unanswered: the peers stopped reading"
        assert all(t.result().result_code() == d.DIAMETER_SUCCESS for t in tasks)
        await client.close()
        await server.stop(1.0)

    run(main(), timeout=90.0, uvloop=use_uvloop)


def test_pause_writing_pauses_reading_on_a_server_only() -> None:
    async def main() -> None:
        server = await serve()
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM)
        await client.start()
        await wait_for(lambda: bool(server.connections))
        cconn = next(s.conn for s in client._slots if s.conn is not None)
        sconn = server.connections[0]
        for conn, pauses in ((cconn, False), (sconn, True)):
            assert isinstance(conn, PeerConnection) and conn.transport is not None
            conn.pause_writing()
            assert conn.transport.is_reading() is not pauses
            conn.resume_writing()
            assert conn.transport.is_reading()
        await client.close()
        await server.stop(1.0)

    run(main())


# ------------------------------------------------------------------------- answers after DPR


def test_requests_crossing_the_servers_dpr_are_answered_before_the_close() -> None:
    """The server stops (DPR); the peer had sent AIRs before it read the DPR and answers DPA
    right away. The answers come from futures resolved later (as the HSS's group commit
    does): all three arrive before the connection closes (RFC 6733 §5.4)."""

    def later(req: Message, peer: PeerInfo) -> asyncio.Future[Message]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Message] = loop.create_future()
        loop.call_later(0.2, lambda: None if fut.done() else fut.set_result(make_aia(req)))
        return fut

    async def main() -> None:
        server = await serve(later)
        reader, writer = await raw_open(server.ports[0])
        stopping = asyncio.create_task(server.stop(5.0))
        dpr = await read_message(reader)
        assert dpr.command_code == d.CMD_DPR and dpr.is_request
        writer.write(b"".join(encode(_with_ids(make_air(i), i)) for i in range(3)))
        dpa = Message.answer_to(dpr, [("Result-Code", d.DIAMETER_SUCCESS), ("Origin-Host", MME),
                                      ("Origin-Realm", REALM)])
        writer.write(encode(dpa))
        rest = await read_until_eof(reader)
        assert [m.name for m in rest] == ["AIA", "AIA", "AIA"]
        assert sorted(m.hop_by_hop for m in rest) == [1, 2, 3]
        assert all(m.result_code() == d.DIAMETER_SUCCESS for m in rest)
        await stopping
        writer.close()

    run(main())


def test_answers_that_never_come_do_not_hold_the_close_beyond_the_drain() -> None:
    def never(req: Message, peer: PeerInfo) -> asyncio.Future[Message]:
        return asyncio.get_running_loop().create_future()

    async def main() -> None:
        server = await serve(never)
        reader, writer = await raw_open(server.ports[0])
        stopping = asyncio.create_task(server.stop(30.0))
        dpr = await read_message(reader)
        writer.write(encode(_with_ids(make_air(1), 1)))
        writer.write(encode(Message.answer_to(dpr, [("Result-Code", d.DIAMETER_SUCCESS), ("Origin-Host", MME),
                                                    ("Origin-Realm", REALM)])))
        assert await read_until_eof(reader) == []  # closed after the drain timeout, answer owed
        async with asyncio.timeout(10.0):  # the drain (2 s), not the stop deadline (30 s)
            await stopping
        writer.close()

    run(main())


# ------------------------------------------------------------------------- reconnect, retransmit


OUTAGE_S = 3.5  # long enough that a doubling back-off from 0.2 s waits until ~6 s


def test_the_client_reopens_after_its_only_peer_comes_back() -> None:
    """Over sockets: the client reconnects by itself and serves again. How soon is a property of
    ``client.reconnect_delay``, checked without a clock in test_peer_flow.py; the figures with a
    real HSS are in docs/faults.md."""

    async def main() -> None:
        server = await serve()
        port = server.ports[0]
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM)  # default back-off
        await client.start()
        await server.stop(1.0)
        await wait_for(lambda: client.state != "okay")
        await asyncio.sleep(OUTAGE_S)
        server = await serve(port=port)
        await wait_for(lambda: client.state == "okay", timeout=30.0)
        assert (await client.request(make_air(1))).result_code() == d.DIAMETER_SUCCESS
        await client.close()
        await server.stop(1.0)

    run(main())


def test_requests_pending_on_a_dropped_connection_are_retransmitted_to_the_same_peer() -> None:
    """One HSS; it drops the connection with an AIR unanswered and is back OUTAGE_S later:
    the AIR is sent again on the new connection (T flag, same end-to-end id, new hop-by-hop)
    and answered within its deadline, instead of failing."""
    seen: list[Message] = []

    def first_hangs(req: Message, peer: PeerInfo) -> Message | asyncio.Future[Message]:
        seen.append(req)
        if len(seen) == 1:
            return asyncio.get_running_loop().create_future()  # never answered: the HSS dies
        return make_aia(req)

    async def main() -> None:
        server = await serve(first_hangs)
        port = server.ports[0]
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM)
        await client.start()
        task = asyncio.create_task(client.request(make_air(1), timeout=OUTAGE_S + 2.0))
        await wait_for(lambda: len(seen) == 1)
        for conn in server.connections:
            conn.abort("test: the HSS dies")
        await server.stop(0.0)
        await asyncio.sleep(OUTAGE_S)
        server = await serve(first_hangs, port=port)
        answer = await task
        assert answer.result_code() == d.DIAMETER_SUCCESS
        first, again = seen
        assert again.retransmitted and not first.retransmitted
        assert again.end_to_end == first.end_to_end and again.hop_by_hop != first.hop_by_hop
        assert again.get("Session-Id") == first.get("Session-Id")
        await client.close()
        await server.stop(1.0)

    run(main())


def test_a_request_still_fails_when_its_only_peer_stays_down_past_the_deadline() -> None:
    seen: list[Message] = []

    def hang(req: Message, peer: PeerInfo) -> asyncio.Future[Message]:
        seen.append(req)
        return asyncio.get_running_loop().create_future()

    async def main() -> None:
        server = await serve(hang)
        client = DiameterClient(mme_node(), server.bound_endpoints, REALM)
        await client.start()
        task = asyncio.create_task(client.request(make_air(1), timeout=0.8))
        await wait_for(lambda: len(seen) == 1)
        for conn in server.connections:
            conn.abort("test")
        await server.stop(0.0)
        with pytest.raises(RequestTimeout):
            await task
        await client.close()

    run(main())


# ------------------------------------------------------------------------- base message hook


def test_base_message_counters_over_sockets() -> None:
    async def main() -> None:
        cc, sc = BaseMessageCounters(), BaseMessageCounters()
        server = DiameterServer(LocalNode(HSS, REALM, base_message_hook=sc), [ep()], [MME], s6a_handler,
                                watchdog=0.2)
        await server.start()
        client = DiameterClient(LocalNode(MME, REALM, base_message_hook=cc), server.bound_endpoints, REALM)
        await client.start()
        await wait_for(lambda: sc.get("DWR", "sent") >= 1 and cc.get("DWA", "sent") >= 1)
        await client.close()
        await server.stop(1.0)
        assert (cc.get("CER", "sent"), cc.get("CEA", "received")) == (1, 1)
        assert (sc.get("CER", "received"), sc.get("CEA", "sent")) == (1, 1)
        assert (cc.get("DPR", "sent"), sc.get("DPR", "received")) == (1, 1)
        assert (sc.get("DPA", "sent"), cc.get("DPA", "received")) == (1, 1)
        assert cc.get("DWR", "received") == sc.get("DWR", "sent")

    run(main())

