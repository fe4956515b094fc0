"""The UE's NAS procedure state machine for Attach and TAU with the KME steps (sans-I/O).

Events in: :meth:`UeProcedure.start`, :meth:`~UeProcedure.receive` (a downlink NAS PDU),
:meth:`~UeProcedure.timer_expired`, :meth:`~UeProcedure.released` (the network released the
UE or the link went down), :meth:`~UeProcedure.abort` (e.g. the overall deadline). Each returns
a list of actions: :class:`Send` (an uplink NAS PDU), :class:`SetTimer` (arm or cancel the one
retransmission timer), :class:`Release` (the UE leaves its signalling connection: the driver
releases the UE id on the link; a later :class:`Send` uses a new one) and :class:`Done` with
the :class:`Outcome`. No clock, no socket, no thread: the driver (:mod:`kmed.ue.client`, the
load harness) owns those.

Message sequence: docs/procedure.md. NAS rules applied (TS 24.301):

- §4.4.4.2: before security is established only IDENTITY REQUEST (IMSI), AUTHENTICATION
  REQUEST/REJECT, ATTACH REJECT and TRACKING AREA UPDATE REJECT are processed unprotected;
  afterwards only messages whose integrity check passes (:class:`NasSecurityContext`: bad MAC
  and replayed COUNT are discarded);
- §5.4.2: authentication; failures #20 (MAC), #21 (synch, with AUTS), #26 (AMF separation
  bit); three consecutive failures end the procedure (§5.4.2.7 f); a retransmitted challenge
  (same RAND) is answered with the stored RES, not passed to the USIM (§5.4.2.4). A KME binding indicator
  naming a KME the ME does not hold is answered with #111 (protocol error, unspecified):
  no 24.301 cause fits and the network must not take it for a USIM failure;
- §5.4.3: the SECURITY MODE COMMAND is checked with a context derived from the K'ASME of
  the last authentication (``kdf.nas_keys``); a MAC that does not verify, an unknown KSI or
  unsupported algorithms → SECURITY MODE REJECT #24; replayed UE security capabilities that
  differ from those sent → #23 (§5.4.3.5). The COMPLETE carries the IMEISV when requested and
  is integrity protected and ciphered with the new context (header type 4). A retransmitted
  command that verifies with the context already taken into use is answered again with it;
- seed steps 10–11: when the accepted SECURITY MODE COMMAND follows an authentication bound
  to the new KME, the ME commits the pending KME (docs/procedure.md); any pending KME not
  committed when the procedure ends is reverted (the UE goes idle: seed step 7);
- §5.5.1.2.6 c / §5.5.3.2.6 c: T3410 (attach) / T3430 (TAU) guard the procedure; on expiry
  the attempt is abandoned (the UE's connection released, pending KME reverted, security
  context dropped) and a new request is sent, up to ``max_attempts`` (the attempt counter
  limit of 5 in §5.5.1.2.6);
- §5.5.1.2.5 / §5.4.2.5: Attach Reject #3, #6, #7, #8 and Authentication Reject delete the
  GUTI and last visited TAI (USIM invalid); TAU Reject #3, #6, #7, #8, #9, #10 likewise
  (§5.5.3.2.5).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from kmed.crypto import kdf, kme
from kmed.nas import esm
from kmed.nas.causes import EmmCause
from kmed.nas.codec import NasDecodeError, NasMessage, decode, encode
from kmed.nas.identity import imei_identity, imsi_identity
from kmed.nas.ies import (
    EpsAttachType,
    EpsUpdateType,
    IdentityType,
    KmeBindingIndicator,
    NasCipheringAlgorithm,
    NasIntegrityAlgorithm,
    SecurityHeaderType,
    parse_nas_security_algorithms,
    parse_ue_security_capability,
    ue_network_capability,
)
from kmed.nas.security import DOWNLINK, UPLINK, NasSecurityContext, NasSecurityError, security_header_type
from kmed.ue.me import KmeDecryptError, KmeUnavailable, Me
from kmed.ue.usim import AkaFailure, Usim

__all__ = [
    "ATTACH",
    "TAU",
    "Action",
    "Done",
    "Outcome",
    "Release",
    "Send",
    "SetTimer",
    "UeProcedure",
]

ATTACH = "attach"
TAU = "tau"

#: TS 24.301 §9.9.3.21: NAS key set identifier 7 = "no key is available" (native, TSC 0).
KSI_NO_KEY = 7
#: What this UE implements (kmed.nas.security): 128-EEA2 and EEA0; 128-EIA2.
SUPPORTED_EEA = (NasCipheringAlgorithm.EEA0, NasCipheringAlgorithm.EEA2)
SUPPORTED_EIA = (NasIntegrityAlgorithm.EIA2,)
_UE_CAPABILITY = ue_network_capability(eea=SUPPORTED_EEA, eia=SUPPORTED_EIA)
_CAPABILITY_SETS = parse_ue_security_capability(_UE_CAPABILITY)
#: TS 24.301 §5.4.2.7 f: the UE gives up after three consecutive authentication failures.
MAX_AUTH_FAILURES = 3
#: §5.5.1.2.5 / §5.5.3.2.5: causes after which the USIM is invalid and the GUTI deleted.
_USIM_INVALID = frozenset({3, 6, 7, 8})
_TAU_DELETE_GUTI = _USIM_INVALID | {9, 10}
#: §4.4.4.2: messages the UE processes without integrity protection (before security).
_PLAIN_ALLOWED = frozenset(
    {
        "identity_request",
        "authentication_request",
        "authentication_reject",
        "attach_reject",
        "tracking_area_update_reject",
    }
)
_IMEISV_REQUESTED = 1  # TS 24.301 §9.9.3.18


# --- actions and outcome -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send this uplink NAS PDU for the UE."""

    pdu: bytes


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Arm the procedure's timer for ``seconds`` (replacing any armed one); None cancels it."""

    seconds: float | None


