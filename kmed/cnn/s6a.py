"""The CNN's S6a requests and what it reads from the answers (TS 29.272 §7.2, docs/procedure.md).

Requests are :class:`kmed.diameter.message.Message` objects built from the dictionary names;
the Diameter client fills Origin-Host/Realm, Destination-Realm/Host and the identifiers.
Answers are read into small slotted records (:class:`AiaResult`, :class:`UlaResult`) or a
:class:`S6aFailure` carrying the EMM cause to send (:mod:`kmed.cnn.causes`).

AVP order follows the command ABNFs (TS 29.272 §7.2.5 AIR, §7.2.3 ULR); kmed's AVPs go in the
``*[AVP]`` tail.
"""

from __future__ import annotations

import functools
from typing import Any

from kmed.cnn.causes import emm_cause_for_failure, emm_cause_for_result
from kmed.diameter import dictionary as d
from kmed.diameter.codec import encode_avps
from kmed.diameter.message import AvpGroup, DecodeError, Message
from kmed.records import value_record

__all__ = [
    "AiaResult",
    "S6aFailure",
    "UlaResult",
    "Vector",
    "build_air",
    "build_ulr",
    "failure_for",
    "read_aia",
    "read_ula",
]

_VSAI = ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)])
_NO_STATE = ("Auth-Session-State", d.AUTH_SESSION_STATE_NO_STATE_MAINTAINED)
#: The AVPs after Session-Id that every AIR and ULR carries as they are: encoded once (a
#: request's items may be encoded AVPs; the octets on the wire are the same).
_HEAD = encode_avps([_VSAI, _NO_STATE])
_ONE_VECTOR_NOW = [("Number-Of-Requested-Vectors", 1), ("Immediate-Response-Preferred", 1)]
_REQ_INFO = encode_avps([("Requested-EUTRAN-Authentication-Info", _ONE_VECTOR_NOW)])
_KME_REQUEST = encode_avps([("KME-Request", d.KME_REQUEST_NEW)])
_RAT_EUTRAN = encode_avps([("RAT-Type", d.RAT_TYPE_EUTRAN)])
#: Command flags of AIR and ULR as the command table gives them (R, and P: TS 29.272 §7.2.3, §7.2.5).
_AIR_FLAGS = Message.request("AIR", d.APP_S6A, ()).flags
_ULR_FLAGS = Message.request("ULR", d.APP_S6A, ()).flags


@functools.lru_cache(maxsize=16)
def _plmn(plmn_id: bytes) -> bytes:
    """Visited-PLMN-Id, encoded (one per serving PLMN: a CNN has one)."""
    return encode_avps([("Visited-PLMN-Id", plmn_id)])


@functools.lru_cache(maxsize=64)
def _ulr_tail(flags: int, plmn_id: bytes) -> bytes:
    """RAT-Type, ULR-Flags, Visited-PLMN-Id of a ULR, encoded."""
    return _RAT_EUTRAN + encode_avps([("ULR-Flags", flags), ("Visited-PLMN-Id", plmn_id)])
_SCHEME_NAME = {d.KME_SCHEME_ECIES_PROFILE_A: "A", d.KME_SCHEME_ECIES_PROFILE_B: "B"}
_BINDINGS = frozenset({d.KME_BINDING_NOT_BOUND, d.KME_BINDING_BOUND_TO_CURRENT, d.KME_BINDING_BOUND_TO_NEW})


def _terminal(imei: str, software_version: str | None) -> tuple[str, list[Any]]:
    items: list[Any] = [("IMEI", imei)]
    if software_version is not None:
        items.append(("Software-Version", software_version))
    return ("Terminal-Information", items)


