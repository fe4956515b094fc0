"""Diameter client: connections to peers in failover order, requests with answers awaited.

``DiameterClient(node, connect, destination_realm)`` keeps one connection per configured peer
(reconnecting with a bounded, jittered exponential back-off, :func:`reconnect_delay`) and sends each request to the
Destination-Host itself when it is a connected peer, else to the first peer in the list whose
connection is OKAY (RFC 6733 §6.1.4; RFC 3539 §3.4: failover and failback). When a
connection goes SUSPECT or DOWN, its unanswered requests are sent again on the next OKAY peer
with the T flag and a new hop-by-hop id (RFC 6733 §5.5.4); a request whose deadline passes
fails with :class:`~kmed.diameter.transport.RequestTimeout`. With no other peer OKAY, they wait
for the first peer that opens again, the same one included, until their deadline.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Iterable
from typing import Any

from kmed import log as klog
from kmed.config import Endpoint
from kmed.diameter.codec import DEFAULT_MAX_SIZE, encoded_avps
from kmed.diameter.message import Message
from kmed.diameter.node import LocalNode, PeerInfo
from kmed.diameter.peer import (
    DO_NOT_WANT_TO_TALK_TO_YOU,
    REBOOTING,
    Peer,
    PeerError,
    PeerState,
    Pending,
    Role,
)
from kmed.diameter.transport import Handler, PeerConnection, RequestTimeout, connect, dispatch_request

__all__ = ["ClientClosed", "DiameterClient", "NoPeerAvailable", "RequestTimeout", "reconnect_delay"]

#: A peer down for T seconds is tried again after about ``RECONNECT_FRACTION * T`` (jittered):
#: the attempt times grow geometrically (x1.125-1.25 each), so a peer back after an outage of
#: T seconds is open again within about T/4 (a 2 s HSS restart: within 0.5 s).
RECONNECT_FRACTION = 0.25


def reconnect_delay(down_for: float, initial: float, maximum: float, rng: random.Random) -> float:
    """Seconds to wait before the next connection attempt to a peer that has been down (not
    OKAY) for ``down_for`` seconds: ``RECONNECT_FRACTION * down_for`` bounded to
    [``initial``, ``maximum``], times a jitter in [0.5, 1] (so that clients do not reconnect in
    step). Right after an open connection was lost this is ``initial`` * [0.5, 1]: the first
    retry is quick (RFC 3539 §3.4.1 leaves Tc to the implementation)."""
    base = min(maximum, max(initial, RECONNECT_FRACTION * down_for))
    return base * rng.uniform(0.5, 1.0)


class NoPeerAvailable(ConnectionError):
    """No configured peer was OKAY before the request's deadline."""


class ClientClosed(ConnectionError):
    """The client was closed while the request waited."""


class _Slot:
    """One configured peer: its connection (when there is one) and the reconnect loop."""

    def __init__(self, client: DiameterClient, endpoint: Endpoint) -> None:
        self.client = client
        self.endpoint = endpoint
        self.conn: PeerConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.reopen = False
        self.down_since: float | None = None  # when the peer was last OKAY (or we started)
        self.hold = False  # the peer said DO_NOT_WANT_TO_TALK_TO_YOU: wait backoff_max once
        self.state = "connecting"
        self.failing = False

    def _make_peer(self, local: str | None, remote: tuple[str, int] | None, names: list[str] | None) -> Peer:
        c = self.client
        return Peer(c.node, Role.INITIATOR, watchdog=c.watchdog, max_message_size=c.max_message_size,
                    reopen=self.reopen, local_addresses=[local] if local else [], remote_address=remote,
                    certificate_names=names, rng=c.rng, transport=self.endpoint.transport)

    def _new_connection(self) -> PeerConnection:
        return PeerConnection(self._make_peer, self, coalesce=self.endpoint.transport != "sctp",
                              pause_reading_on_write_pressure=False)

    async def run(self) -> None:
        c = self.client
        log = c.log.bind(peer_endpoint=str(self.endpoint))
        self.down_since = asyncio.get_running_loop().time()
        while not c.closing:
            self.state = "connecting"
            try:
                conn = await connect(self.endpoint, self._new_connection, ssl_context=c.ssl_context,
                                     timeout=c.connect_timeout)
            except Exception as exc:  # refused, unreachable, TLS failure...: retry after the back-off
                if not self.failing:
                    log.warning("diameter_connect_failed", error=str(exc) or type(exc).__name__)
                self.failing = True
                self.state = "down"
                await self._sleep()
                continue
            self.conn = conn
            reason = await asyncio.shield(conn.closed)
            self.conn = None
            self.state = "down"
            if self.down_since is None:
                self.down_since = asyncio.get_running_loop().time()
            peer = conn.peer
            self.reopen = bool(peer is not None and peer.watchdog_failed)
            if c.closing:
                break
            log.info("diameter_connection_closed", reason=reason)
            await self._sleep()

    async def _sleep(self) -> None:
        c = self.client
        now = asyncio.get_running_loop().time()
        if self.hold:
            self.hold = False
            delay = c.backoff_max
        else:
            since = now if self.down_since is None else self.down_since
            delay = reconnect_delay(now - since, c.backoff_initial, c.backoff_max, c.rng)
        await asyncio.sleep(delay)

    # ConnectionOwner callbacks

    def on_opened(self, conn: PeerConnection, info: PeerInfo) -> None:
        self.failing = False
        self.client.log.info("diameter_peer_open", peer=info.origin_host, endpoint=str(self.endpoint),
                             product=info.product_name)

    def on_state(self, conn: PeerConnection, old: PeerState, new: PeerState) -> None:
        self.state = new.value
        if new is PeerState.OKAY:
            self.down_since = None
            self.client._peer_ready()
        elif old is PeerState.OKAY:
            if new is PeerState.SUSPECT:
                self.client.log.warning("diameter_peer_suspect", endpoint=str(self.endpoint))
            self.client._update_ready()

    def on_request(self, conn: PeerConnection, msg: Message) -> None:
        c = self.client
        dispatch_request(conn, msg, c.handler, c.tasks, c.node)

    def on_failover(self, conn: PeerConnection, requests: list[Pending]) -> None:
        self.client._failover(requests, conn)

    def on_disconnecting(self, conn: PeerConnection, cause: int | None) -> None:
        self.client.log.info("diameter_peer_disconnecting", endpoint=str(self.endpoint), cause=cause)
        if cause == DO_NOT_WANT_TO_TALK_TO_YOU:
            self.hold = True
        self.client._update_ready()

    def on_closed(self, conn: PeerConnection, reason: str) -> None:
        self.state = "down"
        self.client._update_ready()