@dataclass(frozen=True, slots=True)
class Release:
    """The UE leaves its signalling connection (goes idle): release its UE id on the link."""


@dataclass(frozen=True, slots=True)
class Done:
    """The procedure has ended; :attr:`UeProcedure.outcome` is set."""

    outcome: Outcome


Action = Send | SetTimer | Release | Done


@dataclass(slots=True)
class Outcome:
    """How an attach or TAU ended (the fields ``kmed ue attach`` prints; CONTRACT)."""

    procedure: str
    result: str
    """``accepted``, ``rejected`` (the network refused: Attach/TAU/Authentication Reject) or
    ``failed`` (no answer, link lost, protocol failure; see ``error``)."""
    emm_cause: int | None
    kme_provisioned: bool
    """A new KME was committed (taken into use) during this procedure."""
    kme_fingerprint: str | None
    """``kme.fingerprint`` of the KME the ME holds now (after any commit or revert)."""
    imsi: str
    imei: str
    error: str | None = None
    attempts: int = 1
    guti: str | None = None
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "procedure": self.procedure,
            "result": self.result,
            "emm_cause": self.emm_cause,
            "kme_provisioned": self.kme_provisioned,
            "kme_fingerprint": self.kme_fingerprint,
            "imsi": self.imsi,
            "imei": self.imei,
            "error": self.error,
            "attempts": self.attempts,
            "guti": self.guti,
            "messages": list(self.messages),
        }


@dataclass(slots=True)
class _Auth:
    """The K'ASME of the last successful authentication, for the SECURITY MODE COMMAND."""

    ksi: int
    kasme: bytes
    binding: int


class _Stop(Exception):
    """Internal: the procedure ended while handling an event."""


