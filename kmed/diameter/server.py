"""Diameter server: accept peers, run the peer layer, hand application requests to a handler.

``DiameterServer(node, listen, allowed_peers, handler)``: only Origin-Hosts in
``allowed_peers`` pass the capabilities exchange (others get CEA 3010 DIAMETER_UNKNOWN_PEER,
RFC 6733 §5.3); base-protocol messages (CER, DWR, DPR) are the peer layer's; application
requests go to ``handler(request, peer)``, which returns the answer or an awaitable of it.
A handler that raises gets the request answered with 5012 DIAMETER_UNABLE_TO_COMPLY.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from functools import partial
from typing import Any

from kmed import log as klog
from kmed.config import Endpoint
from kmed.diameter.codec import DEFAULT_MAX_SIZE
from kmed.diameter.message import Message
from kmed.diameter.node import LocalNode, PeerInfo
from kmed.diameter.peer import DO_NOT_WANT_TO_TALK_TO_YOU, REBOOTING, Peer, PeerState, Pending, Role
from kmed.diameter.transport import Handler, PeerConnection, dispatch_request, listen

__all__ = ["DiameterServer"]


class DiameterServer:
    """Listens on ``listen`` endpoints and serves ``handler`` to the ``allowed_peers``.

    ``watchdog`` is Tw (RFC 3539); ``ssl_context`` is needed for ``tls://`` endpoints
    (see :func:`kmed.diameter.transport.make_ssl_context`).
    """

    def __init__(self, node: LocalNode, listen: list[Endpoint], allowed_peers: Iterable[str], handler: Handler, *,
                 watchdog: float = 30.0, max_message_size: int = DEFAULT_MAX_SIZE,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.node = node
        self.listen_endpoints = list(listen)
        self.allowed_peers: frozenset[str] = frozenset(allowed_peers)
        self.handler = handler
        self.watchdog = watchdog
        self.max_message_size = max_message_size
        self.ssl_context = ssl_context
        self._servers: list[tuple[Endpoint, asyncio.Server]] = []
        self._conns: set[PeerConnection] = set()  # every accepted connection until it closes
        self._tasks: set[asyncio.Future[Any]] = set()  # answers not sent yet (tasks and futures)
        self._accepting = False
        self._log = klog.get("diameter", origin_host=node.origin_host)

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind every listen endpoint (raises OSError naming the endpoint that failed)."""
        self._accepting = True
        try:
            for ep in self.listen_endpoints:
                try:
                    srv = await listen(ep, partial(self._new_connection, ep.transport), self.ssl_context)
                except OSError as exc:
                    raise OSError(exc.errno, f"cannot listen on {ep}: {exc.strerror or exc}") from None
                self._servers.append((ep, srv))
                self._log.info("diameter_listening", endpoint=str(self.bound_endpoints[-1]))
        except BaseException:
            await self._close_listeners()
            raise

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets (asyncio's ``TransportSocket`` wrappers)."""
        return [s for _ep, srv in self._servers for s in srv.sockets]

    @property
    def bound_endpoints(self) -> list[Endpoint]:
        """The endpoints actually bound (a port 0 in the configuration becomes the real port)."""
        out: list[Endpoint] = []
        for ep, srv in self._servers:
            for s in srv.sockets:
                host, port = s.getsockname()[:2]
                out.append(Endpoint(ep.transport, host, port))
        return out

    @property
    def ports(self) -> list[int]:
        return [ep.port for ep in self.bound_endpoints]

    @property
    def connections(self) -> list[PeerConnection]:
        """Connections whose capabilities exchange succeeded and that are not closed."""
        return [c for c in self._conns if c.info is not None and c.state is not PeerState.DOWN]

    @property
    def peers(self) -> dict[str, PeerState]:
        """Open connections by the remote Origin-Host (for metrics)."""
        return {c.info.origin_host: c.state for c in self.connections if c.info is not None}

    def reload_allowed_peers(self, peers: Iterable[str]) -> None:
        """Replace the allowed Origin-Hosts; connected peers no longer allowed get DPR
        (DO_NOT_WANT_TO_TALK_TO_YOU, RFC 6733 §5.4.3)."""
        self.allowed_peers = frozenset(peers)
        for conn in list(self.connections):
            info = conn.info
            if info is not None and info.origin_host not in self.allowed_peers:
                self._log.info("diameter_peer_removed", peer=info.origin_host)
                conn.disconnect(DO_NOT_WANT_TO_TALK_TO_YOU)

    async def stop(self, deadline: float = 5.0) -> None:
        """Stop accepting, let in-flight handlers answer, DPR every peer (REBOOTING), wait for the
        connections to close (each answers the requests that crossed its DPR first, RFC 6733
        §5.4, within the peer's ``drain_timeout``); whatever remains after ``deadline`` seconds
        is closed hard."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        self._accepting = False
        await self._close_listeners()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, (end - loop.time()) / 2))
        for conn in list(self._conns):
            conn.disconnect(REBOOTING)
        waiting = [c.closed for c in self._conns if not c.closed.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=max(0.0, end - loop.time()))
        for conn in list(self._conns):
            conn.abort("server stopped")
        for task in list(self._tasks):
            task.cancel()
        self._log.info("diameter_stopped")

    async def _close_listeners(self) -> None:
        servers, self._servers = self._servers, []
        for _ep, srv in servers:
            srv.close()  # stops accepting; open connections are ours to close (stop())
        await asyncio.sleep(0)

    async def __aenter__(self) -> DiameterServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -------------------------------------------------------------- connections

    def _new_connection(self, transport: str) -> PeerConnection:
        def make_peer(local: str | None, remote: tuple[str, int] | None, names: list[str] | None) -> Peer:
            self._conns.add(conn)  # in connection_made: after the TLS handshake, if there is one
            return self._make_peer(local, remote, names, transport)

        conn = PeerConnection(make_peer, self)
        return conn

    def _make_peer(self, local: str | None, remote: tuple[str, int] | None, names: list[str] | None,
                   transport: str) -> Peer:
        return Peer(self.node, Role.RESPONDER, allowed_peers=self._is_allowed, watchdog=self.watchdog,
                    max_message_size=self.max_message_size, local_addresses=[local] if local else [],
                    remote_address=remote, certificate_names=names, transport=transport)

    def _is_allowed(self, origin_host: str) -> bool:
        return origin_host in self.allowed_peers

    # ConnectionOwner callbacks

    def on_opened(self, conn: PeerConnection, info: PeerInfo) -> None:
        if not self._accepting:
            conn.disconnect(REBOOTING)
            return
        self._log.info("diameter_peer_open", peer=info.origin_host, address=_addr(conn.remote),
                       product=info.product_name)

    def on_state(self, conn: PeerConnection, old: PeerState, new: PeerState) -> None:
        if new is PeerState.SUSPECT:
            self._log.warning("diameter_peer_suspect", peer=_host(conn))

    def on_request(self, conn: PeerConnection, msg: Message) -> None:
        dispatch_request(conn, msg, self.handler, self._tasks, self.node)

    def on_failover(self, conn: PeerConnection, requests: list[Pending]) -> None:
        for p in requests:  # the server sends no requests; nothing to move
            if not p.token.done():
                p.token.cancel()

    def on_disconnecting(self, conn: PeerConnection, cause: int | None) -> None:
        self._log.info("diameter_peer_disconnecting", peer=_host(conn), cause=cause)

    def on_closed(self, conn: PeerConnection, reason: str) -> None:
        self._conns.discard(conn)
        if conn.info is not None:
            self._log.info("diameter_peer_closed", peer=_host(conn), reason=reason)
        else:
            self._log.info("diameter_connection_refused", address=_addr(conn.remote), reason=reason)


def _host(conn: PeerConnection) -> str | None:
    return conn.info.origin_host if conn.info is not None else None


def _addr(remote: tuple[str, int] | None) -> str | None:
    return f"{remote[0]}:{remote[1]}" if remote else None