class DiameterClient:
    """Sends requests to ``destination_realm`` (and ``destination_host`` when given) through the
    peers in ``connect``, in failover order. ``watchdog`` is Tw (RFC 3539); ``request_timeout``
    the default time an answer is awaited. ``handler`` answers requests the peers send us
    (e.g. CLR); without one they are answered 3001 DIAMETER_COMMAND_UNSUPPORTED.
    ``backoff_initial`` and ``backoff_max`` bound the reconnect delay (:func:`reconnect_delay`;
    a peer that sent DPR with DO_NOT_WANT_TO_TALK_TO_YOU is retried after ``backoff_max``).
    """

    def __init__(self, node: LocalNode, connect: Iterable[Endpoint], destination_realm: str,
                 destination_host: str | None = None, request_timeout: float = 3.0, watchdog: float = 30.0, *,
                 handler: Handler | None = None, ssl_context: ssl.SSLContext | None = None,
                 max_message_size: int = DEFAULT_MAX_SIZE, connect_timeout: float = 5.0,
                 backoff_initial: float = 0.05, backoff_max: float = 30.0, rng: random.Random | None = None) -> None:
        self.node = node
        self.endpoints = list(connect)
        if not self.endpoints:
            raise ValueError("DiameterClient needs at least one peer endpoint")
        for ep in self.endpoints:
            if ep.transport == "tls" and ssl_context is None:
                raise ValueError(f"{ep}: a tls:// endpoint needs a TLS context (tls_cert, tls_key, tls_ca)")
        self.destination_realm = destination_realm
        self.destination_host = destination_host
        self.request_timeout = request_timeout
        self.watchdog = watchdog
        self.handler = handler
        self.ssl_context = ssl_context
        self.max_message_size = max_message_size
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.rng = rng or random.Random()
        self.log = klog.get("diameter", origin_host=node.origin_host)
        self.closing = False
        self.tasks: set[asyncio.Future[Any]] = set()
        self._slots = [_Slot(self, ep) for ep in self.endpoints]
        self._ready: asyncio.Event | None = None
        self._orphans: list[Pending] = []
        self._orphan_timer: asyncio.TimerHandle | None = None
        # RFC 6733 §6.1: what every request needs; added on the wire when the caller left it out
        destination = [("Destination-Realm", destination_realm)]
        if destination_host is not None:
            destination.insert(0, ("Destination-Host", destination_host))
        self._fill = {**node.origin_fill, **encoded_avps(destination)}

    # -------------------------------------------------------------- lifecycle

    async def start(self, wait_connected: bool = True, timeout: float = 10.0) -> None:
        """Start connecting to every peer; with ``wait_connected``, wait until one is OKAY
        (raises :class:`NoPeerAvailable` after ``timeout`` seconds)."""
        self._ready = asyncio.Event()
        for slot in self._slots:
            slot.task = asyncio.create_task(slot.run(), name=f"diameter-peer-{slot.endpoint}")
        if wait_connected:
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                raise NoPeerAvailable(f"no peer open after {timeout} s: {self.peer_states}") from None

    async def close(self, timeout: float = 2.0) -> None:
        """DPR (REBOOTING) to every open peer, wait up to ``timeout`` for the connections to
        close, then stop reconnecting; requests still waiting fail with :class:`ClientClosed`."""
        self.closing = True
        conns = [s.conn for s in self._slots if s.conn is not None]
        for conn in conns:
            conn.disconnect(REBOOTING)
        waiting = [c.closed for c in conns if not c.closed.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        for conn in conns:
            conn.abort("client closed")
        for slot in self._slots:
            if slot.task is not None:
                slot.task.cancel()
        await asyncio.gather(*(s.task for s in self._slots if s.task is not None), return_exceptions=True)
        for task in list(self.tasks):
            task.cancel()
        orphans, self._orphans = self._orphans, []
        for p in orphans:
            if not p.token.done():
                p.token.set_exception(ClientClosed("the Diameter client was closed"))

    async def __aenter__(self) -> DiameterClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------- state (metrics)

    @property
    def state(self) -> str:
        """``okay`` when a peer can take requests, ``connecting`` while one is opening, else ``down``."""
        states = [s.state for s in self._slots]
        if "okay" in states:
            return "okay"
        if any(s in ("connecting", "wait-cea", "reopen") for s in states):
            return "connecting"
        return "down"

    @property
    def peer_states(self) -> dict[str, str]:
        """Each configured endpoint's state: connecting, wait-cea, okay, suspect, reopen, closing, down."""
        return {str(s.endpoint): s.state for s in self._slots}

    @property
    def open_peers(self) -> list[PeerInfo]:
        return [s.conn.info for s in self._slots if s.conn is not None and s.conn.info is not None
                and s.conn.state is PeerState.OKAY]

    # -------------------------------------------------------------- requests

    def _pick(self, exclude: PeerConnection | None = None) -> PeerConnection | None:
        """The connection for the next request (RFC 6733 §6.1.4-6.1.5): the peer that *is* the
        Destination-Host when it is connected and OKAY, else the first OKAY peer in failover
        order (a relay or a server of the realm)."""
        first = None
        host = self.destination_host
        for slot in self._slots:
            conn = slot.conn
            if conn is not None and conn is not exclude and conn.state is PeerState.OKAY:
                if host is None:
                    return conn
                info = conn.peer.info if conn.peer is not None else None
                if info is not None and info.origin_host == host:
                    return conn
                if first is None:
                    first = conn
        return first

    async def request(self, msg: Message, timeout: float | None = None) -> Message:
        """Send ``msg`` (a request with its Session-Id) and return the answer. Origin-Host/Realm
        and Destination-Realm/Host are added on the wire when ``msg`` has none (``msg`` itself
        gets its hop-by-hop and end-to-end ids).

        Raises :class:`RequestTimeout` when no answer arrives within ``timeout`` (default
        ``request_timeout``) seconds, :class:`NoPeerAvailable` when no peer is OKAY in that
        time, :class:`ClientClosed` when the client closes meanwhile.
        """
        if self.closing:
            raise ClientClosed("the Diameter client is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.request_timeout if timeout is None else timeout)
        conn = self._pick()
        while conn is None:
            ready = self._ready
            if ready is None:
                raise NoPeerAvailable("the Diameter client is not started")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoPeerAvailable(f"no peer open: {self.peer_states}")
            try:
                async with asyncio.timeout(remaining):
                    await ready.wait()
            except TimeoutError:
                raise NoPeerAvailable(f"no peer open: {self.peer_states}") from None
            if self.closing:
                raise ClientClosed("the Diameter client is closed")
            conn = self._pick()
        fut: asyncio.Future[Message] = loop.create_future()
        try:
            conn.send_request(msg, fut, deadline, self._fill)
        except PeerError as exc:
            raise NoPeerAvailable(str(exc)) from None
        return await fut

    # -------------------------------------------------------------- failover (RFC 6733 §5.5.4)

    def _update_ready(self) -> None:
        if self._ready is not None and self._pick() is None:
            self._ready.clear()

    def _peer_ready(self) -> None:
        if self._ready is not None:
            self._ready.set()
        if self._orphans:
            orphans, self._orphans = self._orphans, []
            self._failover(orphans, None)

    def _failover(self, requests: list[Pending], failed: PeerConnection | None) -> None:
        now = asyncio.get_running_loop().time()
        for p in requests:
            fut = p.token
            if fut.done():
                continue
            if self.closing:
                fut.set_exception(ClientClosed("the Diameter client was closed"))
                continue
            if now >= p.deadline:
                fut.set_exception(RequestTimeout("no answer before the deadline (peer failed)"))
                continue
            conn = self._pick(exclude=failed)
            if conn is not None:
                try:
                    conn.resend(p)
                    continue
                except PeerError:
                    pass
            self._orphans.append(p)
        self._arm_orphan_timer()

    def _arm_orphan_timer(self) -> None:
        if self._orphan_timer is not None:
            self._orphan_timer.cancel()
            self._orphan_timer = None
        if self._orphans:
            first = min(p.deadline for p in self._orphans)
            self._orphan_timer = asyncio.get_running_loop().call_at(first, self._expire_orphans)

    def _expire_orphans(self) -> None:
        self._orphan_timer = None
        now = asyncio.get_running_loop().time()
        keep: list[Pending] = []
        for p in self._orphans:
            if p.token.done():
                continue
            if now >= p.deadline:
                p.token.set_exception(RequestTimeout("no answer before the deadline (no peer to fail over to)"))
            else:
                keep.append(p)
        self._orphans = keep
        self._arm_orphan_timer()
