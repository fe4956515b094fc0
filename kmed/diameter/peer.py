"""Sans-I/O Diameter peer connection: RFC 6733 §5 and the RFC 3539 watchdog, for one connection.

A :class:`Peer` is created when a transport connection is up and lives until it is down. Events
go in (:meth:`Peer.start`, :meth:`Peer.data_received`, :meth:`Peer.tick`,
:meth:`Peer.connection_lost`, and the application's :meth:`Peer.send_request`,
:meth:`Peer.send_answer`, :meth:`Peer.disconnect`), each with the current time ``now``;
*actions* come out as a list (:class:`Send`, :class:`Close`, :class:`Opened`,
:class:`StateChanged`, :class:`DeliverRequest`, :class:`DeliverAnswer`, :class:`RequestFailed`,
:class:`Failover`, :class:`PeerDisconnecting`). No sockets, no clocks, no asyncio.

Simplifications of RFC 6733 §5.6 (one connection per peer, no election): the initiator sends
CER as soon as the connection is up and waits for CEA; the responder waits for CER, checks the
Origin-Host against the allowed peers (3010 DIAMETER_UNKNOWN_PEER) and the applications
(5010 DIAMETER_NO_COMMON_APPLICATION), answers and is open. Anything but CER/CEA before the
exchange completes closes the connection.

Watchdog (RFC 3539 §3.4): OKAY -> (Tw without traffic, DWR unanswered for Tw) SUSPECT, pending
requests handed back for failover -> (another Tw) DOWN, connection closed. A connection opened
with ``reopen=True`` (after a watchdog failure) starts in REOPEN and needs three DWAs before OKAY;
one that opens normally starts in OKAY (RFC 3539's INITIAL -> OKAY).
"""

from __future__ import annotations

import enum
import heapq
import random
import struct
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kmed.diameter import dictionary as d
from kmed.diameter.codec import DEFAULT_MAX_SIZE, decode, encode, frame_length
from kmed.diameter.message import Avp, DecodeError, Message
from kmed.diameter.node import APP_RELAY, BaseMessageEvent, LocalNode, PeerInfo

FLAG_R, FLAG_P, FLAG_E, FLAG_T = d.FLAG_R, d.FLAG_P, d.FLAG_E, d.FLAG_T
APP_COMMON = d.APP_COMMON
#: Base-protocol commands the peer layer itself handles (RFC 6733 §5).
_BASE_COMMANDS = frozenset((d.CMD_CER, d.CMD_DWR, d.CMD_DPR))
_COMMANDS = dict(d.COMMANDS_BY_CODE)  # a plain dict: faster lookups than the read-only proxy

#: RFC 6733 §5.4.3 Disconnect-Cause values.
REBOOTING = 0
BUSY = 1
DO_NOT_WANT_TO_TALK_TO_YOU = 2

#: RFC 3539 §3.4.1: "Tw ... jitter of +/- 2 seconds"; for a small Tw (lab tests) the jitter is
#: scaled down in proportion (Tw/15, i.e. 2 s at the default 30 s).
MAX_JITTER = 2.0
#: DWAs needed in REOPEN before the connection is used again (RFC 3539 §3.4.1).
REOPEN_DWAS = 3


class PeerState(enum.Enum):
    """Connection state: RFC 6733 §5.6 handshake states plus the RFC 3539 watchdog states."""

    WAIT_CEA = "wait-cea"  # initiator: CER sent
    WAIT_CER = "wait-cer"  # responder: connection accepted, waiting for CER
    OKAY = "okay"
    SUSPECT = "suspect"
    REOPEN = "reopen"
    CLOSING = "closing"  # DPR sent or received
    DOWN = "down"  # connection closed: this object is finished


