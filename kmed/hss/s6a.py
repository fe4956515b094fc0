"""S6a handlers of the HSS, sans I/O: a request and the store in, an :class:`Outcome` out.

- AIR/AIA (TS 29.272 §5.2.3.1, §7.2.5): E-UTRAN vectors, resynchronisation, and the KME
  steps of the seed: KME-Check (step 2) and KME-Request (steps 3-4).
- ULR/ULA (TS 29.272 §5.2.1.1, §7.2.3): location update, and storing the KME (step 13).

The handler reads the store synchronously and computes the answer; the writes it needs
(SQN reserved, KME stored, audit rows, location) come back in the outcome, and the daemon
sends the answer only after they are committed. Decisions are in docs/hss.md.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kmed.crypto import aka, ecies
from kmed.crypto import kme as kmefn
from kmed.crypto.devkeys import luhn_digit
from kmed.diameter import dictionary as d
from kmed.diameter.codec import encode_avps
from kmed.diameter.message import AvpGroup, DecodeError, Message
from kmed.diameter.s6a import VSAI, answer_head, authentication_info
from kmed.hss.sqn import SqnExhausted, SqnLedger, SqnScheme
from kmed.hss.store import AuditKme, SetLocation, SetSqn, StoreKme, StoreReader, Write
from kmed.hss.token import TokenInvalid, make_token, verify_token
from kmed.hss.vectors import Vector, VectorJob, make_vectors

_SCHEME_CODE = {"A": d.KME_SCHEME_ECIES_PROFILE_A, "B": d.KME_SCHEME_ECIES_PROFILE_B}
_NO_STATE = ("Auth-Session-State", d.AUTH_SESSION_STATE_NO_STATE_MAINTAINED)
_BINDING_NAMES = dict(d.avp("KME-Binding").values)
_STATUS_NAMES = dict(d.avp("KME-Status").values)
#: The "result" of a successful request's log event (HssService counts it without parsing the answer).
SUCCESS_NAME = d.result_name(d.DIAMETER_SUCCESS)


@dataclass(frozen=True, slots=True)
class HssPolicy:
    """The ``[hss]`` settings the handlers apply (kmed/config.py HSS_SCHEMA)."""

    max_vectors: int = 5
    ind_bits: int = 5
    bind_current_kme: bool = True
    kme_token_lifetime_s: float = 300.0
    allowed_rat_types: frozenset[int] = frozenset({d.RAT_TYPE_EUTRAN})
    enforce_pair_on_ulr: bool = True


@dataclass(slots=True)
class Outcome:
    """What to do with one request.

    ``answer`` is sent once ``writes`` are committed; if a :class:`StoreKme` among them did
    not take effect (a newer KME won a race), ``refused`` is sent instead. ``reserved`` is
    the IMSI whose SQN reservation the daemon settles in the ledger after the commit.
    ``event`` holds the log fields (no secrets).
    """

    answer: Message | None
    writes: Sequence[Write | VectorJob] = field(default_factory=list)
    refused: Message | None = None
    reserved: str | None = None
    event: dict[str, Any] = field(default_factory=dict)
    #: With ``defer_vectors``: the AVPs that follow Authentication-Info in the AIA. ``answer``
    #: is then None and the last of ``writes`` is a :class:`VectorJob`, whose vectors (the last
    #: of the commit's results) :meth:`S6aHandlers.aia` makes the answer with.
    kme_avps: list[Any] | None = None


class _Reject(Exception):
    """Raised inside a handler to answer with an error at once."""

    def __init__(self, answer: Message, outcome: str, writes: list[Write] | None = None) -> None:
        super().__init__(outcome)
        self.answer = answer
        self.outcome = outcome
        self.writes = writes or []


def now_us() -> int:
    return time.time_ns() // 1000


def normalise_imei(value: str) -> str | None:
    """A 15-digit IMEI from the IMEI AVP: 15 digits as they are, 14 digits completed with
    their Luhn check digit (TS 23.003 §6.2.1); None for anything else."""
    if not value.isdigit() or not value.isascii():
        return None
    if len(value) == 15:
        return value
    if len(value) == 14:
        return value + str(luhn_digit(value))
    return None


def is_imsi(value: str) -> bool:
    return value.isascii() and value.isdigit() and 6 <= len(value) <= 15


class S6aHandlers:
    """The HSS's S6a request handlers over a :class:`StoreReader` (see module doc)."""

    def __init__(
        self,
        store: StoreReader,
        token_key: bytes,
        origin_host: str,
        origin_realm: str,
        policy: HssPolicy | None = None,
        ledger: SqnLedger | None = None,
        clock_us: Callable[[], int] = now_us,
        defer_vectors: bool = False,
    ) -> None:
        self.store = store
        #: AIR vectors made by the group-commit writer (kmed.hss.vectors), not here.
        self.defer_vectors = defer_vectors
        self.policy = policy or HssPolicy()
        self.ledger = ledger if ledger is not None else SqnLedger()
        self.scheme = SqnScheme(self.policy.ind_bits)
        self._token_key = token_key
        self._origin = [("Origin-Host", origin_host), ("Origin-Realm", origin_realm)]
        # Encoded once (equal to the server node's LocalNode.origin_avps: the peer layer then
        # sends the answer as it is, without looking for Origin-Host and Origin-Realm).
        self._origin_avps = encode_avps(self._origin)
        self._clock_us = clock_us
        self._last_issued = 0
        self._lifetime_us = int(self.policy.kme_token_lifetime_s * 1_000_000)

    # --- dispatch -------------------------------------------------------------------

    def handle(self, req: Message, peer: str) -> Outcome:
        """Answer one S6a request (anything but AIR and ULR: 3001, RFC 6733 §7.1.3)."""
        code = req.command_code
        try:
            if code == d.CMD_AIR:
                return self._air(req, peer)
            if code == d.CMD_ULR:
                return self._ulr(req, peer)
        except DecodeError as err:  # a value that does not convert (bad UTF-8, wrong size)
            failed = [err.failed_avp] if err.failed_avp is not None else None
            answer = self.result_answer(req, err.result_code, failed)
            return Outcome(answer, event=self._event(req, "invalid_avp", answer))
        answer = self.result_answer(req, d.DIAMETER_COMMAND_UNSUPPORTED)
        return Outcome(answer, event=self._event(req, "command_unsupported", answer))

    @staticmethod
    def _event(req: Message, outcome: str, answer: Message | None = None, **fields: Any) -> dict[str, Any]:
        """Log fields of a request's outcome (``result`` named from ``answer`` when given)."""
        event = {"event": req.name.lower(), "outcome": outcome, **fields}
        if answer is not None:
            res = answer.result()
            if res is not None:
                event["result"] = d.result_name(res[1], res[0])
        return event

    # --- answers --------------------------------------------------------------------

    def result_answer(self, req: Message, code: int, failed: list[Any] | None = None) -> Message:
        """An answer with Result-Code ``code`` (E bit for 3xxx) and an optional Failed-AVP."""
        avps: list[Any] = [answer_head(code), self._origin_avps]
        if failed:
            avps.append(("Failed-AVP", failed))
        return Message.answer_to(req, avps, error=d.is_protocol_error(code))

    def experimental_answer(self, req: Message, vendor: int, code: int) -> Message:
        """An answer with Experimental-Result {Vendor-Id, Experimental-Result-Code}."""
        er = ("Experimental-Result", [("Vendor-Id", vendor), ("Experimental-Result-Code", code)])
        return Message.answer_to(req, [VSAI, er, _NO_STATE, self._origin_avps])

    def _missing(self, req: Message, example: tuple[str, Any]) -> _Reject:
        """5005 DIAMETER_MISSING_AVP with an example of the missing AVP (RFC 6733 §7.5)."""
        return _Reject(self.result_answer(req, d.DIAMETER_MISSING_AVP, [example]), "missing_avp")

    def _invalid(self, req: Message, name: str, group: AvpGroup | None = None) -> _Reject:
        raw = (group if group is not None else req).raw(name)
        return _Reject(
            self.result_answer(req, d.DIAMETER_INVALID_AVP_VALUE, [raw] if raw is not None else None), "invalid_avp"
        )

    def _user_unknown(self, req: Message) -> _Reject:
        return _Reject(
            self.experimental_answer(req, d.VENDOR_3GPP, d.DIAMETER_ERROR_USER_UNKNOWN), "user_unknown"
        )

    # --- common reads ---------------------------------------------------------------

    def _imsi(self, req: Message) -> str:
        imsi = req.get("User-Name")
        if imsi is None:
            raise self._missing(req, ("User-Name", ""))
        return str(imsi)

    def _plmn(self, req: Message, plmn: bytes | None = None) -> bytes:
        """Visited-PLMN-Id, checked (read from ``req`` unless given)."""
        if plmn is None:
            plmn = req.get("Visited-PLMN-Id")
        if plmn is None:
            raise self._missing(req, ("Visited-PLMN-Id", bytes(3)))
        if len(plmn) != 3:  # TS 29.272 §7.3.9: MCC and MNC, 3 octets as TS 24.008 §10.5.1.13
            raise self._invalid(req, "Visited-PLMN-Id")
        return bytes(plmn)

    def _terminal(self, req: Message) -> tuple[str | None, str | None]:
        """(IMEI normalised to 15 digits, Software-Version) from Terminal-Information."""
        term = req.group("Terminal-Information")
        if term is None:
            return None, None
        imei_raw = term.get("IMEI")
        sv = term.get("Software-Version")
        if imei_raw is None:
            return None, sv
        imei = normalise_imei(str(imei_raw))
        if imei is None:
            raise self._invalid(req, "IMEI", term)
        return imei, sv

    def _audit_refused(self, imsi: str, imei: str | None, reason: str, peer: str, kme: bytes | None = None,
                       issued_at: int | None = None) -> AuditKme:
        fp = kmefn.fingerprint(kme) if kme else None
        return AuditKme(self._clock_us(), "refused", imsi, imei, fp, issued_at, reason, peer)

    def _issued_at(self) -> int:
        """A strictly increasing issue time (µs): two KMEs never share an issued_at."""
        t = max(self._clock_us(), self._last_issued + 1)
        self._last_issued = t
        return t

    # --- AIR (seed steps 2 and 3-4) -----------------------------------------------------

    def _air(self, req: Message, peer: str) -> Outcome:
        imsi = "?"
        # One read for the request's AVPs, in the order they are checked (a value that does not
        # convert raises DecodeError: 5004/5014 from handle()).
        kme_request, user, plmn_value, info, check = req.pick(
            "KME-Request", "User-Name", "Visited-PLMN-Id", "Requested-EUTRAN-Authentication-Info", "KME-Check")
        step = 4 if kme_request is not None else 2
        try:
            if user is None:
                raise self._missing(req, ("User-Name", ""))
            imsi = str(user)
            plmn = self._plmn(req, plmn_value)
            # Absent: kmed answers one vector (a CNN asking for none would not send an AIR).
            wanted, resync = (None, None) if info is None else info.pick(
                "Number-Of-Requested-Vectors", "Re-Synchronization-Info")
            count = max(1, min(1 if wanted is None else int(wanted), self.policy.max_vectors))
            # The KME held matters only to compare a KME-Check (step 2).
            if step != 2:
                check = None
            need_kme = check is not None
            sub = self.store.subscriber(imsi, need_kme) if is_imsi(imsi) else None
            if sub is None:
                raise self._user_unknown(req)
            sqn_he = self.ledger.current(imsi, sub.sqn)
            outcome = "ok"
            if resync is not None:
                sqn_he = self._resync(req, info, sub.k, sub.opc, sqn_he, resync)
                outcome = "resync"
            writes: list[Write | VectorJob] = []
            kme_avps: list[Any] = []
            bind_key: bytes | None
            status = None
            if step == 4:
                bind_key, binding = self._issue_kme(req, imsi, peer, writes, kme_avps)
                outcome = "kme_issued"
            else:
                bind_key, binding, status = self._check_kme(req, check, sub.kme.kme if sub.kme else None)
                kme_avps.append(_KME_STATUS_AVP[status])
            try:
                sqns = self.scheme.allocate(sqn_he, count)
            except SqnExhausted:
                raise _Reject(
                    self.experimental_answer(req, d.VENDOR_3GPP, d.DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE),
                    "sqn_exhausted",
                ) from None
            self.ledger.reserve(imsi, sqns[-1])
            writes.append(SetSqn(imsi, sqns[-1]))
            event = {"event": "air", "outcome": outcome, "imsi": imsi, "step": step, "vectors": count,
                     "sqn": sqns[-1], "kme_binding": _BINDING_NAMES[binding], "result": SUCCESS_NAME}
            if status is not None:
                event["kme_status"] = _STATUS_NAMES[status]
            if self.defer_vectors:
                writes.append(VectorJob(imsi, sub.k, sub.opc, sub.amf, plmn, sqns, bind_key, binding))
                return Outcome(None, writes, reserved=imsi, event=event, kme_avps=kme_avps)
            vectors = make_vectors(sub.k, sub.opc, sub.amf, plmn, sqns, bind_key, binding)
            return Outcome(self.aia(req, kme_avps, vectors), writes, reserved=imsi, event=event)
        except _Reject as rej:
            event = self._event(req, rej.outcome, rej.answer, imsi=imsi, step=step)
            return Outcome(rej.answer, rej.writes, event=event)

    def aia(self, req: Message, kme_avps: list[Any], vectors: Sequence[Vector]) -> Message:
        """The successful AIA: Authentication-Info with ``vectors``, then ``kme_avps``."""
        return Message.answer_to(req, [_SUCCESS_HEAD, self._origin_avps, authentication_info(vectors), *kme_avps])

    def _resync(self, req: Message, info: AvpGroup | None, k: bytes, opc: bytes, sqn_he: int,
                resync: bytes) -> int:
        """TS 33.102 §6.3.5: verify MAC-S in AUTS, then SEQ_HE := SEQ_MS (docs/hss.md)."""
        if len(resync) != 30:  # TS 29.272 §7.3.15: RAND (16) ‖ AUTS (14)
            raise self._invalid(req, "Re-Synchronization-Info", info)
        try:
            sqn_ms = aka.verify_auts(k, opc, resync[:16], resync[16:])
        except aka.MacFailure:
            # TS 29.272 §7.4.4.1: no vectors can be given; SQN_HE is left unchanged.
            raise _Reject(
                self.experimental_answer(req, d.VENDOR_3GPP, d.DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE),
                "resync_mac_failure",
            ) from None
        return self.scheme.resync(sqn_he, sqn_ms)

    def _check_kme(self, req: Message, check: bytes | None, held: bytes | None) -> tuple[bytes | None, int, int]:
        """Seed step 2: compare KME-Check with our own over KME-Check-Identity.

        Returns (key the vectors are bound to, KME-Binding, KME-Status). No KME-Check (the UE
        holds no KME), no KME held here, or a mismatch: PROVISIONING_REQUIRED, not bound.
        """
        identity = req.get("KME-Check-Identity")
        if (check is None) != (identity is None):
            raise _Reject(
                self.experimental_answer(req, d.VENDOR_KMED, d.DIAMETER_ERROR_KME_CHECK_MISSING), "kme_check_missing"
            )
        match = False
        if check is not None and held is not None:
            if not 1 <= len(identity) <= 255:
                raise self._invalid(req, "KME-Check-Identity")
            match = hmac.compare_digest(kmefn.kme_check(held, identity), check)
        if not match:
            return None, d.KME_BINDING_NOT_BOUND, d.KME_STATUS_PROVISIONING_REQUIRED
        if self.policy.bind_current_kme:
            return held, d.KME_BINDING_BOUND_TO_CURRENT, d.KME_STATUS_MATCH
        return None, d.KME_BINDING_NOT_BOUND, d.KME_STATUS_MATCH

    def _issue_kme(self, req: Message, imsi: str, peer: str, writes: list[Write | VectorJob],
                   kme_avps: list[Any]) -> tuple[bytes, int]:
        """Seed step 4: a new KME for a known device of an allowed pair, ECIES-encrypted to
        the IMEI's key, with its token. The HSS keeps nothing but the audit row."""
        imei, _ = self._terminal(req)
        if imei is None:
            raise self._missing(req, ("Terminal-Information", [("IMEI", "0" * 15)]))
        device = self.store.device(imei)
        if device is None:
            raise _Reject(
                self.experimental_answer(req, d.VENDOR_KMED, d.DIAMETER_ERROR_KME_DEVICE_UNKNOWN), "device_unknown",
                [self._audit_refused(imsi, imei, "device unknown", peer)],
            )
        if not self.store.pair_allowed(imsi, imei):
            raise _Reject(
                self.experimental_answer(req, d.VENDOR_KMED, d.DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED),
                "pair_not_allowed", [self._audit_refused(imsi, imei, "pair not allowed", peer)],
            )
        new = kmefn.new_kme()
        issued_at = self._issued_at()
        encrypted = ecies.encrypt(device.profile, device.public_key, new)
        token = make_token(self._token_key, imsi, imei, new, issued_at)
        writes.append(AuditKme(issued_at, "issued", imsi, imei, kmefn.fingerprint(new), issued_at, None, peer))
        kme_avps += [
            ("Encrypted-KME", encrypted), ("KME-Scheme", _SCHEME_CODE[device.profile]),
            ("KME", new), ("KME-Token", token),
        ]
        return new, d.KME_BINDING_BOUND_TO_NEW

    # --- ULR (seed steps 12-13) -----------------------------------------------------

    def _ulr(self, req: Message, peer: str) -> Outcome:
        imsi = "?"
        kme = req.get("KME")
        step = 13 if kme is not None else None
        try:
            imsi = self._imsi(req)
            rat = req.get("RAT-Type")
            if rat is None:
                raise self._missing(req, ("RAT-Type", d.RAT_TYPE_EUTRAN))
            flags = req.get("ULR-Flags")
            if flags is None:
                raise self._missing(req, ("ULR-Flags", 0))
            plmn = self._plmn(req)
            sub = self.store.subscriber(imsi, kme is not None) if is_imsi(imsi) else None
            if sub is None:
                raise self._user_unknown(req)
            if rat not in self.policy.allowed_rat_types:
                raise _Reject(
                    self.experimental_answer(req, d.VENDOR_3GPP, d.DIAMETER_ERROR_RAT_NOT_ALLOWED), "rat_not_allowed"
                )
            imei, sv = self._terminal(req)
            writes: list[Write] = []
            refused = None
            outcome = "ok"
            if kme is not None:
                outcome = self._store_kme(req, imsi, imei, bytes(kme), sub.kme, peer, writes)
                if writes:
                    refused = self._token_refused(req)
            elif imei is not None and self.policy.enforce_pair_on_ulr and not self.store.pair_allowed(imsi, imei):
                raise _Reject(
                    self.experimental_answer(req, d.VENDOR_KMED, d.DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED),
                    "pair_not_allowed",
                )
            origin_host = req.get("Origin-Host") or peer
            origin_realm = req.get("Origin-Realm") or ""
            writes.append(SetLocation(imsi, origin_host, origin_realm, plmn, rat, imei, sv, self._clock_us()))
            avps: list[Any] = [_SUCCESS_HEAD, self._origin_avps, _ULA_FLAGS_AVP]
            if not flags & d.ULR_SKIP_SUBSCRIBER_DATA:
                avps.append(_SUBSCRIPTION_DATA_AVP)
            event = self._event(req, outcome, imsi=imsi, imei=imei, result=SUCCESS_NAME)
            if step is not None:
                event["step"] = step
            return Outcome(Message.answer_to(req, avps), writes, refused=refused, event=event)
        except _Reject as rej:
            event = self._event(req, rej.outcome, rej.answer, imsi=imsi)
            if step is not None:
                event["step"] = step
            return Outcome(rej.answer, rej.writes, event=event)

    def _token_refused(self, req: Message) -> Message:
        return self.experimental_answer(req, d.VENDOR_KMED, d.DIAMETER_ERROR_KME_TOKEN_INVALID)

    def _store_kme(self, req: Message, imsi: str, imei: str | None, kme: bytes, held: Any, peer: str,
                   writes: list[Write]) -> str:
        """Seed step 13: store the KME only if the pair is allowed and the KME-Token proves this
        HSS issued this KME for this IMSI and IMEI, recently, after the KME held (docs/hss.md)."""
        if imei is None:
            raise self._missing(req, ("Terminal-Information", [("IMEI", "0" * 15)]))
        if len(kme) != kmefn.KME_LEN:
            raise self._invalid(req, "KME")

        def refuse(code: int, outcome: str, reason: str, issued_at: int | None = None) -> _Reject:
            audit = self._audit_refused(imsi, imei, reason, peer, kme, issued_at)
            return _Reject(self.experimental_answer(req, d.VENDOR_KMED, code), outcome, [audit])

        if not self.store.pair_allowed(imsi, imei):
            raise refuse(d.DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED, "pair_not_allowed", "pair not allowed")
        token = req.get("KME-Token")
        if token is None:
            raise refuse(d.DIAMETER_ERROR_KME_TOKEN_INVALID, "token_invalid", "no KME-Token")
        now = self._clock_us()
        try:
            issued_at = verify_token(self._token_key, imsi, imei, kme, bytes(token), now, self._lifetime_us)
        except TokenInvalid as exc:
            raise refuse(d.DIAMETER_ERROR_KME_TOKEN_INVALID, "token_invalid", f"token {exc.reason}") from None
        if held is not None and issued_at <= held.issued_at:
            if issued_at == held.issued_at and held.imei == imei and hmac.compare_digest(held.kme, kme):
                return "kme_already_stored"  # a retransmitted ULR (T bit, failover): same answer
            raise refuse(d.DIAMETER_ERROR_KME_TOKEN_INVALID, "token_replayed",
                         "token older than the KME held (replay)", issued_at)
        writes.append(StoreKme(imsi, imei, kme, issued_at, now, kmefn.fingerprint(kme), peer))
        return "kme_stored"