def build_air(
    session_id: str,
    imsi: str,
    plmn_id: bytes,
    *,
    kme_check: bytes | None = None,
    kme_check_identity: bytes | None = None,
    resync_info: bytes | None = None,
    kme_request: bool = False,
    imei: str | None = None,
    software_version: str | None = None,
) -> Message:
    """AIR (TS 29.272 §7.2.5) for one E-UTRAN vector.

    Step 2: with ``kme_check``/``kme_check_identity`` when the UE sent a KME_Check. Step 3:
    ``kme_request`` with Terminal-Information{IMEI, Software-Version}. ``resync_info`` is
    RAND ‖ AUTS (30 octets, §7.3.15) after a synch failure.
    """
    if resync_info is None:
        req_info: Any = _REQ_INFO
    else:
        req_info = ("Requested-EUTRAN-Authentication-Info",
                    [*_ONE_VECTOR_NOW, ("Re-Synchronization-Info", resync_info)])
    avps: list[Any] = [("Session-Id", session_id), _HEAD, ("User-Name", imsi), req_info, _plmn(bytes(plmn_id))]
    if kme_check is not None and kme_check_identity is not None:
        avps += [("KME-Check", kme_check), ("KME-Check-Identity", kme_check_identity)]
    if kme_request:
        if imei is None:
            raise ValueError("an AIR with KME-Request needs the IMEI (Terminal-Information)")
        avps += [_KME_REQUEST, _terminal(imei, software_version)]
    return Message(d.CMD_AIR, _AIR_FLAGS, d.APP_S6A, avps=avps)


def build_ulr(
    session_id: str,
    imsi: str,
    plmn_id: bytes,
    *,
    initial_attach: bool,
    imei: str | None,
    software_version: str | None,
    kme: bytes | None = None,
    kme_token: bytes | None = None,
) -> Message:
    """ULR (TS 29.272 §7.2.3): RAT-Type E-UTRAN, ULR-Flags (S6a indicator, and the initial
    attach indicator for an attach, §7.3.7), Visited-PLMN-Id, Terminal-Information; with the
    new KME and its KME-Token at seed step 12."""
    flags = d.ULR_S6A_S6D_INDICATOR | (d.ULR_INITIAL_ATTACH_INDICATOR if initial_attach else 0)
    avps: list[Any] = [("Session-Id", session_id), _HEAD, ("User-Name", imsi)]
    if imei is not None:
        avps.append(_terminal(imei, software_version))
    avps.append(_ulr_tail(flags, bytes(plmn_id)))
    if kme is not None:
        if kme_token is None or imei is None:
            raise ValueError("a ULR with a KME needs the KME-Token and the IMEI")
        avps += [("KME", kme), ("KME-Token", kme_token)]
    return Message(d.CMD_ULR, _ULR_FLAGS, d.APP_S6A, avps=avps)


# --- answers --------------------------------------------------------------------------------


@value_record
class S6aFailure:
    """An S6a exchange that failed: ``emm_cause`` goes into the Attach/TAU Reject.

    ``vendor``/``code`` are the result as carried (vendor 0 = Result-Code), or None when no
    usable answer came (``reason``: ``timeout``, ``unavailable``, ``malformed``).
    """

    emm_cause: int
    reason: str
    vendor: int | None = None
    code: int | None = None

    @property
    def result_name(self) -> str:
        if self.code is None:
            return self.reason
        return d.result_name(self.code, self.vendor or 0)


@value_record
class Vector:
    """One E-UTRAN vector (TS 29.272 §7.3.18) with kmed's KME-Binding; ``kasme`` is already
    bound by the HSS when ``binding`` says so. ``repr`` hides the secrets."""

    rand: bytes
    xres: bytes
    autn: bytes
    kasme: bytes
    binding: int

    def __repr__(self) -> str:
        return f"Vector(rand={self.rand.hex()}, binding={self.binding}, <xres, kasme redacted>)"


