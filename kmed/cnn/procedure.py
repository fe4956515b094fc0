"""The CNN's per-UE procedure state machine, sans-I/O (docs/cnn.md, docs/procedure.md).

:class:`Cnn` holds every UE of the CNN and turns events into actions:

=========================================  ==================================================
event (method)                             meaning
=========================================  ==================================================
``nas_uplink(key, pdu)``                   a NAS PDU from the UE on link key ``key``
``s6a_answer(key, token, answer)``         the Diameter answer to :class:`SendS6a` ``token``
``s6a_failed(key, token, reason)``         that request got no usable answer (timeout, no peer)
``timer_expired(key, token)``              the timer of :class:`StartTimer` ``token`` ran out
``link_released(key, reason)``             the UE went idle or its link went down
=========================================  ==================================================

Actions: :class:`SendNas`, :class:`SendS6a`, :class:`StartTimer`/:class:`StopTimer` (one
timer per UE; a new one replaces the old), :class:`ReleaseUe`, :class:`LinkError`,
:class:`Log` (one event per seed step, fields ``step``, ``procedure``...; never a secret),
:class:`KmeEvent` and :class:`Outcome` (for metrics). No clock but the injected one, no
socket, no task: the daemon (:mod:`kmed.cnn.daemon`) owns those; tests drive it directly.

The message sequence is docs/procedure.md's (seed steps 1-13). NAS rules applied (TS 24.301):

- §4.4.4.3: before security, only Attach/TAU/Detach Request, Identity Response, Authentication
  Response/Failure, Security Mode Reject and EMM Status are processed unprotected; afterwards
  only what the NAS security context verifies (bad MAC, replayed COUNT: dropped and counted),
  except a new Attach/TAU/Detach Request;
- §5.4.2: RES compared with XRES in constant time; Authentication Failure #21 with AUTS: one
  AIR with Re-Synchronization-Info (RAND ‖ AUTS, TS 29.272 §7.3.15), then a new challenge;
  any other failure, a second #21 or a wrong RES: Authentication Reject;
- §5.4.3: Security Mode Command with 128-EEA2/128-EIA2, a new KSI, the replayed UE security
  capabilities and (first one) the IMEISV request, protected with the new context (header type
  3); the Complete must verify with it (type 4); then everything is type 2;
- timers T3470 (Identity Request), T3460 (Authentication Request, Security Mode Command), a KME
  Provisioning Command timer, T3450 (Attach/TAU Accept): on expiry the same message is sent
  again (re-protected with the next NAS COUNT, since the UE refuses a COUNT it has accepted,
  §4.4.3.2), at most ``max_retransmissions`` times; then the procedure is aborted and the UE
  released (§5.4.2.7 b, §5.4.3.7 b, §5.5.1.2.7 c).
"""

from __future__ import annotations

import functools
import hmac
import itertools
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NoReturn

from kmed.cnn import s6a
from kmed.cnn.contexts import ContextTable, Guti, TableFull, split_link_key
from kmed.crypto import kdf
from kmed.crypto import kme as kmefn
from kmed.crypto.devkeys import luhn_digit
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message
from kmed.nas import esm
from kmed.nas.causes import EmmCause
from kmed.nas.codec import NasDecodeError, NasMessage, decode, encode
from kmed.nas.frame import ErrorCause, ReleaseCause
from kmed.nas.identity import guti_identity, parse_mobile_identity
from kmed.nas.ies import (
    IdentityType,
    KmeBindingIndicator,
    NasCipheringAlgorithm,
    NasIntegrityAlgorithm,
    SecurityHeaderType,
    nas_security_algorithms,
    parse_ue_security_capability,
    tai_list,
)
from kmed.nas.security import (
    DOWNLINK,
    UPLINK,
    NasReplayError,
    NasSecurityContext,
    NasSecurityError,
    security_header_type,
)
from kmed.records import value_record

__all__ = [
    "ATTACH",
    "TAU",
    "Action",
    "Cnn",
    "KmeEvent",
    "LinkError",
    "Log",
    "Outcome",
    "Procedure",
    "ReleaseUe",
    "SendNas",
    "SendS6a",
    "Settings",
    "StartTimer",
    "State",
    "Stats",
    "StopTimer",
    "gprs_timer",
    "imei_from_imeisv",
]

ATTACH = "attach"
TAU = "tau"

_EIA = NasIntegrityAlgorithm.EIA2
#: ``nas.ciphering`` names (the lab knob Open5GS calls ``ciphering_order``). EEA0 leaves NAS
#: readable in captures (docs/captures.md); integrity is always 128-EIA2 (TS 33.401 §5.1.3.2).
CIPHERING: dict[str, NasCipheringAlgorithm] = {"EEA2": NasCipheringAlgorithm.EEA2, "EEA0": NasCipheringAlgorithm.EEA0}
_KSI_NO_KEY = 7
_IMEISV_REQUESTED = 1  # TS 24.301 §9.9.3.18
_EPS_ONLY = 1  # EPS attach result, TS 24.301 §9.9.3.10
_TA_UPDATED = 0  # EPS update result, TS 24.301 §9.9.3.13
_DETACH_SWITCH_OFF = 0x08  # detach type bit 4, TS 24.301 §9.9.3.7

_SHT_PLAIN = SecurityHeaderType.PLAIN
_SHT_INT = SecurityHeaderType.INTEGRITY
_SHT_INT_CIPH = SecurityHeaderType.INTEGRITY_CIPHERED
_SHT_INT_NEW = SecurityHeaderType.INTEGRITY_NEW_CONTEXT
_SHT_INT_CIPH_NEW = SecurityHeaderType.INTEGRITY_CIPHERED_NEW_CONTEXT

#: TS 24.301 §4.4.4.3: messages the MME processes without integrity protection.
_UNPROTECTED_OK = frozenset({
    "attach_request", "tracking_area_update_request", "detach_request", "identity_response",
    "authentication_response", "authentication_failure", "security_mode_reject", "emm_status",
})
#: Names for the ``aia_received`` log event.
_KME_STATUS_NAMES: dict[int | None, str] = {
    d.KME_STATUS_MATCH: "MATCH", d.KME_STATUS_PROVISIONING_REQUIRED: "PROVISIONING_REQUIRED",
}
_BINDING_NAMES = d.avp("KME-Binding").values
#: Log levels of :class:`Log` actions, lowest first (the ``[log] level`` names, kmed/config.py).
_LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
#: Once a context is in use, a new request may still come unprotected (a UE restarting).
_UNPROTECTED_AFTER_SECURITY = frozenset({"attach_request", "tracking_area_update_request", "detach_request"})


# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """What the state machine needs from the configuration (kmed/config.py CNN_SCHEMA)."""

    origin_host: str
    mcc: str
    mnc: str
    mme_group_id: int = 1
    mme_code: int = 1
    tac: int = 1
    t3412_s: float = 3240.0
    t3450_s: float = 6.0
    t3460_s: float = 6.0
    t3470_s: float = 6.0
    kme_timer_s: float = 6.0
    max_retransmissions: int = 4
    max_ue_contexts: int = 1_000_000
    ciphering: NasCipheringAlgorithm = NasCipheringAlgorithm.EEA2
    #: Admission control (docs/overload.md): beyond this many procedures running, or S6a
    #: requests awaiting an answer, a new Attach/TAU Request gets EMM #22 with T3346.
    max_procedures: int = 10_000
    max_s6a_pending: int = 2_000
    t3346_s: float = 60.0

    @classmethod
    def from_config(cls, cfg: dict[str, dict[str, Any]]) -> Settings:
        """From a validated CNN configuration (``kmed.config.load(path, CNN_SCHEMA)``)."""
        nas, cnn = cfg["nas"], cfg["cnn"]
        return cls(
            origin_host=cfg["diameter"]["origin_host"],
            mcc=cfg["plmn"]["mcc"],
            mnc=cfg["plmn"]["mnc"],
            mme_group_id=cnn["mme_group_id"],
            mme_code=cnn["mme_code"],
            tac=cnn["tac"],
            t3412_s=nas["t3412_s"],
            t3450_s=nas["t3450_s"],
            t3460_s=nas["t3460_s"],
            t3470_s=nas["t3470_s"],
            kme_timer_s=nas["kme_timer_s"],
            max_retransmissions=nas["max_retransmissions"],
            max_ue_contexts=cnn["max_ue_contexts"],
            ciphering=CIPHERING[nas["ciphering"]],
            max_procedures=cnn["max_procedures"],
            max_s6a_pending=cnn["max_s6a_pending"],
            t3346_s=nas["t3346_s"],
        )