#: A minimal valid Subscription-Data (TS 29.272 §7.3.2): service granted, packet only, an
#: AMBR, and one default APN "internet" (IPv4, QCI 9, ARP 8).
_AMBR = ("AMBR", [("Max-Requested-Bandwidth-UL", 100_000_000), ("Max-Requested-Bandwidth-DL", 100_000_000)])
SUBSCRIPTION_DATA: list[Any] = [
    ("Subscriber-Status", 0),  # SERVICE_GRANTED
    ("Network-Access-Mode", 2),  # ONLY_PACKET
    _AMBR,
    ("APN-Configuration-Profile", [
        ("Context-Identifier", 1),
        ("All-APN-Configurations-Included-Indicator", 0),  # All_APN_CONFIGURATIONS_INCLUDED
        ("APN-Configuration", [
            ("Context-Identifier", 1),
            ("PDN-Type", 0),  # IPv4
            ("Service-Selection", "internet"),
            ("EPS-Subscribed-QoS-Profile", [
                ("QoS-Class-Identifier", 9),
                ("Allocation-Retention-Priority", [
                    ("Priority-Level", 8),
                    ("Pre-emption-Capability", 1),  # DISABLED
                    ("Pre-emption-Vulnerability", 0),  # ENABLED
                ]),
            ]),
            _AMBR,
        ]),
    ]),
]

# Encoded once: the constant parts of the answers (kmed.diameter.s6a).
_SUCCESS_HEAD = answer_head(d.DIAMETER_SUCCESS)
_KME_STATUS_AVP = {v: encode_avps([("KME-Status", v)]) for v in _STATUS_NAMES}
_ULA_FLAGS_AVP = encode_avps([("ULA-Flags", d.ULA_SEPARATION_INDICATION)])
_SUBSCRIPTION_DATA_AVP = encode_avps([("Subscription-Data", SUBSCRIPTION_DATA)])