class UeProcedure:
    """One Attach or TAU of one UE (USIM + ME), from the request to the accept/reject.

    ``plmn_id`` is the serving network identity used in KASME (TS 33.401 A.2), 3 octets.
    ``timer_s`` is T3410 (attach) or T3430 (TAU); ``max_attempts`` bounds the requests sent.
    ``log`` is an optional structlog-style logger (``info``/``warning``); each event carries the
    seed's ``step``. ``trace`` keeps the message flow in :attr:`Outcome.messages`.
    """

    __slots__ = (
        "_actions",
        "_attempts",
        "_auth",
        "_auth_failures",
        "_committed",
        "_ctx",
        "_ctx_auth",
        "_identity",
        "_in_connection",
        "_last_challenge",
        "_log",
        "_trace",
        "kind",
        "max_attempts",
        "me",
        "outcome",
        "plmn_id",
        "timer_s",
        "usim",
    )

    def __init__(
        self,
        usim: Usim,
        me: Me,
        plmn_id: bytes,
        *,
        kind: str = ATTACH,
        timer_s: float = 15.0,
        max_attempts: int = 5,
        log: Any = None,
        trace: bool = True,
    ) -> None:
        if kind not in (ATTACH, TAU):
            raise ValueError(f"kind must be {ATTACH!r} or {TAU!r}")
        if len(plmn_id) != 3:
            raise ValueError("plmn_id must be 3 octets")
        if max_attempts < 1 or timer_s <= 0:
            raise ValueError("max_attempts must be at least 1 and timer_s positive")
        self.usim = usim
        self.me = me
        self.plmn_id = bytes(plmn_id)
        self.kind = kind
        self.timer_s = timer_s
        self.max_attempts = max_attempts
        self.outcome: Outcome | None = None
        self._log = log
        self._trace: list[str] | None = [] if trace else None
        self._actions: list[Action] = []
        self._attempts = 0
        self._auth: _Auth | None = None
        self._auth_failures = 0
        self._committed = False
        self._ctx: NasSecurityContext | None = None
        self._ctx_auth: _Auth | None = None  # the authentication the current context comes from
        self._identity = b""
        self._in_connection = False
        self._last_challenge: tuple[bytes, bytes, bytes] | None = None  # RAND, RES, unbound KASME

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def security_established(self) -> bool:
        return self._ctx is not None

    # --- events -------------------------------------------------------------------------------

    def start(self) -> list[Action]:
        """Send the Attach Request or TAU Request (seed step 1)."""
        if self._attempts:
            raise RuntimeError("start() called twice")
        return self._run(self._send_request)

    def receive(self, pdu: bytes) -> list[Action]:
        """A downlink NAS PDU for this UE."""
        if self.outcome is not None:
            return []
        return self._run(self._on_pdu, pdu)

    def timer_expired(self) -> list[Action]:
        """T3410 / T3430 expired: abandon this attempt; retry or fail (TS 24.301 §5.5.1.2.6 c)."""
        if self.outcome is not None:
            return []
        return self._run(self._on_timer)

    def released(self, reason: str = "released by the network") -> list[Action]:
        """The network released the UE (UE_RELEASE, ERROR) or the link was lost."""
        if self.outcome is not None:
            return []
        self._in_connection = False
        return self._run(self._fail, f"{reason} before the {self.kind} completed")

    def abort(self, reason: str) -> list[Action]:
        """End the procedure now (e.g. the overall deadline): result ``failed``."""
        if self.outcome is not None:
            return []
        return self._run(self._fail, reason)

    # --- plumbing -----------------------------------------------------------------------------

    def _run(self, handler: Any, *args: Any) -> list[Action]:
        actions: list[Action] = []
        self._actions = actions
        try:  # noqa: SIM105 (contextlib.suppress costs a context manager per event)
            handler(*args)
        except _Stop:
            pass
        self._actions = []
        return actions

    def _note(self, text: str) -> None:
        if self._trace is not None:
            self._trace.append(text)

    def _event(self, event: str, step: int | None, warning: bool = False, **fields: Any) -> None:
        if self._log is not None:
            (self._log.warning if warning else self._log.info)(event, step=step, procedure=self.kind, **fields)

    def _send_plain(self, msg: NasMessage) -> None:
        self._send_encoded(msg.name, encode(msg))

    def _send_encoded(self, name: str, pdu: bytes) -> None:
        """Send the plain NAS message ``pdu``, protected when a context is in use."""
        if self._ctx is not None:
            pdu = self._ctx.protect(pdu, UPLINK, SecurityHeaderType.INTEGRITY_CIPHERED)
        if self._trace is not None:
            self._trace.append(f"UE -> CNN {name}")
        self._in_connection = True
        self._actions.append(Send(pdu))

    def _finish(self, result: str, cause: int | None = None, error: str | None = None) -> None:
        """End the procedure: the UE goes idle; a pending KME not committed is reverted."""
        if self.me.revert_pending():
            self._note("ME: pending KME dropped (UE idle before the bound authentication)")
            self._event("kme_reverted", 7)
        self._actions.append(_CANCEL_TIMER)
        if self._in_connection:
            self._actions.append(_RELEASE)
            self._in_connection = False
        guti = self.usim.state.guti
        self.outcome = Outcome(
            procedure=self.kind,
            result=result,
            emm_cause=cause,
            kme_provisioned=self._committed,
            kme_fingerprint=self.me.current_fingerprint(),
            imsi=self.usim.imsi,
            imei=self.me.imei,
            error=error,
            attempts=self._attempts,
            guti=guti.hex() if guti is not None else None,
            messages=self._trace if self._trace is not None else [],
        )
        self._actions.append(Done(self.outcome))
        if self._log is not None:
            self._event(f"{self.kind}_{result}", 13 if result == "accepted" else None,
                        emm_cause=cause, error=error, kme_provisioned=self._committed)
        raise _Stop

    def _fail(self, error: str) -> None:
        self._finish("failed", None, error)

    # --- request and retransmission -----------------------------------------------------------

    def _send_request(self) -> None:
        """Attach Request (§8.2.4) or TAU Request (§8.2.29) with KME_Check (seed step 1)."""
        self._attempts += 1
        self._ctx = None
        self._ctx_auth = None
        self._auth = None
        self._auth_failures = 0
        self._last_challenge = None
        guti = self.usim.state.guti
        if self.kind == TAU and guti is None:
            self._fail("no GUTI held: a TAU needs a previous attach")
        self._identity = guti if guti is not None else imsi_identity(self.usim.imsi)
        key = self.me.kme_for_check(self.usim.imsi)
        check = kme.kme_check(key, self._identity) if key is not None else None
        tai = self.usim.state.last_tai
        if self.kind == ATTACH:
            msg = NasMessage("attach_request", {
                "eps_attach_type": EpsAttachType.EPS_ATTACH,
                "nas_key_set_identifier": KSI_NO_KEY,
                "eps_mobile_identity": self._identity,
                "ue_network_capability": _UE_CAPABILITY,
                "esm_message_container": esm.pdn_connectivity_request(),
            })
        else:
            msg = NasMessage("tracking_area_update_request", {
                "eps_update_type": EpsUpdateType.TA_UPDATING,
                "nas_key_set_identifier": KSI_NO_KEY,
                "old_guti": self._identity,
                "ue_network_capability": _UE_CAPABILITY,
            })
        if tai is not None:
            msg.ies["last_visited_registered_tai"] = tai
        if check is not None:
            msg.ies["kme_check"] = check
        self._send_plain(msg)
        self._actions.append(SetTimer(self.timer_s))
        if self._log is not None:
            self._event(f"{self.kind}_request_sent", 1, attempt=self._attempts,
                        identity="guti" if guti is not None else "imsi", kme_check=check is not None)

    def _on_timer(self) -> None:
        timer = "T3410" if self.kind == ATTACH else "T3430"
        self._note(f"UE: {timer} expired")
        self._event("timer_expired", None, warning=True, timer=timer, attempt=self._attempts)
        if self.me.revert_pending():  # the connection is released locally: the UE is idle
            self._note("ME: pending KME dropped (UE idle before the bound authentication)")
            self._event("kme_reverted", 7)
        if self._in_connection:
            self._actions.append(_RELEASE)
            self._in_connection = False
        if self._attempts >= self.max_attempts:
            self._fail(f"no answer: {timer} expired {self._attempts} times")
        self._send_request()

    # --- downlink -----------------------------------------------------------------------------

    def _on_pdu(self, pdu: bytes) -> None:
        sht = security_header_type(pdu)
        if sht == SecurityHeaderType.INTEGRITY_NEW_CONTEXT:
            self._on_new_context_smc(pdu)
            return
        if sht == SecurityHeaderType.PLAIN:
            try:
                msg = decode(pdu)
            except NasDecodeError as exc:
                self._bad_pdu(exc)
                return
            if self._ctx is not None or msg.name not in _PLAIN_ALLOWED:
                self._discard(msg.name, "not integrity protected")  # §4.4.4.2
                return
            if msg.name == "identity_request" and msg["identity_type"] != IdentityType.IMSI:
                self._discard(msg.name, "IMEI/IMEISV asked before security")
                return
        elif sht in (SecurityHeaderType.INTEGRITY, SecurityHeaderType.INTEGRITY_CIPHERED):
            if self._ctx is None:
                self._discard(f"header type {sht}", "no security context")
                return
            try:
                plain = self._ctx.unprotect(pdu, DOWNLINK)
            except NasSecurityError as exc:
                self._discard(f"header type {sht}", str(exc))
                return
            try:
                msg = decode(plain)
            except NasDecodeError as exc:
                self._bad_pdu(exc)
                return
        else:
            self._discard(f"header type {sht}", "not a downlink EMM message")
            return
        if self._trace is not None:
            self._trace.append(f"CNN -> UE {msg.name}")
        handler = _HANDLERS.get(msg.name)
        if handler is None:
            self._status(EmmCause.MESSAGE_TYPE_NOT_COMPATIBLE_WITH_PROTOCOL_STATE, msg.name)
            return
        handler(self, msg)

    def _discard(self, what: str, why: str) -> None:
        self._note(f"UE: discarded {what} ({why})")
        self._event("nas_discarded", None, warning=True, message=what, reason=why)

    def _bad_pdu(self, exc: NasDecodeError) -> None:
        self._note(f"UE: undecodable PDU ({exc.detail})")
        self._event("nas_undecodable", None, warning=True, cause=int(exc.cause), detail=exc.detail)
        if exc.respond:
            self._status(exc.cause, "undecodable")

    def _status(self, cause: int, about: str) -> None:
        """EMM STATUS (§5.7) reporting a protocol error."""
        self._event("emm_status_sent", None, warning=True, cause=int(cause), about=about)
        self._send_plain(NasMessage("emm_status", {"emm_cause": int(cause)}))

    # --- handlers -----------------------------------------------------------------------------

    def _identity_request(self, msg: NasMessage) -> None:
        """IDENTITY REQUEST (§5.4.4): the network does not know the GUTI (seed step (1))."""
        kind = msg["identity_type"]
        if kind == IdentityType.IMSI:
            value = imsi_identity(self.usim.imsi)
        elif kind == IdentityType.IMEI:
            value = imei_identity(self.me.imei)
        elif kind == IdentityType.IMEISV:
            value = self.me.imeisv_identity
        else:
            self._status(EmmCause.INVALID_MANDATORY_INFORMATION, "identity type")
            return
        self._event("identity_response_sent", 1, identity_type=int(kind))
        self._send_plain(NasMessage("identity_response", {"mobile_identity": value}))

    def _authentication_request(self, msg: NasMessage) -> None:
        """AUTHENTICATION REQUEST (§5.4.2) with the KME binding indicator (seed steps 2, 10)."""
        ksi = msg["nas_key_set_identifier"] & 0x07
        binding = int(msg.get("kme_binding_indicator", KmeBindingIndicator.NOT_BOUND))
        step = 10 if binding == KmeBindingIndicator.BOUND_TO_NEW else 2
        rand = bytes(msg["rand"])
        last = self._last_challenge
        if last is not None and last[0] == rand:
            # §5.4.2.4: a retransmitted challenge (same RAND) is not passed to the USIM again
            # (its SQN is used up); the stored RES is sent.
            res, kasme = last[1], last[2]
        else:
            result = self.usim.authenticate(rand, msg["autn"])
            if isinstance(result, AkaFailure):
                self._auth_failure(result.cause, result.auts, step)
                return
            res = result.res
            kasme = kdf.kasme(result.ck, result.ik, self.plmn_id, msg["autn"][:6])
            self._last_challenge = (rand, res, kasme)
        try:
            kasme = self.me.kasme_for(binding, kasme)
        except KmeUnavailable as exc:
            self._note(f"ME: {exc}")
            self._auth_failure(EmmCause.PROTOCOL_ERROR_UNSPECIFIED, None, step)
            return
        self._auth_failures = 0
        self._auth = _Auth(ksi, kasme, binding)
        if self._log is not None:
            self._event("authentication_response_sent", step, ksi=ksi, binding=KmeBindingIndicator(binding).name)
        self._send_plain(NasMessage("authentication_response", {"res": res}))

    def _auth_failure(self, cause: int, auts: bytes | None, step: int) -> None:
        self._auth_failures += 1
        self._event("authentication_failure_sent", step, warning=True, cause=int(cause))
        ies: dict[str, Any] = {"emm_cause": int(cause)}
        if auts is not None:
            ies["auts"] = auts
        self._send_plain(NasMessage("authentication_failure", ies))
        if self._auth_failures >= MAX_AUTH_FAILURES:  # §5.4.2.7 f: network deemed not genuine
            self._fail(f"{self._auth_failures} consecutive authentication failures (last cause #{int(cause)})")

    def _authentication_reject(self, msg: NasMessage) -> None:
        """AUTHENTICATION REJECT (§5.4.2.5): the USIM is invalid; GUTI deleted."""
        self.usim.forget_location()
        self._finish("rejected", None, "authentication rejected by the network")

    def _on_new_context_smc(self, pdu: bytes) -> None:
        """SECURITY MODE COMMAND (§5.4.3), header type 3: verified with the new context."""
        try:
            msg = decode(pdu)  # the MAC is checked below, with keys from this message's KSI
        except NasDecodeError as exc:
            self._bad_pdu(exc)
            return
        if msg.name != "security_mode_command":
            self._discard(msg.name, "header type 3 is for the SECURITY MODE COMMAND only")
            return
        self._note("CNN -> UE security_mode_command")
        auth = self._auth
        step = 11 if auth is not None and auth.binding == KmeBindingIndicator.BOUND_TO_NEW else 2
        ksi = msg["nas_key_set_identifier"] & 0x07
        if auth is None or ksi != auth.ksi:
            self._smc_reject(EmmCause.SECURITY_MODE_REJECTED_UNSPECIFIED, "unknown NAS key set identifier", step)
            return
        if self._ctx is not None and self._ctx_auth is auth:
            # the context of this authentication is already in use: a retransmission (next
            # NAS COUNT) is answered again; anything else (a replay) is discarded.
            self._resend_smc_complete(pdu, msg, step)
            return
        enc_alg, int_alg = parse_nas_security_algorithms(msg["selected_nas_security_algorithms"])
        if enc_alg not in SUPPORTED_EEA or int_alg not in SUPPORTED_EIA:
            self._smc_reject(EmmCause.SECURITY_MODE_REJECTED_UNSPECIFIED, "algorithms not supported", step)
            return
        k_enc, k_int = kdf.nas_keys(auth.kasme, enc_alg, int_alg)
        ctx = NasSecurityContext(ksi, k_int, k_enc, int_alg, enc_alg)
        try:
            ctx.unprotect(pdu, DOWNLINK)
        except NasSecurityError:
            self._smc_reject(EmmCause.SECURITY_MODE_REJECTED_UNSPECIFIED, "MAC does not verify", step)
            return
        if not _replayed_capabilities_match(msg["replayed_ue_security_capabilities"]):
            self._smc_reject(EmmCause.UE_SECURITY_CAPABILITIES_MISMATCH, "replayed capabilities differ", step)
            return
        self._ctx = ctx
        self._ctx_auth = auth
        if auth.binding == KmeBindingIndicator.BOUND_TO_NEW and self.me.commit_pending():
            self._committed = True
            self._note("ME: new KME committed, previous deleted")
            if self._log is not None:
                self._event("kme_committed", 10, kme_fingerprint=self.me.current_fingerprint())
        self._smc_complete(msg, step)

    def _resend_smc_complete(self, pdu: bytes, msg: NasMessage, step: int) -> None:
        """A retransmitted SECURITY MODE COMMAND of the context already taken into use (the
        network's next NAS COUNT): answered again with that context, nothing re-derived."""
        assert self._ctx is not None
        try:
            self._ctx.unprotect(pdu, DOWNLINK)
        except NasSecurityError as exc:
            self._discard("security_mode_command", str(exc))
            return
        self._note("UE: security mode command retransmitted")
        self._smc_complete(msg, step)

    def _smc_complete(self, msg: NasMessage, step: int) -> None:
        """SECURITY MODE COMPLETE, with the IMEISV when asked, header type 4 (§5.4.3.3)."""
        assert self._ctx is not None
        imeisv = self.me.imeisv_identity if msg.get("imeisv_request") == _IMEISV_REQUESTED else None
        self._note("UE -> CNN security_mode_complete")
        self._actions.append(
            Send(self._ctx.protect(_smc_complete(imeisv), UPLINK, SecurityHeaderType.INTEGRITY_CIPHERED_NEW_CONTEXT))
        )
        if self._log is not None:
            self._event("security_mode_complete_sent", step, ksi=self._ctx.ksi, imeisv=imeisv is not None)

    def _smc_reject(self, cause: int, why: str, step: int) -> None:
        """SECURITY MODE REJECT (§5.4.3.5): the current context (if any) stays in use."""
        self._note(f"UE: security mode command refused ({why})")
        self._event("security_mode_reject_sent", step, warning=True, cause=int(cause), reason=why)
        self._send_plain(NasMessage("security_mode_reject", {"emm_cause": int(cause)}))

    def _kme_provisioning_command(self, msg: NasMessage) -> None:
        """KME PROVISIONING COMMAND (seed steps 6–8): decrypt, hold as pending, answer ME_Rsp."""
        try:
            rsp = self.me.receive_kme(msg["encrypted_kme"], msg["kme_scheme"], msg["nonce"], self.usim.imsi)
        except KmeDecryptError as exc:
            self._note(f"ME: {exc}")
            self._event("kme_decrypt_failed", 7, warning=True, reason=str(exc))
            self._status(EmmCause.PROTOCOL_ERROR_UNSPECIFIED, "kme_provisioning_command")
            return
        self._note("ME: KME decrypted, held as pending (previous kept)")
        self._event("kme_pending", 7)
        self._event("kme_provisioning_response_sent", 8)
        self._send_plain(NasMessage("kme_provisioning_response", {"me_rsp": rsp}))

    def _attach_accept(self, msg: NasMessage) -> None:
        """ATTACH ACCEPT (§5.5.1.2.4): keep the GUTI and TAI, answer ATTACH COMPLETE."""
        if self.kind != ATTACH:
            self._status(EmmCause.MESSAGE_TYPE_NOT_COMPATIBLE_WITH_PROTOCOL_STATE, msg.name)
            return
        self.usim.set_location(msg.get("guti"), _first_tai(msg.get("tai_list")))
        container = msg["esm_message_container"]
        ebi = container[0] >> 4 if container else 5
        self._send_encoded("attach_complete", _attach_complete(ebi if 5 <= ebi <= 15 else 5))
        self._finish("accepted")

    def _tau_accept(self, msg: NasMessage) -> None:
        """TRACKING AREA UPDATE ACCEPT (§5.5.3.2.4): a new GUTI is acknowledged by COMPLETE."""
        if self.kind != TAU:
            self._status(EmmCause.MESSAGE_TYPE_NOT_COMPATIBLE_WITH_PROTOCOL_STATE, msg.name)
            return
        guti = msg.get("guti")
        if guti is not None:
            self.usim.set_location(guti, _first_tai(msg.get("tai_list")))
            self._send_plain(NasMessage("tracking_area_update_complete", {}))
        self._finish("accepted")

    def _reject(self, msg: NasMessage) -> None:
        """ATTACH REJECT (§5.5.1.2.5) / TRACKING AREA UPDATE REJECT (§5.5.3.2.5)."""
        is_attach = msg.name == "attach_reject"
        if is_attach != (self.kind == ATTACH):
            self._status(EmmCause.MESSAGE_TYPE_NOT_COMPATIBLE_WITH_PROTOCOL_STATE, msg.name)
            return
        cause = int(msg["emm_cause"])
        if cause in (_USIM_INVALID if is_attach else _TAU_DELETE_GUTI):
            self.usim.forget_location()
        self._finish("rejected", cause)

    def _emm_status(self, msg: NasMessage) -> None:
        """EMM STATUS from the network (§5.7): logged, no state change."""
        self._event("emm_status_received", None, warning=True, cause=msg.get("emm_cause"))