def gprs_timer(seconds: float) -> int:
    """GPRS timer octet (TS 24.008 §10.5.7.3, used by T3412 in TS 24.301 §9.9.3.16): bits 8-6
    the unit (000 = 2 s, 001 = 1 min, 010 = 6 min, 111 = deactivated), bits 5-1 the value.
    The smallest unit that holds the value exactly, else 6-minute steps rounded up (≤ 31)."""
    s = round(seconds)
    if s <= 0:
        return 0xE0
    if s % 2 == 0 and s // 2 <= 31:
        return s // 2
    if s % 60 == 0 and s // 60 <= 31:
        return 0x20 | (s // 60)
    return 0x40 | min(31, -(-s // 360))


def imei_from_imeisv(imeisv: str) -> tuple[str, str]:
    """(IMEI, SVN) from a 16-digit IMEISV: TS 23.003 §6.2.2 and Annex B.1, IMEI = TAC ‖ SNR ‖ CD
    where CD is the Luhn check digit over the 14 digits TAC ‖ SNR, and the SVN its last 2 digits."""
    if len(imeisv) != 16 or not imeisv.isdigit() or not imeisv.isascii():
        raise ValueError("IMEISV must be 16 decimal digits")
    body = imeisv[:14]
    return body + luhn_digit(body), imeisv[14:]


# --- actions ----------------------------------------------------------------------------------


@value_record
class SendNas:
    """Send this downlink NAS PDU to the UE (NAS_DOWNLINK frame)."""

    key: int
    pdu: bytes


@value_record
class SendS6a:
    """Send this S6a request; report the answer with ``token`` (``s6a_answer``/``s6a_failed``)."""

    key: int
    token: int
    request: Message
    command: str  # "AIR" or "ULR"


@value_record
class StartTimer:
    """Arm the UE's timer (replacing any armed one); on expiry call ``timer_expired(key, token)``."""

    key: int
    token: int
    seconds: float
    name: str


@value_record
class StopTimer:
    """Cancel the UE's timer, if armed."""

    key: int


@value_record
class ReleaseUe:
    """The network releases the UE's context on the link (UE_RELEASE frame with ``cause``)."""

    key: int
    cause: int


@value_record
class LinkError:
    """Answer an ERROR frame for this UE id (docs/ue-link.md §1: e.g. unknown UE id)."""

    key: int
    cause: int
    detail: str


@value_record
class Log:
    """A log event. ``proc`` (None for a PDU without procedure) gives the bound fields
    (``imsi``, ``ue_id``, ``procedure``); ``fields`` hold ``step`` and the rest. No secrets."""

    proc: Procedure | None
    key: int
    level: str
    event: str
    fields: dict[str, Any]


@value_record
class KmeEvent:
    """A KME life-cycle event for ``kmed_kme_events_total``: issued, stored, refused."""

    event: str


@value_record
class Outcome:
    """A procedure ended. ``procedure``: attach, attach_provision or tau (docs/metrics.md);
    ``outcome``: ok, rejected, failed or timeout."""

    key: int
    procedure: str
    outcome: str
    emm_cause: int | None
    imsi: str | None
    duration_s: float
    kme_provisioned: bool


Action = SendNas | SendS6a | StartTimer | StopTimer | ReleaseUe | LinkError | Log | KmeEvent | Outcome


# --- per-UE state -----------------------------------------------------------------------------


class State(IntEnum):
    """Where a procedure waits (docs/cnn.md has the transitions)."""

    IDENTITY = 1  # Identity Request sent (T3470)
    AIA = 2  # AIR sent, step 2
    AUTH = 3  # Authentication Request sent (T3460), step 2 or 10
    SMC = 4  # Security Mode Command sent (T3460), step 2 or 11
    AIA_KME = 5  # AIR with KME-Request sent, steps 3-4
    KME = 6  # KME Provisioning Command sent (KME timer), steps 6-8
    ULA = 7  # ULR sent, steps 12-13
    COMPLETE = 8  # Attach/TAU Accept sent (T3450)
    DONE = 9


_TIMER_NAME = {
    State.IDENTITY: "T3470",
    State.AUTH: "T3460",
    State.SMC: "T3460",
    State.KME: "T_KME",
    State.COMPLETE: "T3450",
}


class Procedure:
    """One Attach or TAU of one UE on one link key. Holds secrets (KASME, XRES, KME) in memory
    only; ``repr`` shows none. ``log_handle`` belongs to the driver (a bound logger cache)."""

    __slots__ = (
        "aia",
        "bound",
        "ctx",
        "identity",
        "imei",
        "imsi",
        "key",
        "kind",
        "kme_check",
        "kme_status",
        "ksi",
        "last_ctx",
        "last_plain",
        "last_sht",
        "log_handle",
        "m_tmsi",
        "new_ctx",
        "nonce",
        "provisioning",
        "resynced",
        "retries",
        "s6a_token",
        "started",
        "state",
        "sv",
        "timer_token",
        "ue_cap",
        "ue_id",
        "vector",
    )

    def __init__(self, key: int, kind: str, started: float) -> None:
        self.key = key
        self.ue_id = split_link_key(key)[1]
        self.kind = kind
        self.started = started
        self.state = State.AIA
        self.imsi: str | None = None
        self.identity = b""
        self.kme_check: bytes | None = None
        self.ue_cap = b""
        self.ksi = 0
        self.vector: s6a.Vector | None = None
        self.kme_status: int | None = None
        self.aia: s6a.AiaResult | None = None
        self.nonce: bytes | None = None
        self.ctx: NasSecurityContext | None = None
        self.new_ctx: NasSecurityContext | None = None
        self.imei: str | None = None
        self.sv: str | None = None
        self.m_tmsi: int | None = None
        self.bound = False
        self.provisioning = False
        self.resynced = False
        self.retries = 0
        self.last_plain = b""
        self.last_sht = 0
        self.last_ctx: NasSecurityContext | None = None
        self.timer_token = 0
        self.s6a_token = 0
        self.log_handle: Any = None

    @property
    def name(self) -> str:
        """The metrics/report name: attach, attach_provision (a KME was requested) or tau."""
        if self.kind == TAU:
            return TAU
        return "attach_provision" if self.provisioning else ATTACH

    def log_context(self) -> dict[str, Any]:
        """Fields a driver binds once per procedure (re-bound when the IMSI becomes known)."""
        conn, ue_id = split_link_key(self.key)
        return {"imsi": self.imsi, "ue_id": ue_id, "link": conn, "procedure": self.kind}

    def __repr__(self) -> str:
        return f"Procedure(key={self.key}, kind={self.kind}, state={self.state.name}, imsi={self.imsi})"


@dataclass(slots=True)
class Stats:
    """Counters of what was dropped or refused (the daemon exposes some as metrics)."""

    nas_in: int = 0
    nas_out: int = 0
    integrity_failures: int = 0  # bad MAC (TS 24.301 §4.4.4)
    replays: int = 0  # MAC verified on an old COUNT
    unprotected_dropped: int = 0  # plain message where protection is required
    undecodable: int = 0
    unexpected: int = 0  # valid message in the wrong state
    stale_events: int = 0  # answers/timers for procedures that moved on
    refused_full: int = 0  # no room in the context table
    refused_congestion: int = 0  # admission control: too many procedures or S6a requests pending


class _Done(Exception):
    """Internal: the procedure ended while handling an event."""


# --- the CNN ----------------------------------------------------------------------------------


class Cnn:
    """Every UE procedure of one CNN (sans-I/O). See the module docstring for events/actions.

    ``clock`` (monotonic seconds) times procedures; ``rng`` allocates M-TMSIs; ``nonce``
    returns the 16 random octets of seed step 5 (the OS CSPRNG unless a test injects one).
    ``debug`` also emits the per-message ``debug`` log events (off: fewer objects per UE);
    ``log_level`` (``debug``, ``info``, ``warning``, ``error``), when given, emits only the
    :class:`Log` actions at or above it (the daemon's ``[log] level``: no objects for events
    its logger would drop) and overrides ``debug``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        nonce: Callable[[int], bytes] = secrets.token_bytes,
        debug: bool = False,
        log_level: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.nonce = nonce
        self._min_level = 0
        self._info = self._debug = False  # whether info / debug Log actions are emitted
        self.set_log_level("debug" if debug else "info")
        if log_level is not None:
            self.set_log_level(log_level)
        #: False while the daemon drains (SIGTERM): new Attach/TAU Requests get EMM #22.
        self.accepting = True
        self.table: ContextTable[Procedure] = ContextTable(
            settings.max_ue_contexts, settings.mcc, settings.mnc, settings.mme_group_id, settings.mme_code, rng
        )
        self.stats = Stats()
        self.plmn_id = kdf.plmn_id(settings.mcc, settings.mnc)
        self._tai_list = tai_list(settings.mcc, settings.mnc, [settings.tac])
        self._t3412 = gprs_timer(settings.t3412_s)
        self._t3346 = gprs_timer(settings.t3346_s)
        self._default_bearer = esm.activate_default_bearer_request()  # no user plane: the same for every UE
        self._tokens = itertools.count(1)
        #: SendS6a actions not yet answered (every one gets exactly one s6a_answer/s6a_failed)
        self.s6a_pending = 0
        self._session_prefix = f"{settings.origin_host};{int(time.time()) & 0xFFFFFFFF};"
        self._sessions = itertools.count(1)
        self._out: list[Action] = []
        self._timer_s = {
            State.IDENTITY: settings.t3470_s,
            State.AUTH: settings.t3460_s,
            State.SMC: settings.t3460_s,
            State.KME: settings.kme_timer_s,
            State.COMPLETE: settings.t3450_s,
        }

    @property
    def debug(self) -> bool:
        """Whether ``debug`` log events are emitted."""
        return self._min_level <= _LOG_LEVELS["debug"]

    @debug.setter
    def debug(self, value: bool) -> None:
        self.set_log_level("debug" if value else "info")

    def set_log_level(self, level: str) -> None:
        """Emit only :class:`Log` actions at ``level`` or above (e.g. after SIGHUP re-read ``[log]``)."""
        try:
            self._min_level = _LOG_LEVELS[level]
        except KeyError:
            raise ValueError(f"log level must be one of {', '.join(_LOG_LEVELS)}, got {level!r}") from None
        self._info = self._min_level <= _LOG_LEVELS["info"]
        self._debug = self._min_level <= _LOG_LEVELS["debug"]

    # === events ===================================================================================

    def nas_uplink(self, key: int, pdu: bytes) -> list[Action]:
        """A NAS PDU from the UE of link key ``key``."""
        out = self._out = []
        self.stats.nas_in += 1
        proc = self.table.procedure(key)
        try:  # noqa: SIM105 (try/except costs less than contextlib.suppress, once per event)
            self._uplink(key, proc, pdu)
        except _Done:
            pass
        self._out = []
        return out

    def s6a_answer(self, key: int, token: int, answer: Message) -> list[Action]:
        """The answer to the :class:`SendS6a` with ``token``."""
        return self._s6a(key, token, answer, None)

    def s6a_failed(self, key: int, token: int, reason: str) -> list[Action]:
        """The :class:`SendS6a` with ``token`` got no usable answer: ``reason`` is ``timeout``,
        ``unavailable`` (no peer open) or ``malformed``."""
        return self._s6a(key, token, None, reason)

    def timer_expired(self, key: int, token: int) -> list[Action]:
        """The timer armed with ``token`` expired: retransmit, or abort after the last retry."""
        out = self._out = []
        proc = self.table.procedure(key)
        if proc is None or proc.timer_token != token or proc.state not in _TIMER_NAME:
            self.stats.stale_events += 1
            return []
        try:  # noqa: SIM105 (as in nas_uplink)
            self._on_timer(proc)
        except _Done:
            pass
        self._out = []
        return out

    def link_released(self, key: int, reason: str = "released by the UE") -> list[Action]:
        """The UE went idle (UE_RELEASE), or its link closed: drop its procedure, if any."""
        out = self._out = []
        proc = self.table.procedure(key)
        if proc is not None:
            self._log(proc, "warning", "ue_released", None, state=proc.state.name, reason=reason)
            self._end(proc, "failed", None, release=False)
        self._out = []
        return out

    def close_link(self, connection: int, reason: str = "link closed") -> list[Action]:
        """Every UE of link ``connection`` is released (the connection went down)."""
        out: list[Action] = []
        for key, _proc in self.table.iter_procedures():
            if split_link_key(key)[0] == connection:
                out += self.link_released(key, reason)
        return out

    # === uplink NAS ===============================================================================

    def _uplink(self, key: int, proc: Procedure | None, pdu: bytes) -> None:
        sht = security_header_type(pdu)
        verified = False
        plain: bytes = pdu
        if sht in (_SHT_INT, _SHT_INT_CIPH):
            ctx = proc.ctx if proc is not None else None
            if ctx is not None:
                plain = self._unprotect(proc, key, ctx, pdu)
                verified = True
            elif sht == _SHT_INT_CIPH:
                self._drop(proc, key, "ciphered message without a security context")
        elif sht in (_SHT_INT_NEW, _SHT_INT_CIPH_NEW):
            ctx = proc.new_ctx if proc is not None else None
            if ctx is not None:
                plain = self._unprotect(proc, key, ctx, pdu)
                verified = True
            elif sht == _SHT_INT_CIPH_NEW:
                self._drop(proc, key, "ciphered message without a new security context")
        elif sht != _SHT_PLAIN:
            self.stats.undecodable += 1
            self._log(proc, "warning", "nas_ignored", None, key=key, reason=f"security header type {sht}")
            return  # TS 24.301 §7.2 / §9.3.1: not an EMM message kmed can process: ignored
        try:
            msg = decode(plain)
        except NasDecodeError as exc:
            self.stats.undecodable += 1
            self._log(proc, "warning", "nas_undecodable", None, key=key, cause=int(exc.cause), detail=exc.detail)
            if exc.respond:
                self._emm_status(proc, key, exc.cause)
            return
        name = msg.name
        if not verified:
            allowed = _UNPROTECTED_AFTER_SECURITY if proc is not None and proc.ctx is not None else _UNPROTECTED_OK
            if name not in allowed:
                self.stats.unprotected_dropped += 1
                self._log(proc, "warning", "nas_dropped", None, key=key, message=name, reason="not integrity protected")
                return
        if name in ("attach_request", "tracking_area_update_request"):
            self._start(key, proc, msg)
            return
        if name == "detach_request":
            self._detach(key, proc, msg)
            return
        if name == "emm_status":
            self._log(proc, "warning", "emm_status_received", None, key=key, cause=msg.get("emm_cause"))
            return
        if proc is None:
            self.stats.unexpected += 1
            self._log(None, "warning", "nas_without_context", None, key=key, message=name)
            self._out.append(LinkError(key, ErrorCause.UNKNOWN_UE_ID, "no UE context for this UE id"))
            return
        handler = _HANDLERS.get((proc.state, name))
        if handler is None:
            self.stats.unexpected += 1
            self._log(proc, "warning", "nas_unexpected", None, message=name, state=proc.state.name)
            self._emm_status(proc, key, EmmCause.MESSAGE_TYPE_NOT_COMPATIBLE_WITH_PROTOCOL_STATE)
            return
        handler(self, proc, msg)

    def _unprotect(self, proc: Procedure | None, key: int, ctx: NasSecurityContext, pdu: bytes) -> bytes:
        try:
            return ctx.unprotect(pdu, UPLINK)
        except NasReplayError as exc:
            self.stats.replays += 1
            self._log(proc, "warning", "nas_replay_dropped", None, key=key, reason=str(exc))
        except NasSecurityError as exc:
            self.stats.integrity_failures += 1
            self._log(proc, "warning", "nas_integrity_failure", None, key=key, reason=str(exc))
        raise _Done

    def _drop(self, proc: Procedure | None, key: int, reason: str) -> NoReturn:
        self.stats.integrity_failures += 1
        self._log(proc, "warning", "nas_integrity_failure", None, key=key, reason=reason)
        raise _Done

    # === step 1: Attach / TAU Request ================================================================

    def _start(self, key: int, old: Procedure | None, msg: NasMessage) -> None:
        if old is not None:  # a new request replaces the running procedure (TS 24.301 §5.5.1.2.7 d-e)
            self._log(old, "warning", "procedure_restarted", None, state=old.state.name)
            self._end(old, "failed", None, release=False)
        kind = ATTACH if msg.name == "attach_request" else TAU
        proc = Procedure(key, kind, self.clock())
        identity = msg["eps_mobile_identity"] if kind == ATTACH else msg["old_guti"]
        proc.identity = identity
        proc.kme_check = msg.get("kme_check")
        if not self.accepting:
            self._reject(proc, EmmCause.CONGESTION, 1, "the CNN is shutting down")
        if self.table.procedures >= self.settings.max_procedures or self.s6a_pending >= self.settings.max_s6a_pending:
            # admission control (TS 24.301 §5.5.1.2.5, §5.5.3.2.5: general NAS level congestion
            # control): refuse new work at once rather than let the queues grow (docs/overload.md)
            self.stats.refused_congestion += 1
            self._reject(proc, EmmCause.CONGESTION, 1, "overload: too many procedures or S6a requests pending")
        try:
            self.table.add_procedure(key, proc)
        except TableFull:
            self.stats.refused_full += 1
            self._reject(proc, EmmCause.CONGESTION, 1, "UE context table full")
        try:
            itype, fields = parse_mobile_identity(identity)
        except ValueError as exc:
            self._log(proc, "warning", f"{kind}_request", 1, reason=f"bad identity: {exc}")
            self._reject(proc, EmmCause.INVALID_MANDATORY_INFORMATION, 1, "identity not decodable")
        cap = msg.get("ue_network_capability")
        reg = None
        imsi: str | None = None
        if itype == "imsi" and kind == ATTACH:
            imsi = str(fields["imsi"])
        elif itype == "guti":
            guti = Guti(str(fields["mcc"]), str(fields["mnc"]), int(fields["mme_group_id"]),
                        int(fields["mme_code"]), int(fields["m_tmsi"]))
            imsi = self.table.imsi_for_guti(guti)
            reg = self.table.by_tmsi(guti.m_tmsi) if imsi is not None else None
        elif kind == ATTACH:
            self._log(proc, "warning", "attach_request", 1, identity=itype)
            self._reject(proc, EmmCause.IMEI_NOT_ACCEPTED, 1, f"attach with an {itype} (emergency) not supported")
        else:
            self._log(proc, "warning", "tau_request", 1, identity=itype)
            self._reject(proc, EmmCause.INVALID_MANDATORY_INFORMATION, 1, "TAU without a GUTI")
        if cap is None and reg is not None:
            cap = reg.ue_capability
        try:
            eea, eia = parse_ue_security_capability(cap if cap is not None else b"")
        except ValueError:
            self._log(proc, "warning", f"{kind}_request", 1, identity=itype, reason="no UE network capability")
            self._reject(proc, EmmCause.INVALID_MANDATORY_INFORMATION, 1, "UE network capability missing")
        proc.ue_cap = bytes(cap[:2]) if cap is not None else b""
        ue_ksi = msg["nas_key_set_identifier"] & 0x07
        proc.ksi = 0 if ue_ksi == _KSI_NO_KEY else (ue_ksi + 1) % 7
        proc.imsi = imsi
        if self._info:
            self._log(proc, "info", f"{kind}_request", 1, identity=itype, kme_check=proc.kme_check is not None,
                      known=imsi is not None)
        if self.settings.ciphering not in eea or _EIA not in eia:
            alg = self.settings.ciphering.name
            self._reject(proc, EmmCause.UE_SECURITY_CAPABILITIES_MISMATCH, 1, f"UE lacks {alg}/128-EIA2")
        if imsi is None:
            self._send(proc, NasMessage("identity_request", {"identity_type": IdentityType.IMSI}), State.IDENTITY)
            if self._debug:
                self._log(proc, "debug", "identity_request_sent", 1)
            return
        self._air(proc)

    def _identity_response(self, proc: Procedure, msg: NasMessage) -> None:
        """Identity Response (TS 24.301 §5.4.4): the IMSI behind an unknown GUTI (seed step (1))."""
        self._stop_timer(proc)
        try:
            itype, fields = parse_mobile_identity(msg["mobile_identity"])
        except ValueError:
            itype, fields = "invalid", {}
        if itype != "imsi":
            self._log(proc, "warning", "identity_response", 1, identity=itype)
            self._reject(proc, EmmCause.INVALID_MANDATORY_INFORMATION, 1, "identity response without an IMSI")
        proc.imsi = str(fields["imsi"])
        proc.log_handle = None  # re-bind with the IMSI
        if self._info:
            self._log(proc, "info", "identity_response", 1, identity="imsi")
        self._air(proc)

    def _detach(self, key: int, proc: Procedure | None, msg: NasMessage) -> None:
        """UE-originated Detach (TS 24.301 §5.5.2.2): forget the registration; Detach Accept
        unless it is a switch-off."""
        try:
            itype, fields = parse_mobile_identity(msg["eps_mobile_identity"])
        except ValueError:
            itype, fields = "invalid", {}
        imsi = str(fields["imsi"]) if itype == "imsi" else None
        if itype == "guti":
            imsi = self.table.imsi_for_guti(Guti(str(fields["mcc"]), str(fields["mnc"]),
                                                 int(fields["mme_group_id"]), int(fields["mme_code"]),
                                                 int(fields["m_tmsi"])))
        if imsi is not None:
            self.table.deregister(imsi)
        if self._info:
            self._log(proc, "info", "detach", None, key=key, identity=itype, known=imsi is not None)
        if not msg["detach_type"] & _DETACH_SWITCH_OFF:
            pdu = encode(NasMessage("detach_accept", {}))
            ctx = proc.ctx if proc is not None else None
            self._out.append(SendNas(key, ctx.protect(pdu, DOWNLINK, _SHT_INT_CIPH) if ctx is not None else pdu))
            self.stats.nas_out += 1
        if proc is not None:
            self._end(proc, "failed", None, release=False)

    # === step 2: AIR / AIA, authentication ===========================================================

    def _session_id(self) -> str:
        """RFC 6733 §8.8: <DiameterIdentity>;<high 32 bits>;<low 32 bits> (boot time; counter)."""
        return f"{self._session_prefix}{next(self._sessions)}"

    def _air(self, proc: Procedure, resync: bytes | None = None) -> None:
        """AIR of step 2 (KME-Check) or, in the provisioning branch, of step 3 (KME-Request)."""
        imsi = proc.imsi
        assert imsi is not None
        if proc.provisioning:
            assert proc.imei is not None
            req = s6a.build_air(self._session_id(), imsi, self.plmn_id, resync_info=resync, kme_request=True,
                                imei=proc.imei, software_version=proc.sv)
            proc.state = State.AIA_KME
            if self._info:
                self._log(proc, "info", "kme_request_sent", 3, imei=proc.imei, resync=resync is not None)
        else:
            check = proc.kme_check
            req = s6a.build_air(self._session_id(), imsi, self.plmn_id, kme_check=check,
                                kme_check_identity=proc.identity if check is not None else None, resync_info=resync)
            proc.state = State.AIA
            if self._debug:
                self._log(proc, "debug", "air_sent", 2, kme_check=check is not None, resync=resync is not None)
        token = proc.s6a_token = next(self._tokens)
        self._out.append(SendS6a(proc.key, token, req, "AIR"))
        self.s6a_pending += 1

    def _s6a(self, key: int, token: int, answer: Message | None, reason: str | None) -> list[Action]:
        out = self._out = []
        self.s6a_pending = max(0, self.s6a_pending - 1)
        proc = self.table.procedure(key)
        if proc is None or proc.s6a_token != token:
            self.stats.stale_events += 1
            return []
        proc.s6a_token = 0
        state = proc.state
        try:
            if state == State.AIA:
                self._on_aia(proc, s6a.read_aia(answer, expect_kme=False) if answer else s6a.failure_for(reason or ""))
            elif state == State.AIA_KME:
                self._on_kme_aia(proc, s6a.read_aia(answer, expect_kme=True) if answer else
                                 s6a.failure_for(reason or ""))
            elif state == State.ULA:
                self._on_ula(proc, s6a.read_ula(answer) if answer else s6a.failure_for(reason or ""))
        except _Done:
            pass
        self._out = []
        return out

    def _s6a_failed(self, proc: Procedure, failure: s6a.S6aFailure, step: int, event: str) -> NoReturn:
        self._log(proc, "warning", event, step, result=failure.result_name, emm_cause=failure.emm_cause)
        self._reject(proc, failure.emm_cause, step, f"S6a: {failure.result_name}")

    def _on_aia(self, proc: Procedure, res: s6a.AiaResult | s6a.S6aFailure) -> None:
        if isinstance(res, s6a.S6aFailure):
            self._s6a_failed(proc, res, 2, "aia_failed")
        assert isinstance(res, s6a.AiaResult)
        proc.vector = res.vector
        proc.kme_status = res.kme_status
        if self._info:
            self._log(proc, "info", "aia_received", 2, kme_status=_KME_STATUS_NAMES.get(res.kme_status, "absent"),
                      kme_binding=_BINDING_NAMES.get(res.vector.binding, "?"))
        self._authenticate(proc)

    def _authenticate(self, proc: Procedure) -> None:
        """Authentication Request (TS 24.301 §5.4.2.2) with the KME binding indicator (steps 2, 10)."""
        vec = proc.vector
        assert vec is not None
        msg = NasMessage("authentication_request", {
            "nas_key_set_identifier": proc.ksi,
            "rand": vec.rand,
            "autn": vec.autn,
            "kme_binding_indicator": KmeBindingIndicator(vec.binding),
        })
        self._send(proc, msg, State.AUTH)
        if self._debug:
            self._log(proc, "debug", "authentication_request_sent", 10 if proc.bound else 2, ksi=proc.ksi,
                      binding=KmeBindingIndicator(vec.binding).name)

    def _authentication_response(self, proc: Procedure, msg: NasMessage) -> None:
        step = 10 if proc.bound else 2
        vec = proc.vector
        assert vec is not None
        self._stop_timer(proc)
        if not hmac.compare_digest(bytes(msg["res"]), vec.xres):
            self._log(proc, "warning", "authentication_failed", step, reason="RES does not match XRES")
            self._auth_reject(proc, step, "wrong RES")
        if self._info:
            self._log(proc, "info", "authenticated", step, ksi=proc.ksi, binding=KmeBindingIndicator(vec.binding).name)
        eea = self.settings.ciphering
        k_enc, k_int = kdf.nas_keys(vec.kasme, eea, _EIA)
        proc.new_ctx = NasSecurityContext(proc.ksi, k_int, k_enc, _EIA, eea)
        self._send(proc, _security_mode_command(eea, proc.ksi, proc.ue_cap, not proc.bound), State.SMC,
                   new_context=True)
        if self._debug:
            self._log(proc, "debug", "security_mode_command_sent", 11 if proc.bound else 2, ksi=proc.ksi)

    def _authentication_failure(self, proc: Procedure, msg: NasMessage) -> None:
        """Authentication Failure (TS 24.301 §5.4.2.6/§5.4.2.7 c-e)."""
        step = 10 if proc.bound else 2
        self._stop_timer(proc)
        cause = int(msg["emm_cause"])
        auts = msg.get("auts")
        vec = proc.vector
        self._log(proc, "warning", "authentication_failure", step, cause=cause, auts=auts is not None,
                  resynced=proc.resynced)
        if cause == EmmCause.SYNCH_FAILURE and auts is not None and not proc.resynced and vec is not None:
            proc.resynced = True
            self._air(proc, resync=vec.rand + bytes(auts))  # TS 29.272 §7.3.15: RAND ‖ AUTS
            return
        self._auth_reject(proc, step, f"authentication failure #{cause}")

    # === step 2 end / 11: security mode ==============================================================

    def _security_mode_complete(self, proc: Procedure, msg: NasMessage) -> None:
        step = 11 if proc.bound else 2
        self._stop_timer(proc)
        proc.ctx, proc.new_ctx = proc.new_ctx, None
        if not proc.bound:
            imeisv = msg.get("imeisv")
            try:
                itype, fields = parse_mobile_identity(imeisv) if imeisv is not None else ("absent", {})
                if itype != "imeisv":
                    raise ValueError(itype)
                proc.imei, proc.sv = imei_from_imeisv(str(fields["imeisv"]))
            except ValueError:
                self._log(proc, "warning", "security_mode_complete", step, reason="no IMEISV")
                self._reject(proc, EmmCause.INVALID_MANDATORY_INFORMATION, step, "IMEISV requested, not given")
        if self._info:
            self._log(proc, "info", "security_mode_complete", step, ksi=proc.ksi, imei=proc.imei)
        if proc.bound:
            self._ulr(proc)
        elif proc.kme_status == d.KME_STATUS_PROVISIONING_REQUIRED:
            proc.provisioning = True  # steps 3-11
            self._air(proc)
        else:
            self._ulr(proc)  # MATCH (or an HSS without KME support): step 12 without a KME

    def _security_mode_reject(self, proc: Procedure, msg: NasMessage) -> None:
        """TS 24.301 §5.4.3.5: the UE refused the command; the procedure is aborted."""
        self._stop_timer(proc)
        self._log(proc, "warning", "security_mode_reject", 11 if proc.bound else 2, cause=msg.get("emm_cause"))
        proc.new_ctx = None
        self._finish(proc, "failed", None, release=True)

    # === steps 3-9: KME provisioning ================================================================

    def _on_kme_aia(self, proc: Procedure, res: s6a.AiaResult | s6a.S6aFailure) -> None:
        if isinstance(res, s6a.S6aFailure):
            if res.emm_cause == EmmCause.ILLEGAL_ME:
                self._out.append(KmeEvent("refused"))
            self._s6a_failed(proc, res, 4, "kme_aia_failed")
        assert isinstance(res, s6a.AiaResult) and res.kme_scheme is not None and res.encrypted_kme is not None
        proc.aia = res
        if self._info:
            self._log(proc, "info", "kme_received", 4, kme_scheme=res.kme_scheme,
                      kme_fingerprint=kmefn.fingerprint(res.kme) if res.kme else None)
        proc.nonce = self.nonce(kmefn.NONCE_LEN)
        if self._debug:
            self._log(proc, "debug", "nonce_generated", 5)
        msg = NasMessage("kme_provisioning_command", {
            "kme_scheme": res.kme_scheme, "nonce": proc.nonce, "encrypted_kme": res.encrypted_kme,
        })
        self._send(proc, msg, State.KME)
        self._out.append(KmeEvent("issued"))
        if self._info:
            self._log(proc, "info", "kme_provisioning_command_sent", 6)

    def _kme_provisioning_response(self, proc: Procedure, msg: NasMessage) -> None:
        self._stop_timer(proc)
        aia, nonce = proc.aia, proc.nonce
        assert aia is not None and aia.kme is not None and nonce is not None
        if self._debug:
            self._log(proc, "debug", "kme_provisioning_response", 8)
        if not hmac.compare_digest(bytes(msg["me_rsp"]), kmefn.me_rsp(aia.kme, nonce)):
            self._out.append(KmeEvent("refused"))
            self._log(proc, "warning", "me_rsp_mismatch", 9)
            self._reject(proc, EmmCause.ILLEGAL_ME, 9, "ME_Rsp does not match: the device does not hold the key")
        if self._info:
            self._log(proc, "info", "me_rsp_verified", 9)
        proc.bound = True  # step 10: re-authentication with the vector bound to the new KME
        proc.vector = aia.vector
        proc.ksi = (proc.ksi + 1) % 7
        self._authenticate(proc)

    # === steps 12-13: ULR / ULA, accept ==============================================================

    def _ulr(self, proc: Procedure) -> None:
        imsi = proc.imsi
        assert imsi is not None
        aia = proc.aia if proc.bound else None
        req = s6a.build_ulr(
            self._session_id(), imsi, self.plmn_id, initial_attach=proc.kind == ATTACH, imei=proc.imei,
            software_version=proc.sv, kme=aia.kme if aia is not None else None,
            kme_token=aia.kme_token if aia is not None else None,
        )
        proc.state = State.ULA
        token = proc.s6a_token = next(self._tokens)
        self._out.append(SendS6a(proc.key, token, req, "ULR"))
        self.s6a_pending += 1
        if self._debug:
            self._log(proc, "debug", "ulr_sent", 12, with_kme=aia is not None)

    def _on_ula(self, proc: Procedure, res: s6a.UlaResult | s6a.S6aFailure) -> None:
        if isinstance(res, s6a.S6aFailure):
            if proc.bound:
                self._out.append(KmeEvent("refused"))
            self._s6a_failed(proc, res, 13, "ula_failed")
        if proc.bound:
            self._out.append(KmeEvent("stored"))
        if self._info:
            self._log(proc, "info", "location_updated", 13, kme_stored=proc.bound)
        proc.m_tmsi = tmsi = self.table.allocate_tmsi()
        s = self.settings
        guti = guti_identity(s.mcc, s.mnc, s.mme_group_id, s.mme_code, tmsi)
        if proc.kind == ATTACH:
            msg = NasMessage("attach_accept", {
                "eps_attach_result": _EPS_ONLY,
                "t3412_value": self._t3412,
                "tai_list": self._tai_list,
                "esm_message_container": self._default_bearer,
                "guti": guti,
            })
        else:
            msg = NasMessage("tracking_area_update_accept", {
                "eps_update_result": _TA_UPDATED,
                "t3412_value": self._t3412,
                "guti": guti,
                "tai_list": self._tai_list,
            })
        self._send(proc, msg, State.COMPLETE)
        if self._debug:
            self._log(proc, "debug", f"{proc.kind}_accept_sent", 13, m_tmsi=f"{tmsi:08x}")

    def _complete(self, proc: Procedure, msg: NasMessage) -> None:
        """Attach Complete / TAU Complete: the GUTI is in use; register the UE (TS 24.301 §5.5.1.2.4)."""
        if (msg.name == "attach_complete") != (proc.kind == ATTACH):
            self.stats.unexpected += 1
            self._emm_status(proc, proc.key, EmmCause.MESSAGE_TYPE_NOT_COMPATIBLE_WITH_PROTOCOL_STATE)
            return
        self._stop_timer(proc)
        assert proc.imsi is not None and proc.m_tmsi is not None
        self.table.register(proc.imsi, proc.m_tmsi, proc.imei, proc.ue_cap)
        if self._info:
            self._log(proc, "info", f"{proc.kind}_complete", 13, m_tmsi=f"{proc.m_tmsi:08x}",
                      kme_provisioned=proc.bound)
        self._finish(proc, "ok", None, release=False)

    # === timers ======================================================================================

    def _on_timer(self, proc: Procedure) -> None:
        name = _TIMER_NAME[proc.state]
        proc.retries += 1
        if proc.retries > self.settings.max_retransmissions:
            self._log(proc, "warning", "procedure_timeout", None, timer=name, state=proc.state.name,
                      transmissions=proc.retries)
            self._finish(proc, "timeout", None, release=True)
        if self._info:
            self._log(proc, "info", "retransmission", None, timer=name, state=proc.state.name, retry=proc.retries)
        plain, sht, ctx = proc.last_plain, proc.last_sht, proc.last_ctx
        pdu = ctx.protect(plain, DOWNLINK, sht) if ctx is not None and sht else plain
        self._out.append(SendNas(proc.key, pdu))
        self.stats.nas_out += 1
        self._arm(proc, self._timer_s[proc.state], name)

    def _arm(self, proc: Procedure, seconds: float, name: str) -> None:
        token = proc.timer_token = next(self._tokens)
        self._out.append(StartTimer(proc.key, token, seconds, name))

    def _stop_timer(self, proc: Procedure) -> None:
        if proc.timer_token:
            proc.timer_token = 0
            self._out.append(StopTimer(proc.key))

    # === sending and ending ==========================================================================

    def _send(self, proc: Procedure, msg: NasMessage | bytes, state: State | None = None, *,
              new_context: bool = False) -> None:
        """Encode (``msg`` may be the plain message already encoded), protect as the procedure's
        security state says, send; with ``state``, wait there under its retransmission timer."""
        plain = msg if isinstance(msg, bytes) else encode(msg)
        if new_context:
            ctx, sht = proc.new_ctx, _SHT_INT_NEW
        elif proc.ctx is not None:
            ctx, sht = proc.ctx, _SHT_INT_CIPH
        else:
            ctx, sht = None, _SHT_PLAIN
        pdu = ctx.protect(plain, DOWNLINK, sht) if ctx is not None else plain
        self._out.append(SendNas(proc.key, pdu))
        self.stats.nas_out += 1
        if state is not None:
            proc.state = state
            proc.retries = 0
            proc.last_plain, proc.last_sht, proc.last_ctx = plain, sht, ctx
            name = _TIMER_NAME.get(state)
            if name is not None:
                self._arm(proc, self._timer_s[state], name)

    def _emm_status(self, proc: Procedure | None, key: int, cause: int) -> None:
        """EMM STATUS (TS 24.301 §5.7) reporting a protocol error; protected when a context is in use."""
        pdu = encode(NasMessage("emm_status", {"emm_cause": int(cause)}))
        ctx = proc.ctx if proc is not None else None
        self._out.append(SendNas(key, ctx.protect(pdu, DOWNLINK, _SHT_INT_CIPH) if ctx is not None else pdu))
        self.stats.nas_out += 1

    def _reject(self, proc: Procedure, cause: int, step: int | None, reason: str) -> NoReturn:
        """Attach Reject / TAU Reject with ``cause`` (protected once security is in use), then end."""
        self._stop_timer(proc)
        name = "attach_reject" if proc.kind == ATTACH else "tracking_area_update_reject"
        proc.new_ctx = None
        ies: dict[str, Any] = {"emm_cause": int(cause)}
        if cause == EmmCause.CONGESTION:
            # TS 24.301 §5.5.1.2.5/§5.5.3.2.5: with #22 the network assigns the back-off timer
            # T3346 (§8.2.3.5: T3346 value, GPRS timer 2, TS 24.008 §10.5.7.4: the GPRS timer octet)
            ies["t3346_value"] = bytes((self._t3346,))
        self._send(proc, NasMessage(name, ies))
        self._log(proc, "warning", f"{proc.kind}_rejected", step, emm_cause=int(cause),
                  cause_name=EmmCause(cause).name if cause in EmmCause._value2member_map_ else str(cause),
                  reason=reason)
        self._finish(proc, "rejected", int(cause), release=True)

    def _auth_reject(self, proc: Procedure, step: int, reason: str) -> NoReturn:
        """Authentication Reject (TS 24.301 §5.4.2.5): no cause IE; the UE is released."""
        self._stop_timer(proc)
        proc.new_ctx = None
        self._send(proc, NasMessage("authentication_reject", {}))
        self._log(proc, "warning", "authentication_rejected", step, reason=reason)
        self._finish(proc, "rejected", None, release=True)

    def _finish(self, proc: Procedure, outcome: str, cause: int | None, *, release: bool) -> NoReturn:
        """:meth:`_end`, then unwind the handler."""
        self._end(proc, outcome, cause, release=release)
        raise _Done

    def _end(self, proc: Procedure, outcome: str, cause: int | None, *, release: bool) -> None:
        """Forget the procedure and report its outcome."""
        self._stop_timer(proc)
        proc.state = State.DONE
        proc.s6a_token = 0
        if self.table.procedure(proc.key) is proc:
            self.table.remove_procedure(proc.key)
        if release:
            cause_code = ReleaseCause.NORMAL if outcome == "rejected" else ReleaseCause.NETWORK_ERROR
            self._out.append(ReleaseUe(proc.key, cause_code))
        self._out.append(Outcome(proc.key, proc.name, outcome, cause, proc.imsi, self.clock() - proc.started,
                                 proc.bound and outcome == "ok"))

    def _log(self, proc: Procedure | None, level: str, event: str, step: int | None, **fields: Any) -> None:
        """A :class:`Log` action, if ``level`` is on. The success path's info/debug calls are
        guarded by ``self._info``/``self._debug`` so that their fields are not even built."""
        if _LOG_LEVELS[level] < self._min_level:
            return
        fields["step"] = step
        key = proc.key if proc is not None else fields.pop("key", 0)
        fields.pop("key", None)
        self._out.append(Log(proc, key, level, event, fields))


_Handler = Callable[[Cnn, Procedure, NasMessage], None]

_HANDLERS: dict[tuple[State, str], _Handler] = {
    (State.IDENTITY, "identity_response"): Cnn._identity_response,
    (State.AUTH, "authentication_response"): Cnn._authentication_response,
    (State.AUTH, "authentication_failure"): Cnn._authentication_failure,
    (State.SMC, "security_mode_complete"): Cnn._security_mode_complete,
    (State.SMC, "security_mode_reject"): Cnn._security_mode_reject,
    (State.KME, "kme_provisioning_response"): Cnn._kme_provisioning_response,
    (State.COMPLETE, "attach_complete"): Cnn._complete,
    (State.COMPLETE, "tracking_area_update_complete"): Cnn._complete,
}


@functools.lru_cache(maxsize=256)
def _security_mode_command(eea: int, ksi: int, ue_cap: bytes, imeisv: bool) -> bytes:
    """The plain Security Mode Command (TS 24.301 §8.2.20): the same octets for every UE with
    the same KSI and capabilities, so encoded once per distinct value."""
    ies: dict[str, Any] = {
        "selected_nas_security_algorithms": nas_security_algorithms(eea, _EIA),
        "nas_key_set_identifier": ksi,
        "replayed_ue_security_capabilities": ue_cap,
    }
    if imeisv:
        ies["imeisv_request"] = _IMEISV_REQUESTED
    return encode(NasMessage("security_mode_command", ies))