@value_record
class AiaResult:
    """A successful AIA: the first vector, KME-Status (step 2) and, after a KME-Request
    (step 4), the new KME's Encrypted-KME, scheme ("A"/"B"), KME and KME-Token."""

    vector: Vector
    kme_status: int | None = None
    encrypted_kme: bytes | None = None
    kme_scheme: str | None = None
    kme: bytes | None = None
    kme_token: bytes | None = None

    def __repr__(self) -> str:
        return f"AiaResult({self.vector!r}, kme_status={self.kme_status}, kme_scheme={self.kme_scheme})"


@value_record
class UlaResult:
    """A successful ULA (TS 29.272 §7.2.4)."""

    ula_flags: int | None = None


def failure_for(reason: str) -> S6aFailure:
    """The failure of an exchange that produced no usable answer (timeout, no peer, malformed)."""
    return S6aFailure(int(emm_cause_for_failure(reason)), reason)


def _result_failure(msg: Message, er: AvpGroup | None) -> S6aFailure | None:
    """None when the answer carries success, else the mapped failure (TS 29.272 §7.4), from its
    Experimental-Result group ``er`` (used when it has both Vendor-Id and the code) or else its
    Result-Code (read only then, as :meth:`Message.result` does)."""
    if er is not None:
        vendor, code = er.pick("Vendor-Id", "Experimental-Result-Code")
        if vendor is not None and code is not None:
            vendor, code = int(vendor), int(code)
            if d.is_success(code):
                return None
            return S6aFailure(int(emm_cause_for_result(vendor, code)), "result", vendor, code)
    rc = msg.get("Result-Code")
    if rc is None:
        return S6aFailure(int(emm_cause_for_failure("malformed")), "malformed")
    rc = int(rc)
    if d.is_success(rc):
        return None
    return S6aFailure(int(emm_cause_for_result(0, rc)), "result", 0, rc)


def read_aia(msg: Message, *, expect_kme: bool) -> AiaResult | S6aFailure:
    """Read an AIA. ``expect_kme``: the AIR had KME-Request (step 4), so Encrypted-KME,
    KME-Scheme, KME and KME-Token must be present and the vector BOUND_TO_NEW."""
    try:
        er, info = msg.pick("Experimental-Result", "Authentication-Info")
        failed = _result_failure(msg, er)
        if failed is not None:
            return failed
        vec = info.group("E-UTRAN-Vector") if info is not None else None
        if vec is None:
            return failure_for("malformed")
        rand, xres, autn, kasme, binding = vec.pick("RAND", "XRES", "AUTN", "KASME", "KME-Binding")
        if binding is None:
            binding = d.KME_BINDING_NOT_BOUND
        if (
            rand is None or len(rand) != 16 or autn is None or len(autn) != 16
            or xres is None or not 4 <= len(xres) <= 16 or kasme is None or len(kasme) != 32
            or binding not in _BINDINGS
        ):
            return failure_for("malformed")
        vector = Vector(bytes(rand), bytes(xres), bytes(autn), bytes(kasme), int(binding))
        if not expect_kme:
            status = msg.get("KME-Status")
            return AiaResult(vector, int(status) if status is not None else None)
        enc, scheme, kme, token = msg.pick("Encrypted-KME", "KME-Scheme", "KME", "KME-Token")
        scheme_name = _SCHEME_NAME.get(scheme) if scheme is not None else None
        if (
            enc is None or not enc or scheme_name is None or kme is None or len(kme) != 32
            or token is None or not token or binding != d.KME_BINDING_BOUND_TO_NEW
        ):
            return failure_for("malformed")
        return AiaResult(vector, None, bytes(enc), scheme_name, bytes(kme), bytes(token))
    except (DecodeError, ValueError, TypeError):
        return failure_for("malformed")


def read_ula(msg: Message) -> UlaResult | S6aFailure:
    """Read a ULA: success, or the mapped failure."""
    try:
        failed = _result_failure(msg, msg.group("Experimental-Result"))
        if failed is not None:
            return failed
        flags = msg.get("ULA-Flags")
        return UlaResult(int(flags) if flags is not None else None)
    except (DecodeError, ValueError, TypeError):
        return failure_for("malformed")