#: Actions without parameters, shared (frozen).
_CANCEL_TIMER = SetTimer(None)
_RELEASE = Release()
def _replayed_capabilities_match(value: bytes) -> bool:
    """The replayed UE security capabilities name exactly the algorithms this UE supports."""
    try:
        return parse_ue_security_capability(value) == _CAPABILITY_SETS
    except ValueError:
        return False


@functools.lru_cache(maxsize=16)
def _attach_complete(ebi: int) -> bytes:
    """ATTACH COMPLETE (plain) with ACTIVATE DEFAULT EPS BEARER CONTEXT ACCEPT for bearer ``ebi``
    (5-15), encoded once per bearer identity: the message is the same for every UE."""
    accept = esm.activate_default_bearer_accept(ebi)
    return encode(NasMessage("attach_complete", {"esm_message_container": accept}))


@functools.lru_cache(maxsize=65536)  # the load harness's UEs of one worker
def _smc_complete(imeisv: bytes | None) -> bytes:
    """SECURITY MODE COMPLETE (plain), with the IMEISV identity value when given: the same
    octets for every procedure of an ME, so encoded once per IMEISV."""
    ies = {"imeisv": imeisv} if imeisv is not None else {}
    return encode(NasMessage("security_mode_complete", ies))


def _first_tai(tai_list: bytes | None) -> bytes | None:
    """The first TAI (PLMN ‖ TAC, 5 octets) of a TAI list value part (TS 24.301 §9.9.3.33):
    every list type starts with a PLMN identity and a TAC after its first octet."""
    if tai_list is None or len(tai_list) < 6:
        return None
    return bytes(tai_list[1:6])


_HANDLERS: dict[str, Any] = {
    "identity_request": UeProcedure._identity_request,
    "authentication_request": UeProcedure._authentication_request,
    "authentication_reject": UeProcedure._authentication_reject,
    "kme_provisioning_command": UeProcedure._kme_provisioning_command,
    "attach_accept": UeProcedure._attach_accept,
    "attach_reject": UeProcedure._reject,
    "tracking_area_update_accept": UeProcedure._tau_accept,
    "tracking_area_update_reject": UeProcedure._reject,
    "emm_status": UeProcedure._emm_status,
}