class Role(enum.Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class PeerError(Exception):
    """A request cannot be sent on this connection (not open, or too many pending requests)."""


# ------------------------------------------------------------------------------------ actions


@dataclass(slots=True)
class Send:
    """Write these bytes to the connection."""

    data: bytes


@dataclass(slots=True)
class Close:
    """Close the connection (after writing what was sent before)."""

    reason: str


@dataclass(slots=True)
class Opened:
    """The capabilities exchange succeeded; ``peer`` is what the remote side advertised."""

    peer: PeerInfo


@dataclass(slots=True)
class StateChanged:
    old: PeerState
    new: PeerState


@dataclass(slots=True)
class DeliverRequest:
    """An application request for the handler (answer it with :meth:`Peer.send_answer`)."""

    message: Message


@dataclass(slots=True)
class DeliverAnswer:
    """The answer to the request sent with ``token``."""

    token: Any
    message: Message


@dataclass(slots=True)
class RequestFailed:
    """The request sent with ``token`` got no answer before its deadline."""

    token: Any
    reason: str


@dataclass(slots=True)
class Failover:
    """Requests still unanswered when the connection went SUSPECT or DOWN, to resend elsewhere
    with the T flag (RFC 6733 §5.5.4) or to fail."""

    requests: list[Pending]


@dataclass(slots=True)
class PeerDisconnecting:
    """The remote peer sent DPR with this Disconnect-Cause (RFC 6733 §5.4.3)."""

    cause: int | None


Action = (Send | Close | Opened | StateChanged | DeliverRequest | DeliverAnswer | RequestFailed | Failover
          | PeerDisconnecting)


@dataclass(slots=True, eq=False)
class Pending:
    """One request awaiting its answer: the encoded bytes are kept for retransmission."""

    token: Any
    data: bytes
    deadline: float
    hop_by_hop: int = 0
    end_to_end: int = 0
    retransmissions: int = field(default=0)


def mark_retransmission(data: bytes, hop_by_hop: int) -> bytes:
    """``data`` with the T flag set and a new hop-by-hop id (RFC 6733 §5.5.4): the end-to-end id
    and every AVP stay as they were."""
    return data[:4] + bytes((data[4] | FLAG_T,)) + data[5:12] + hop_by_hop.to_bytes(4, "big") + data[16:]


_AVP_HEADER = struct.Struct(">II")


def base_avp_codes(data: bytes) -> set[int]:
    """Codes of the top-level AVPs without a vendor in an encoded message: a walk over the AVP
    headers, much cheaper than looking names up in a built message."""
    unpack = _AVP_HEADER.unpack_from
    codes: set[int] = set()
    pos, last = 20, len(data) - 8
    while pos <= last:
        code, flags_len = unpack(data, pos)
        if not flags_len & 0x80000000:
            codes.add(code)
        length = flags_len & 0xFFFFFF
        if length < 8:
            break
        pos += (length + 3) & ~3
    return codes


def fill_missing(data: bytes, fill: Mapping[int, bytes]) -> bytes:
    """``data`` (an encoded message) with the encoded AVPs of ``fill`` (AVP code -> AVP bytes)
    whose code is not at its top level appended, and the message length updated."""
    missing = dict(fill)
    unpack = _AVP_HEADER.unpack_from
    pos, last = 20, len(data) - 8
    while pos <= last:
        code, flags_len = unpack(data, pos)
        if code in missing and not flags_len & 0x80000000:
            del missing[code]
            if not missing:
                return data
        length = flags_len & 0xFFFFFF
        if length < 8:
            break
        pos += (length + 3) & ~3
    if not missing:
        return data
    extra = b"".join(missing.values())
    length = len(data) + len(extra)
    return data[:1] + length.to_bytes(3, "big") + data[4:] + extra


def _failed_avp_example(name: str) -> Avp:
    """RFC 6733 §7.5: for a missing AVP, an example with the right code and a zeroed payload."""
    df = d.avp(name)
    return Avp(df.code, df.vendor, df.flags, b"\0" * d.FIXED_SIZE.get(df.type, 0))


def _message_from_header(buf: bytes) -> Message | None:
    """A body-less message carrying the header of ``buf`` (for answering a frame we refuse)."""
    if len(buf) < 20:
        return None
    return Message(int.from_bytes(buf[5:8], "big"), buf[4], int.from_bytes(buf[8:12], "big"),
                   int.from_bytes(buf[12:16], "big"), int.from_bytes(buf[16:20], "big"))


# ------------------------------------------------------------------------------------ the peer


class Peer:
    """One Diameter connection, sans I/O (see the module docstring).

    ``allowed_peers`` (responder) is a container of Origin-Hosts or a predicate; ``None``
    accepts any peer. ``certificate_names`` (TLS) are the DNS names of the peer's verified
    certificate: kmed requires its Origin-Host to be one of them, so that a certificate vouches
    for one identity only (RFC 6733 §13). ``watchdog`` is Tw in seconds. ``local_addresses``
    fill Host-IP-Address when the node has none configured. ``rng`` drives the jitter and the
    hop-by-hop start.
    """

    def __init__(
        self,
        node: LocalNode,
        role: Role,
        *,
        allowed_peers: Container[str] | Callable[[str], bool] | None = None,
        watchdog: float = 30.0,
        handshake_timeout: float = 10.0,
        dpa_timeout: float = 2.0,
        drain_timeout: float = 2.0,
        max_message_size: int = DEFAULT_MAX_SIZE,
        max_pending: int = 65536,
        reopen: bool = False,
        local_addresses: Iterable[str] = (),
        remote_address: tuple[str, int] | None = None,
        certificate_names: Iterable[str] | None = None,
        rng: random.Random | None = None,
        transport: str = "tcp",
    ) -> None:
        self.node = node
        self.role = role
        self.allowed_peers = allowed_peers
        self.watchdog = watchdog
        self.handshake_timeout = handshake_timeout
        self.dpa_timeout = dpa_timeout
        self.drain_timeout = drain_timeout
        self.max_message_size = max_message_size
        self.max_pending = max_pending
        self.remote_address = remote_address
        self.transport = transport  # "tcp", "tls" or "sctp": for the base-message hook's events
        self.certificate_names = (frozenset(n.lower() for n in certificate_names)
                                  if certificate_names is not None else None)
        self._reopen = reopen
        self._rng = rng or random.Random()
        self._addresses = tuple(node.host_ip_addresses) or tuple(local_addresses) or ("127.0.0.1",)
        self.state = PeerState.WAIT_CEA if role is Role.INITIATOR else PeerState.WAIT_CER
        self.info: PeerInfo | None = None
        self.close_reason: str | None = None
        #: True when the connection was closed by the watchdog (reconnect with ``reopen=True``)
        self.watchdog_failed = False
        self._hbh = self._rng.getrandbits(32)
        self._buf = bytearray()
        self._held: bytes | None = None  # received bytes not handled yet (data_received's limit)
        self._held_pos = 0
        self._pending: dict[int, Pending] = {}
        self._deadlines: list[tuple[float, int]] = []  # heap of (deadline, hop-by-hop), lazily pruned
        # watchdog (RFC 3539 §3.4)
        self._timer: float | None = None  # when the watchdog (or handshake/close) timer expires
        self._last_rx = 0.0
        self._timer_set_at = 0.0
        self._dwr_pending = False
        self._dpa_received = False
        self._num_dwa = 0
        self._dwr_hbh: int | None = None
        self._dpr_hbh: int | None = None
        self._unanswered = 0  # requests delivered to the application and not answered yet
        self._draining = False  # CLOSING: waiting for answers before closing (RFC 6733 §5.4)
        #: counters for metrics and tests
        self.unmatched_answers = 0
        self.discarded_requests = 0
        self.frames_received = 0
        self.hook_errors = 0

    # -------------------------------------------------------------- small helpers

    @property
    def is_open(self) -> bool:
        """True when application requests may be sent (RFC 3539 OKAY)."""
        return self.state is PeerState.OKAY

    @property
    def closed(self) -> bool:
        """True once the connection is (to be) closed."""
        return self.state is PeerState.DOWN

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def drained(self) -> bool:
        """True when no answer is owed to the remote peer and none of ours is awaited (a
        CLOSING connection waits for this, at most ``drain_timeout``, before closing)."""
        return not self._unanswered and not self._pending

    def _closing_reason(self) -> str:
        reason = "disconnected"
        if self._dpr_hbh is not None:
            reason += " (DPA received)" if self._dpa_received else " (no DPA)"
        if not self.drained:
            reason += f": {self._unanswered} answers owed, {len(self._pending)} awaited at the drain deadline"
        return reason

    def next_timer(self) -> float | None:
        """The earliest time :meth:`tick` has something to do, or None."""
        t = self._timer
        heap = self._deadlines
        pending = self._pending
        while heap:
            deadline, hbh = heap[0]
            p = pending.get(hbh)
            if p is not None and p.deadline == deadline:
                if t is None or deadline < t:
                    t = deadline
                break
            heapq.heappop(heap)
        return t

    def _next_hbh(self) -> int:
        self._hbh = (self._hbh + 1) & 0xFFFFFFFF
        return self._hbh

    def _set_state(self, new: PeerState, out: list[Action]) -> None:
        old = self.state
        if old is not new:
            self.state = new
            out.append(StateChanged(old, new))

    def _set_watchdog(self, now: float) -> None:
        jitter = min(MAX_JITTER, self.watchdog / 15.0)
        self._timer = now + self.watchdog + self._rng.uniform(-jitter, jitter)
        self._timer_set_at = now

    def _close(self, reason: str, out: list[Action]) -> None:
        if self.state is PeerState.DOWN:
            return
        self.close_reason = reason
        self._timer = None
        self._held = None
        self._set_state(PeerState.DOWN, out)
        self._take_pending(out)
        out.append(Close(reason))

    def _take_pending(self, out: list[Action]) -> None:
        if self._pending:
            out.append(Failover(list(self._pending.values())))
            self._pending.clear()
        self._deadlines.clear()

    def _base(self, *extra: tuple[str, Any]) -> list[Any]:
        return [*self.node.origin_items, *extra]

    def _send_message(self, msg: Message, out: list[Action]) -> None:
        out.append(Send(encode(msg)))
        if self.node.base_message_hook is not None and msg.command_code in _BASE_COMMANDS \
                and msg.application_id == APP_COMMON:
            self._notify(msg, True)

    def _notify(self, msg: Message, sent: bool) -> None:
        """Report a base-protocol message to ``node.base_message_hook`` (metrics)."""
        hook = self.node.base_message_hook
        if hook is None:
            return
        try:
            peer = self.info.origin_host if self.info is not None else None
            code = None
            if not sent and peer is None and msg.command_code == d.CMD_CER:
                peer = msg.get("Origin-Host")
            if not msg.flags & FLAG_R:
                code = msg.result_code()
        except DecodeError:
            pass
        try:
            hook(BaseMessageEvent(msg.name, sent, peer, self.remote_address, code, self.transport))
        except Exception:  # the hook is the application's: it must not break the connection
            self.hook_errors += 1

    def _capabilities(self) -> list[Any]:
        """CER/CEA content after Result-Code (RFC 6733 §5.3.1, §5.3.2)."""
        node = self.node
        avps: list[Any] = self._base()
        avps += [("Host-IP-Address", a) for a in self._addresses]
        avps += [("Vendor-Id", node.vendor_id), ("Product-Name", node.product_name),
                 ("Origin-State-Id", node.origin_state_id)]
        avps += [("Supported-Vendor-Id", v) for v in node.supported_vendor_ids]
        for app in node.auth_application_ids:
            vendor = node.application_vendors.get(app)
            if vendor is None:
                avps.append(("Auth-Application-Id", app))
            else:
                avps.append(("Vendor-Specific-Application-Id",
                             [("Vendor-Id", vendor), ("Auth-Application-Id", app)]))
        avps.append(("Firmware-Revision", node.firmware_revision))
        return avps

    def _error_answer(self, req: Message, code: int, out: list[Action], *, failed: Iterable[Avp] = (),
                      message: str | None = None) -> None:
        """Answer ``req`` with Result-Code ``code`` (E bit for 3xxx, RFC 6733 §7.2)."""
        avps: list[Any] = [("Result-Code", code), *self._base()]
        failed = list(failed)
        if failed:
            avps.append(("Failed-AVP", failed))
        if message:
            avps.append(("Error-Message", message))
        try:
            answer = Message.answer_to(req, avps, error=d.is_protocol_error(code))
        except DecodeError:  # the request's Session-Id itself is unreadable: answer without it
            answer = Message(req.command_code, (req.flags & FLAG_P) | (FLAG_E if d.is_protocol_error(code) else 0),
                             req.application_id, req.hop_by_hop, req.end_to_end, avps)
        self._send_message(answer, out)

    # -------------------------------------------------------------- connection events

    def start(self, now: float) -> list[Action]:
        """The transport connection is up: the initiator sends CER (RFC 6733 §5.3)."""
        out: list[Action] = []
        self._last_rx = now
        self._timer = now + self.handshake_timeout
        if self.role is Role.INITIATOR:
            cer = Message.request(d.CMD_CER, d.APP_COMMON, self._capabilities(),
                                  hop_by_hop=self._next_hbh(), end_to_end=self.node.next_end_to_end())
            self._send_message(cer, out)
        return out

    def connection_lost(self, now: float) -> list[Action]:
        """The transport connection is gone: every pending request comes back for failover."""
        out: list[Action] = []
        if self.state is not PeerState.DOWN:
            self.close_reason = self.close_reason or "connection lost"
            self._timer = None
            self._held = None
            self._set_state(PeerState.DOWN, out)
            self._take_pending(out)
        return out

    def data_received(self, data: bytes, now: float, limit: int | None = None) -> list[Action]:
        """Bytes from the connection: reassemble, decode, act (RFC 6733 §3 framing).

        With ``limit``, at most that many messages are handled; whole messages beyond it stay
        buffered (:attr:`backlog` is then True) until a later call, which may pass ``b""``. The
        asyncio edge uses this to bound the work per event-loop iteration, so that answers and
        timers keep running while a deep backlog is read.
        """
        out: list[Action] = []
        if self.state is PeerState.DOWN:
            return out
        self._last_rx = now
        held = self._held
        if held is not None:  # whole messages left over by an earlier limit come first
            self._held = None
            data = held[self._held_pos:] + data if data else held
            pos = 0 if data is not held else self._held_pos
        else:
            pos = 0
            buf = self._buf
            if buf:
                buf += data
                if len(buf) < 4:
                    return out
                try:
                    need = frame_length(buf, self.max_message_size)
                except DecodeError as err:
                    self._framing_error(bytes(buf[:20]), err, out)
                    return out
                if need is None or len(buf) < need:
                    return out
                data = bytes(buf)
                buf.clear()
        n = len(data)
        max_size = self.max_message_size
        budget = -1 if limit is None else limit
        while n - pos >= 4:
            length = (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
            if data[pos] != 1 or length < 20 or length & 3 or length > max_size:
                try:  # not a frame we accept: let the codec say why (5011, 5015)
                    frame_length(data[pos:pos + 4], max_size)
                except DecodeError as err:
                    self._framing_error(data[pos:pos + 20], err, out)
                    return out
            if n - pos < length:
                break
            if budget == 0:  # keep the rest, unread, for the next call (no copy)
                self._held, self._held_pos = data, pos
                return out
            budget -= 1
            self.frames_received += 1
            self._frame(data[pos:pos + length] if pos or length != n else data, now, out)
            pos += length
            if self.closed:
                return out
        if pos < n:
            self._buf += data[pos:]  # at most one message (<= max_message_size) waits here
        return out

    @property
    def backlog(self) -> bool:
        """True when whole received messages wait for a :meth:`data_received` call (its limit)."""
        return self._held is not None

    def _framing_error(self, header: bytes, err: DecodeError, out: list[Action]) -> None:
        """A bad version or length: the stream cannot be resynchronised. Answer a request whose
        header we have (5011/5015, RFC 6733 §7.1.5), then close."""
        req = _message_from_header(header)
        if req is not None and req.flags & FLAG_R and not req.flags & FLAG_E:
            self._error_answer(req, err.result_code, out)
        self._buf.clear()
        self._held = None
        self._close(f"framing error: {err.reason}", out)

    def _frame(self, frame: bytes, now: float, out: list[Action]) -> None:
        try:
            msg = decode(frame, self.max_message_size)
        except DecodeError as err:
            partial = err.partial
            if partial is not None and partial.flags & FLAG_R:
                self._error_answer(partial, err.result_code, out,
                                   failed=[err.failed_avp] if err.failed_avp is not None else ())
                if self.state in (PeerState.WAIT_CER, PeerState.WAIT_CEA):
                    self._close(f"bad message during capabilities exchange: {err.reason}", out)
            else:
                self._close(f"undecodable message: {err.reason}", out)
            return
        state = self.state
        if state is PeerState.OKAY:
            pass
        elif state is PeerState.WAIT_CER or state is PeerState.WAIT_CEA:
            self._handshake(msg, now, out)
            return
        elif state is PeerState.SUSPECT:
            # RFC 3539: any traffic in SUSPECT is a sign of life -> OKAY (failback)
            self._dwr_pending = False
            self._set_state(PeerState.OKAY, out)
            self._set_watchdog(now)
        if msg.application_id == APP_COMMON and msg.command_code in _BASE_COMMANDS:
            self._base_message(msg, now, out)
        elif msg.flags & FLAG_R:
            self._request(msg, out)
        else:
            p = self._pending.pop(msg.hop_by_hop, None)
            if p is None:
                self.unmatched_answers += 1  # late (timed out) or unknown: discarded, RFC 6733 §6.2.2
            else:
                out.append(DeliverAnswer(p.token, msg))
                if self._draining and self.drained:
                    self._close(self._closing_reason(), out)

    def _request(self, msg: Message, out: list[Action]) -> None:
        if self.state is PeerState.REOPEN:
            self.discarded_requests += 1  # RFC 3539 §3.4.2 REOPEN: Throwaway()
            return
        app = msg.application_id
        if app == APP_COMMON:  # base commands other than CER/DWR/DPR are not served here
            self._error_answer(msg, d.DIAMETER_COMMAND_UNSUPPORTED, out)
            return
        if app not in self.node.auth_application_ids:
            self._error_answer(msg, d.DIAMETER_APPLICATION_UNSUPPORTED, out)
            return
        cmd = _COMMANDS.get(msg.command_code)
        if cmd is None or cmd.application_id != app:
            self._error_answer(msg, d.DIAMETER_COMMAND_UNSUPPORTED, out)
            return
        if msg.unknown_mandatory:
            self._error_answer(msg, d.DIAMETER_AVP_UNSUPPORTED, out, failed=msg.unknown_mandatory)
            return
        self._unanswered += 1
        out.append(DeliverRequest(msg))

    # -------------------------------------------------------------- base protocol messages

    def _handshake(self, msg: Message, now: float, out: list[Action]) -> None:
        """RFC 6733 §5.3: only CER (responder) or CEA (initiator) is acceptable now."""
        if self.node.base_message_hook is not None and msg.application_id == d.APP_COMMON \
                and msg.command_code in _BASE_COMMANDS:
            self._notify(msg, False)
        if msg.command_code != d.CMD_CER or msg.application_id != d.APP_COMMON:
            self._close(f"{msg.name} before the capabilities exchange", out)
            return
        if self.state is PeerState.WAIT_CER:
            if not msg.flags & FLAG_R:
                self._close("CEA received while waiting for CER", out)
                return
            self._receive_cer(msg, now, out)
        else:
            if msg.flags & FLAG_R:
                self._close("CER received while waiting for CEA", out)
                return
            self._receive_cea(msg, now, out)

    def _peer_info(self, msg: Message) -> PeerInfo:
        auth: set[int] = set(msg.get_all("Auth-Application-Id"))
        acct: set[int] = set(msg.get_all("Acct-Application-Id"))
        for g in msg.groups("Vendor-Specific-Application-Id"):
            auth.update(g.get_all("Auth-Application-Id"))
            acct.update(g.get_all("Acct-Application-Id"))
        return PeerInfo(
            origin_host=msg.get("Origin-Host"),
            origin_realm=msg.get("Origin-Realm"),
            host_ip_addresses=tuple(msg.get_all("Host-IP-Address")),
            vendor_id=msg.get("Vendor-Id", 0),
            product_name=msg.get("Product-Name", ""),
            origin_state_id=msg.get("Origin-State-Id"),
            firmware_revision=msg.get("Firmware-Revision"),
            auth_application_ids=frozenset(auth),
            acct_application_ids=frozenset(acct),
            supported_vendor_ids=frozenset(msg.get_all("Supported-Vendor-Id")),
            remote_address=self.remote_address,
        )

    def _common_application(self, info: PeerInfo) -> bool:
        ours = set(self.node.auth_application_ids)
        theirs = info.applications
        return bool(ours & theirs) or APP_RELAY in theirs or APP_RELAY in ours

    def _allowed(self, origin_host: str) -> bool:
        allowed = self.allowed_peers
        if allowed is None:
            return True
        if callable(allowed):
            return bool(allowed(origin_host))
        return origin_host in allowed

    def _certificate_matches(self, origin_host: str) -> bool:
        names = self.certificate_names
        return names is None or origin_host.lower() in names

    def _receive_cer(self, cer: Message, now: float, out: list[Action]) -> None:
        try:
            for name in ("Origin-Host", "Origin-Realm", "Host-IP-Address", "Vendor-Id", "Product-Name"):
                if name not in cer:
                    self._error_answer(cer, d.DIAMETER_MISSING_AVP, out, failed=[_failed_avp_example(name)])
                    self._close(f"CER without {name}", out)
                    return
            info = self._peer_info(cer)
        except DecodeError as err:  # a value that does not convert (RFC 6733 §7.1.5: 5004)
            self._error_answer(cer, err.result_code, out,
                               failed=[err.failed_avp] if err.failed_avp is not None else ())
            self._close(f"bad CER: {err.reason}", out)
            return
        if not self._allowed(info.origin_host):
            self._cea(cer, d.DIAMETER_UNKNOWN_PEER, out)
            self._close(f"unknown peer {info.origin_host!r}", out)
            return
        if not self._certificate_matches(info.origin_host):
            self._cea(cer, d.DIAMETER_UNKNOWN_PEER, out)
            self._close(f"Origin-Host {info.origin_host!r} is not a name of the peer's certificate", out)
            return
        if not self._common_application(info):
            self._cea(cer, d.DIAMETER_NO_COMMON_APPLICATION, out)
            self._close(f"no common application with {info.origin_host!r}", out)
            return
        self._cea(cer, d.DIAMETER_SUCCESS, out)
        self._open(info, now, out)

    def _cea(self, cer: Message, code: int, out: list[Action]) -> None:
        cea = Message.answer_to(cer, [("Result-Code", code), *self._capabilities()],
                                error=d.is_protocol_error(code))
        self._send_message(cea, out)

    def _receive_cea(self, cea: Message, now: float, out: list[Action]) -> None:
        try:
            code = cea.result_code()
            origin = cea.get("Origin-Host")
            info = self._peer_info(cea) if origin is not None else None
        except DecodeError as err:
            self._close(f"bad CEA: {err.reason}", out)
            return
        if code != d.DIAMETER_SUCCESS or info is None:
            self._close(f"CEA refused: {d.result_name(code) if code is not None else 'no Result-Code'}", out)
            return
        if not self._certificate_matches(info.origin_host):
            self._close(f"Origin-Host {info.origin_host!r} is not a name of the peer's certificate", out)
            return
        if not self._common_application(info):
            self._close(f"no common application with {info.origin_host!r}", out)
            return
        self._open(info, now, out)

    def _open(self, info: PeerInfo, now: float, out: list[Action]) -> None:
        self.info = info
        out.append(Opened(info))
        if self._reopen:
            # RFC 3539 §3.4.2 DOWN -> connection up: NumDWA = 0, SendWatchdog, Pending = TRUE -> REOPEN
            self._set_state(PeerState.REOPEN, out)
            self._num_dwa = 0
            self._send_dwr(out)
        else:
            self._set_state(PeerState.OKAY, out)
        self._set_watchdog(now)

    def _send_dwr(self, out: list[Action]) -> None:
        hbh = self._next_hbh()
        dwr = Message.request(d.CMD_DWR, d.APP_COMMON, self._base(("Origin-State-Id", self.node.origin_state_id)),
                              hop_by_hop=hbh, end_to_end=self.node.next_end_to_end())
        self._dwr_hbh = hbh
        self._dwr_pending = True
        self._send_message(dwr, out)

    def _base_message(self, msg: Message, now: float, out: list[Action]) -> None:
        if self.node.base_message_hook is not None:
            self._notify(msg, False)
        cmd = msg.command_code
        is_request = bool(msg.flags & FLAG_R)
        if cmd == d.CMD_DWR:
            if is_request:
                self._send_message(Message.answer_to(msg, [
                    ("Result-Code", d.DIAMETER_SUCCESS), *self._base(),
                    ("Origin-State-Id", self.node.origin_state_id)]), out)
            elif msg.hop_by_hop == self._dwr_hbh:
                self._receive_dwa(now, out)
            else:
                self.unmatched_answers += 1
        elif cmd == d.CMD_DPR:
            if is_request:
                try:
                    cause = msg.get("Disconnect-Cause")
                except DecodeError:
                    cause = None
                self._send_message(Message.answer_to(msg, [("Result-Code", d.DIAMETER_SUCCESS), *self._base()]), out)
                out.append(PeerDisconnecting(cause))
                # The DPR sender closes once it has our DPA (RFC 6733 §5.4); close ourselves if it does not.
                self._set_state(PeerState.CLOSING, out)
                self._timer = now + self.dpa_timeout
            elif msg.hop_by_hop == self._dpr_hbh:
                self._dpa_received = True
                if self.drained:
                    self._close(self._closing_reason(), out)
                else:  # answers still owed, or ours still awaited: send/read them first (bounded)
                    self._draining = True
                    self._timer = now + self.drain_timeout
        else:  # CER on an open connection: RFC 6733 §5.6.4 election is not supported here
            self._close("CER received on an open connection", out)

    def _receive_dwa(self, now: float, out: list[Action]) -> None:
        self._dwr_pending = False
        self._dwr_hbh = None
        if self.state is PeerState.REOPEN:
            self._num_dwa += 1
            if self._num_dwa >= REOPEN_DWAS:
                self._set_state(PeerState.OKAY, out)
                self._set_watchdog(now)
        elif self.state is PeerState.OKAY:
            self._set_watchdog(now)

    # -------------------------------------------------------------- timers

    def tick(self, now: float) -> list[Action]:
        """Time has passed: request deadlines and the watchdog (RFC 3539 §3.4.2)."""
        out: list[Action] = []
        heap = self._deadlines
        if heap and heap[0][0] <= now:
            pending = self._pending
            while heap and heap[0][0] <= now:
                deadline, hbh = heapq.heappop(heap)
                p = pending.get(hbh)
                if p is not None and p.deadline == deadline:
                    del pending[hbh]
                    out.append(RequestFailed(p.token, "timeout"))
        timer = self._timer
        if self._draining and self.drained:
            self._close(self._closing_reason(), out)
            return out
        if timer is None or now < timer:
            return out
        state = self.state
        if state is PeerState.WAIT_CER or state is PeerState.WAIT_CEA:
            self._close("capabilities exchange timed out", out)
        elif state is PeerState.CLOSING:
            if not self._draining and not self.drained:  # one more, bounded, wait for the answers
                self._draining = True
                self._timer = now + self.drain_timeout
            else:
                self._close(self._closing_reason(), out)
        elif state is PeerState.OKAY:
            if self._last_rx > self._timer_set_at:
                # traffic since the timer was set: RFC 3539 "Receive non-DWA -> SetWatchdog()", lazily
                self._set_watchdog(self._last_rx)
                if self._timer is not None and now < self._timer:
                    return out
            if not self._dwr_pending:
                self._send_dwr(out)
                self._set_watchdog(now)
            else:
                self._set_state(PeerState.SUSPECT, out)
                self._take_pending(out)  # RFC 3539 Failover()
                self._set_watchdog(now)
        elif state is PeerState.SUSPECT:
            self.watchdog_failed = True
            self._close("watchdog: no answer to DWR", out)
        elif state is PeerState.REOPEN:
            if not self._dwr_pending:
                self._send_dwr(out)
                self._set_watchdog(now)
            elif self._num_dwa < 0:
                self.watchdog_failed = True
                self._close("watchdog: no answer to DWR while reopening", out)
            else:
                self._num_dwa = -1
                self._set_watchdog(now)
        return out

    # -------------------------------------------------------------- application side

    def send_request(self, msg: Message, token: Any, deadline: float,
                     fill: Mapping[int, bytes] | None = None) -> list[Action]:
        """Send an application request; its answer comes back as :class:`DeliverAnswer` with
        ``token``, or :class:`RequestFailed` after ``deadline``. Sets the hop-by-hop id (and the
        end-to-end id when it is 0); AVPs of ``fill`` missing from the request are appended
        (:func:`fill_missing`). Raises :class:`PeerError` when not open or full."""
        if self.state is not PeerState.OKAY:
            raise PeerError(f"connection is {self.state.value}")
        if len(self._pending) >= self.max_pending:
            raise PeerError("too many pending requests")
        hbh = self._next_hbh()
        msg.hop_by_hop = hbh
        if not msg.end_to_end:
            msg.end_to_end = self.node.next_end_to_end()
        data = encode(msg)
        if fill:
            data = fill_missing(data, fill)
        self._track(Pending(token, data, deadline, hbh, msg.end_to_end), hbh)
        return [Send(data)]

    def resend(self, pending: Pending) -> list[Action]:
        """Retransmit a request taken from another connection (:class:`Failover`) with the T flag
        and a new hop-by-hop id (RFC 6733 §5.5.4)."""
        if self.state is not PeerState.OKAY:
            raise PeerError(f"connection is {self.state.value}")
        if len(self._pending) >= self.max_pending:
            raise PeerError("too many pending requests")
        hbh = self._next_hbh()
        pending.data = mark_retransmission(pending.data, hbh)
        pending.hop_by_hop = hbh
        pending.retransmissions += 1
        self._track(pending, hbh)
        return [Send(pending.data)]

    def _track(self, p: Pending, hbh: int) -> None:
        self._pending[hbh] = p
        heap = self._deadlines
        heapq.heappush(heap, (p.deadline, hbh))
        if len(heap) > 2 * len(self._pending) + 1024:  # keep the lazily pruned heap bounded
            self._deadlines = [(q.deadline, h) for h, q in self._pending.items()]
            heapq.heapify(self._deadlines)

    def cancel(self, hop_by_hop: int) -> Pending | None:
        """Forget a pending request (its waiter gave up); a late answer is then discarded."""
        return self._pending.pop(hop_by_hop, None)

    def send_answer(self, answer: Message) -> list[Action]:
        """Send the application's answer to a :class:`DeliverRequest`; Origin-Host and
        Origin-Realm are added when the application left them out (RFC 6733 §6.2)."""
        data = self.encode_answer(answer)
        return [] if data is None else [Send(data)]

    def encode_answer(self, answer: Message) -> bytes | None:
        """The bytes of :meth:`send_answer` without the action list (hot path), or None if down."""
        if self.state is PeerState.DOWN:
            return None
        if self._unanswered:
            self._unanswered -= 1
        data = encode(answer)
        if answer.holds(self.node.origin_avps):
            return data
        return fill_missing(data, self.node.origin_fill)

    def disconnect(self, now: float, cause: int = REBOOTING) -> list[Action]:
        """Start an orderly shutdown: DPR with ``cause``, close on DPA or after ``dpa_timeout``
        (RFC 6733 §5.4). Before the capabilities exchange completes, just close."""
        out: list[Action] = []
        if self.state in (PeerState.OKAY, PeerState.SUSPECT, PeerState.REOPEN):
            hbh = self._next_hbh()
            dpr = Message.request(d.CMD_DPR, d.APP_COMMON, self._base(("Disconnect-Cause", cause)),
                                  hop_by_hop=hbh, end_to_end=self.node.next_end_to_end())
            self._dpr_hbh = hbh
            self._send_message(dpr, out)
            self._set_state(PeerState.CLOSING, out)
            self._timer = now + self.dpa_timeout
        elif self.state is not PeerState.CLOSING:
            self._close("closed before the capabilities exchange completed", out)
        return out

    def abort(self, reason: str) -> list[Action]:
        """Close now, without DPR (pending requests come back in a :class:`Failover`)."""
        out: list[Action] = []
        self._close(reason, out)
        return out
