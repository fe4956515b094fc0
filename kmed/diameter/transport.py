"""asyncio edge of the Diameter peer layer: TCP, TLS and SCTP connections running a sans-I/O
:class:`~kmed.diameter.peer.Peer` (RFC 6733 §2.1 transports).

:class:`PeerConnection` is an ``asyncio.Protocol`` (no streams: one call per received chunk,
framing done by the peer). Writes made during one event-loop iteration are coalesced into one
``write`` on TCP/TLS; on SCTP each message is its own write (one Diameter message per SCTP
message). At most :data:`MAX_MESSAGES_PER_ITERATION` received messages are handled per
event-loop iteration and connection: beyond that, reading pauses and the rest of what was read
is handled in the next iterations, so that a deep backlog on the socket (uvloop reads up to
32 x 256 KiB per iteration) does not hold back answers, commits and timers for seconds
(docs/faults.md, finding 1). On a server, when the write buffer fills, reading pauses too, so a
peer that does not read cannot make us queue unbounded answers; a client keeps reading its
answers whatever its write buffer holds (two peers that both stopped reading would wait on each
other forever, docs/faults.md finding 2).

:func:`install_uvloop` (the daemons call it), :func:`sctp_available`,
:func:`make_ssl_context`, :func:`listen` and :func:`connect` are the helpers the server and the
client build on. ``DiameterServer``, ``DiameterClient``, ``LocalNode`` and ``PeerInfo`` are
re-exported here (docs/architecture.md names them in ``transport``).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

from kmed import log as klog
from kmed.config import Endpoint
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message
from kmed.diameter.node import LocalNode, PeerInfo
from kmed.diameter.peer import (
    Action,
    Close,
    DeliverAnswer,
    DeliverRequest,
    Failover,
    Opened,
    Peer,
    PeerDisconnecting,
    PeerState,
    Pending,
    RequestFailed,
    Send,
    StateChanged,
)

if TYPE_CHECKING:
    from kmed.diameter.client import DiameterClient
    from kmed.diameter.server import DiameterServer

__all__ = [
    "DiameterClient",
    "DiameterServer",
    "Handler",
    "LocalNode",
    "PeerConnection",
    "PeerInfo",
    "connect",
    "install_uvloop",
    "listen",
    "make_ssl_context",
    "sctp_available",
]

#: What an application handler is: ``handler(request, peer) -> answer`` (or an awaitable of it).
Handler = Callable[[Message, PeerInfo], "Message | Awaitable[Message]"]

#: Received messages handled per event-loop iteration on one connection before reading pauses
#: until the next iteration (64 AIRs are a few ms of HSS work; a benchmark's 64 requests in
#: flight never reach it).
MAX_MESSAGES_PER_ITERATION = 64

_log = klog.get("diameter")


def __getattr__(name: str) -> Any:  # PEP 562: lazy re-exports (server/client import this module)
    if name == "DiameterServer":
        from kmed.diameter.server import DiameterServer

        return DiameterServer
    if name == "DiameterClient":
        from kmed.diameter.client import DiameterClient

        return DiameterClient
    raise AttributeError(name)


def install_uvloop() -> bool:
    """Use uvloop's event loop policy when uvloop is installed; True if it was installed."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def sctp_available() -> bool:
    """True when this kernel can open an SCTP one-to-one socket (Linux needs the sctp module)."""
    proto = getattr(socket, "IPPROTO_SCTP", None)
    if proto is None:
        return False
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    except OSError:
        return False
    s.close()
    return True


def make_ssl_context(*, server_side: bool, cert: str | None = None, key: str | None = None,
                     ca: str | None = None) -> ssl.SSLContext:
    """A TLS context for ``tls://`` endpoints (RFC 6733 §13.1: mutual certificate authentication).

    Peers' certificates must chain to ``ca`` (the system store when None); a server asks for and
    requires a client certificate when ``ca`` is given; a client checks the server's name
    (the endpoint host: an IP address needs an IP subjectAltName).
    """
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH if server_side else ssl.Purpose.SERVER_AUTH,
                                     cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    if server_side:
        ctx.verify_mode = ssl.CERT_REQUIRED if ca is not None else ssl.CERT_NONE
    else:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def certificate_names(transport: asyncio.BaseTransport) -> list[str] | None:
    """DNS names (subjectAltName, else the subject's commonName) of the peer's verified TLS
    certificate; None on a connection without one (plain TCP/SCTP, or not verified)."""
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    if not names:
        names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return names


