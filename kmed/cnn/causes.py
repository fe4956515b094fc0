"""From an S6a outcome to the EMM cause of an Attach/TAU Reject (TS 29.272 Annex A, TS 24.301).

One table, :data:`S6A_TO_EMM`, keyed by ``(vendor, code)`` exactly as the answer carried it:
vendor 0 for a Result-Code (RFC 6733 §7.1), the Experimental-Result's Vendor-Id otherwise.
Looking codes up with their vendor matters: 5001 is DIAMETER_AVP_UNSUPPORTED as a Result-Code
but DIAMETER_ERROR_USER_UNKNOWN under vendor 10415.

Sources (docs/cnn.md gives the table with the reasoning):

- TS 29.272 Annex A, table A.1 ("Mapping from S6a error codes to NAS Cause Codes") for the
  3GPP Experimental-Result codes and DIAMETER_UNABLE_TO_COMPLY. The spec text could not be
  retrieved while writing this module; the values are those of the table as recalled, each
  corroborated by an independent MME (Open5GS' ``emm_cause_from_diameter``, which cites the same
  table, and the default mapping listed in Cisco StarOS' MME reference for 5420 and 5012).
- kmed's own codes (vendor 32473): a device the network refuses gets EMM #6 "Illegal ME"
  (TS 24.301 Annex A.1: "the ME used is not acceptable to the network"), never anything else,
  and #6 is never used to make a UE re-provision (a UE treats it as final, docs/procedure.md).
- Transport-level outcomes: no answer, a peer down, a malformed answer: #17 "Network failure";
  DIAMETER_TOO_BUSY (3004, RFC 6733 §7.1.3) is overload, hence #22 "Congestion".
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from kmed.diameter import dictionary as d
from kmed.nas.causes import EmmCause

__all__ = ["S6A_TO_EMM", "UNMAPPED_DEFAULT", "emm_cause_for_failure", "emm_cause_for_result"]

_G3 = d.VENDOR_3GPP
_K = d.VENDOR_KMED

#: (vendor, result code) -> EMM cause. Vendor 0 = Result-Code AVP.
S6A_TO_EMM: Mapping[tuple[int, int], EmmCause] = MappingProxyType({
    # TS 29.272 Annex A table A.1 (3GPP Experimental-Result codes).
    (_G3, d.DIAMETER_ERROR_USER_UNKNOWN): EmmCause.EPS_AND_NON_EPS_SERVICES_NOT_ALLOWED,  # #8
    (_G3, d.DIAMETER_ERROR_UNKNOWN_EPS_SUBSCRIPTION): EmmCause.NO_SUITABLE_CELLS_IN_TRACKING_AREA,  # #15
    (_G3, d.DIAMETER_ERROR_RAT_NOT_ALLOWED): EmmCause.ROAMING_NOT_ALLOWED_IN_THIS_TRACKING_AREA,  # #13
    (_G3, d.DIAMETER_ERROR_ROAMING_NOT_ALLOWED): EmmCause.PLMN_NOT_ALLOWED,  # #11
    (_G3, d.DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE): EmmCause.NETWORK_FAILURE,  # #17
    # Base Result-Codes an HSS or relay may answer with.
    (0, d.DIAMETER_UNABLE_TO_COMPLY): EmmCause.NETWORK_FAILURE,  # #17 (table A.1)
    (0, d.DIAMETER_TOO_BUSY): EmmCause.CONGESTION,  # #22: the HSS is overloaded
    (0, d.DIAMETER_UNABLE_TO_DELIVER): EmmCause.NETWORK_FAILURE,
    (0, d.DIAMETER_REALM_NOT_SERVED): EmmCause.NETWORK_FAILURE,
    (0, d.DIAMETER_AUTHORIZATION_REJECTED): EmmCause.NETWORK_FAILURE,
    # kmed (vendor 32473, docs/s6a.md): the device is refused -> #6 Illegal ME.
    (_K, d.DIAMETER_ERROR_KME_DEVICE_UNKNOWN): EmmCause.ILLEGAL_ME,
    (_K, d.DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED): EmmCause.ILLEGAL_ME,
    # A token the HSS does not accept is a network-side failure, not the device's fault: the
    # next attach mismatches and provisions again (docs/procedure.md).
    (_K, d.DIAMETER_ERROR_KME_TOKEN_INVALID): EmmCause.NETWORK_FAILURE,
    (_K, d.DIAMETER_ERROR_KME_CHECK_MISSING): EmmCause.NETWORK_FAILURE,
})

#: Any other failure (an unknown code, a protocol error): #17 Network failure.
UNMAPPED_DEFAULT = EmmCause.NETWORK_FAILURE


def emm_cause_for_result(vendor: int, code: int) -> EmmCause:
    """The EMM cause for a failed S6a answer whose result is ``code`` under ``vendor``
    (0 for a Result-Code AVP)."""
    return S6A_TO_EMM.get((vendor, code), UNMAPPED_DEFAULT)


def emm_cause_for_failure(kind: str) -> EmmCause:
    """The EMM cause when no usable answer came: ``kind`` is ``"timeout"``, ``"unavailable"``
    (no peer up) or ``"malformed"`` (an answer without the mandatory AVPs). All are #17."""
    del kind  # every transport-level failure is a network failure (TS 24.301 Annex A.1 #17)
    return EmmCause.NETWORK_FAILURE