class ConnectionOwner(Protocol):
    """What a :class:`PeerConnection` reports to (the server or one client slot)."""

    def on_opened(self, conn: PeerConnection, info: PeerInfo) -> None: ...
    def on_state(self, conn: PeerConnection, old: PeerState, new: PeerState) -> None: ...
    def on_request(self, conn: PeerConnection, msg: Message) -> None: ...
    def on_failover(self, conn: PeerConnection, requests: list[Pending]) -> None: ...
    def on_disconnecting(self, conn: PeerConnection, cause: int | None) -> None: ...
    def on_closed(self, conn: PeerConnection, reason: str) -> None: ...


class PeerConnection(asyncio.Protocol):
    """One transport connection running a sans-I/O :class:`Peer` made by ``make_peer``.

    ``make_peer(local_address, remote_address, certificate_names)`` is called in
    ``connection_made`` (after the TLS handshake, if any). Answers to
    our requests resolve the futures passed as tokens (``RequestFailed`` sets
    :class:`RequestTimeout`); the rest goes to ``owner``. ``max_per_iteration`` bounds the
    received messages handled per loop iteration; ``pause_reading_on_write_pressure`` (a
    server's choice, not a client's) stops reading while the write buffer is above its
    high-water mark.
    """

    def __init__(self, make_peer: Callable[[str | None, tuple[str, int] | None, list[str] | None], Peer],
                 owner: ConnectionOwner, *, coalesce: bool = True,
                 max_per_iteration: int = MAX_MESSAGES_PER_ITERATION,
                 pause_reading_on_write_pressure: bool = True) -> None:
        if max_per_iteration < 1:
            raise ValueError("max_per_iteration must be at least 1")
        self._make_peer = make_peer
        self.owner = owner
        self.coalesce = coalesce
        self.max_per_iteration = max_per_iteration
        self.pause_reading_on_write_pressure = pause_reading_on_write_pressure
        self._budget = max_per_iteration  # messages this iteration may still handle
        self._budget_reset = False  # _next_iteration is scheduled
        self._throttled = False  # reading paused by the budget
        self._write_paused = False  # the transport called pause_writing
        self.peer: Peer | None = None
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self._wbuf: list[bytes] = []
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._closing = False
        self.closed: asyncio.Future[str] = self.loop.create_future()
        self.remote: tuple[str, int] | None = None

    # -------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        sockname = transport.get_extra_info("sockname")
        peername = transport.get_extra_info("peername")
        local = sockname[0] if isinstance(sockname, tuple) else None
        self.remote = (peername[0], peername[1]) if isinstance(peername, tuple) else None
        self.peer = self._make_peer(local, self.remote, certificate_names(transport))
        self._run(self.peer.start(self.loop.time()))

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            return
        budget = self._budget
        before = peer.frames_received
        self._run(peer.data_received(data, self.loop.time(), budget if budget > 0 else 0))
        used = peer.frames_received - before
        if used:
            self._budget = budget - used
            if not self._budget_reset:
                self._budget_reset = True
                self.loop.call_soon(self._next_iteration)
        if peer.backlog and not self._throttled:
            self._throttle()

    def _throttle(self) -> None:
        """The budget is spent with whole messages still buffered: stop reading until they are
        handled (the kernel's receive queue and TCP flow control hold the rest)."""
        self._throttled = True
        if not self._budget_reset:
            self._budget_reset = True
            self.loop.call_soon(self._next_iteration)
        if self.transport is not None and not self._closing:
            self.transport.pause_reading()

    def _next_iteration(self) -> None:
        """A new loop iteration: a fresh budget, spent first on the buffered messages."""
        self._budget_reset = False
        self._budget = budget = self.max_per_iteration
        peer = self.peer
        if peer is None or self._closing:
            return
        if peer.backlog:
            before = peer.frames_received
            self._run(peer.data_received(b"", self.loop.time(), budget))
            self._budget = budget - (peer.frames_received - before)
            self._budget_reset = True
            self.loop.call_soon(self._next_iteration)
        if self._throttled and not peer.backlog:
            self._throttled = False
            if self.transport is not None and not self._closing and not (
                    self._write_paused and self.pause_reading_on_write_pressure):
                self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closing = True
        self._wbuf.clear()
        reason = "connection lost"
        if self.peer is not None:
            self._run(self.peer.connection_lost(self.loop.time()))
            reason = self.peer.close_reason or reason
        if exc is not None and reason == "connection lost":
            reason = f"connection lost: {exc}"
        self.owner.on_closed(self, reason)
        if not self.closed.done():
            self.closed.set_result(reason)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.pause_reading_on_write_pressure and self.transport is not None and not self._closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if (self.pause_reading_on_write_pressure and self.transport is not None and not self._closing
                and not self._throttled):
            self.transport.resume_reading()

    # -------------------------------------------------------------- actions

    def _run(self, actions: list[Action]) -> None:
        owner = self.owner
        for a in actions:
            if isinstance(a, Send):
                self._write(a.data)
            elif isinstance(a, DeliverAnswer):
                if not a.token.done():
                    a.token.set_result(a.message)
            elif isinstance(a, DeliverRequest):
                owner.on_request(self, a.message)
            elif isinstance(a, RequestFailed):
                if not a.token.done():
                    a.token.set_exception(RequestTimeout(f"no answer before the deadline ({a.reason})"))
            elif isinstance(a, StateChanged):
                owner.on_state(self, a.old, a.new)
            elif isinstance(a, Opened):
                owner.on_opened(self, a.peer)
            elif isinstance(a, Failover):
                owner.on_failover(self, a.requests)
            elif isinstance(a, PeerDisconnecting):
                owner.on_disconnecting(self, a.cause)
            elif isinstance(a, Close):
                self._close_transport()
        self._arm_timer()

    def _write(self, data: bytes) -> None:
        if self._closing or self.transport is None:
            return
        if not self.coalesce:
            self.transport.write(data)
            return
        self._wbuf.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        buf = self._wbuf
        if buf and self.transport is not None and not self._closing:
            self.transport.write(buf[0] if len(buf) == 1 else b"".join(buf))
        buf.clear()

    def _close_transport(self) -> None:
        if self._closing:
            return
        self._flush()
        self._closing = True
        if self.transport is not None:
            self.transport.close()  # sends what is buffered, then FIN

    def _arm_timer(self) -> None:
        peer = self.peer
        if peer is None or self._closing:
            return
        t = peer.next_timer()
        if t is None:
            return
        if self._timer is not None:
            if t >= self._timer_at:
                return
            self._timer.cancel()
        self._timer_at = t
        self._timer = self.loop.call_at(t, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.peer is not None and not self._closing:
            self._run(self.peer.tick(self.loop.time()))

    # -------------------------------------------------------------- used by server and client

    @property
    def state(self) -> PeerState:
        return self.peer.state if self.peer is not None else PeerState.WAIT_CER

    @property
    def info(self) -> PeerInfo | None:
        return self.peer.info if self.peer is not None else None

    def send_request(self, msg: Message, fut: asyncio.Future[Message], deadline: float,
                     fill: Mapping[int, bytes] | None = None) -> None:
        """Send ``msg``; ``fut`` gets the answer or :class:`RequestTimeout` (raises PeerError)."""
        assert self.peer is not None
        self._run(self.peer.send_request(msg, fut, deadline, fill))

    def resend(self, pending: Pending) -> None:
        assert self.peer is not None
        self._run(self.peer.resend(pending))

    def send_answer(self, answer: Message) -> None:
        """Send an answer (Origin-Host/Origin-Realm added when the handler left them out)."""
        peer = self.peer
        if peer is not None:
            data = peer.encode_answer(answer)
            if data is not None:
                self._write(data)
                if peer.state is PeerState.CLOSING:  # the last owed answer may end a drain
                    self._run(peer.tick(self.loop.time()))

    def disconnect(self, cause: int) -> None:
        """DPR (or just close before the capabilities exchange)."""
        if self.peer is not None:
            self._run(self.peer.disconnect(self.loop.time(), cause))
        else:
            self._close_transport()

    def abort(self, reason: str) -> None:
        if self.peer is not None:
            self._run(self.peer.abort(reason))
        else:
            self._close_transport()


class RequestTimeout(TimeoutError):
    """No answer arrived before the request's deadline (RFC 6733 §5.5.4: Tx expired)."""


# ------------------------------------------------------------------------------------ handlers


def dispatch_request(conn: PeerConnection, msg: Message, handler: Handler | None,
                     tasks: set[asyncio.Future[Any]], node: LocalNode) -> None:
    """Run the application ``handler`` on ``msg`` and send its answer on ``conn``.

    A handler that raises or returns something else than a Message gets the request answered
    with 5012 DIAMETER_UNABLE_TO_COMPLY and a log line, never a dropped connection. An
    ``asyncio.Future`` result is answered from its done callback (no task: the cheap way for a
    handler whose answer waits on something, e.g. a commit); other awaitables run as tasks.
    Both are kept in ``tasks`` until done (so a server can wait for them when stopping).
    """
    info = conn.info
    if handler is None or info is None:
        conn.send_answer(_unable(msg, node, d.DIAMETER_COMMAND_UNSUPPORTED))
        return
    try:
        result = handler(msg, info)
    except Exception:
        _log.exception("diameter_handler_failed", command=msg.name, peer=info.origin_host)
        conn.send_answer(_unable(msg, node, d.DIAMETER_UNABLE_TO_COMPLY))
        return
    if isinstance(result, Message):
        conn.send_answer(result)
    elif isinstance(result, asyncio.Future):  # asyncio.isfuture's duck test is a Python call per answer
        tasks.add(result)
        result.add_done_callback(partial(_future_done, conn, msg, info, node, tasks))
    elif inspect.isawaitable(result):
        task = asyncio.ensure_future(_await_answer(conn, msg, result, info, node))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    else:
        _log.error("diameter_handler_bad_result", command=msg.name, result=type(result).__name__)
        conn.send_answer(_unable(msg, node, d.DIAMETER_UNABLE_TO_COMPLY))


def _future_done(conn: PeerConnection, msg: Message, info: PeerInfo, node: LocalNode,
                 tasks: set[asyncio.Future[Any]], fut: asyncio.Future[Any]) -> None:
    tasks.discard(fut)
    if fut.cancelled():  # the server is stopping: no answer
        return
    exc = fut.exception()
    if exc is not None:
        _log.error("diameter_handler_failed", command=msg.name, peer=info.origin_host,
                   error=f"{type(exc).__name__}: {exc}")
        answer: Any = None
    else:
        answer = fut.result()
    conn.send_answer(_checked(answer, msg, node))


async def _await_answer(conn: PeerConnection, msg: Message, result: Awaitable[Any], info: PeerInfo,
                        node: LocalNode) -> None:
    try:
        answer = await result
    except Exception:
        _log.exception("diameter_handler_failed", command=msg.name, peer=info.origin_host)
        answer = None
    conn.send_answer(_checked(answer, msg, node))


def _checked(answer: Any, msg: Message, node: LocalNode) -> Message:
    """``answer`` if it is a Message, else (logged unless None) 5012 DIAMETER_UNABLE_TO_COMPLY."""
    if isinstance(answer, Message):
        return answer
    if answer is not None:
        _log.error("diameter_handler_bad_result", command=msg.name, result=type(answer).__name__)
    return _unable(msg, node, d.DIAMETER_UNABLE_TO_COMPLY)


def _unable(req: Message, node: LocalNode, code: int) -> Message:
    return Message.answer_to(req, [("Result-Code", code), ("Origin-Host", node.origin_host),
                                   ("Origin-Realm", node.origin_realm)], error=d.is_protocol_error(code))


# ------------------------------------------------------------------------------------ sockets


async def _addresses(ep: Endpoint, *, passive: bool) -> list[tuple[int, Any]]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(ep.host, ep.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE if passive else 0)
    return [(family, addr) for family, _t, _p, _c, addr in infos]


async def listen(ep: Endpoint, factory: Callable[[], asyncio.Protocol],
                 ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    """Listen on ``ep`` (tcp://, tls:// or sctp://); port 0 binds a free port."""
    loop = asyncio.get_running_loop()
    if ep.transport == "sctp":
        if not sctp_available():
            raise OSError(f"{ep}: this kernel has no SCTP (load the sctp module)")
        family, addr = (await _addresses(ep, passive=True))[0]
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(128)
            sock.setblocking(False)
            return await loop.create_server(factory, sock=sock)
        except BaseException:
            sock.close()
            raise
    if ep.transport == "tls" and ssl_context is None:
        raise ValueError(f"{ep}: a tls:// endpoint needs a TLS context (tls_cert, tls_key, tls_ca)")
    return await loop.create_server(factory, ep.host, ep.port, reuse_address=True,
                                    ssl=ssl_context if ep.transport == "tls" else None)


async def connect(ep: Endpoint, factory: Callable[[], PeerConnection], *,
                  ssl_context: ssl.SSLContext | None = None, timeout: float = 5.0) -> PeerConnection:
    """Open a connection to ``ep`` (tcp://, tls:// or sctp://) running ``factory()``."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        if ep.transport == "sctp":
            if not sctp_available():
                raise OSError(f"{ep}: this kernel has no SCTP (load the sctp module)")
            family, addr = (await _addresses(ep, passive=False))[0]
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, addr)
                _t, proto = await loop.create_connection(factory, sock=sock)
            except BaseException:
                sock.close()
                raise
            return proto
        if ep.transport == "tls":
            if ssl_context is None:
                raise ValueError(f"{ep}: a tls:// endpoint needs a TLS context (tls_cert, tls_key, tls_ca)")
            _t, proto = await loop.create_connection(factory, ep.host, ep.port, ssl=ssl_context,
                                                     server_hostname=ep.host)
            return proto
        _t, proto = await loop.create_connection(factory, ep.host, ep.port)
        return proto
