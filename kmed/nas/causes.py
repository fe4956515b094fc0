"""EMM cause values, TS 24.301 clause 9.9.3.9 (table 9.9.3.9.1) and Annex A.

One table: the integer is what goes on the wire (the EMM cause IE value octet); the
name is the spec's wording in upper snake case.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["EmmCause", "cause_name"]


class EmmCause(IntEnum):
    """EMM cause values (TS 24.301 table 9.9.3.9.1)."""

    IMSI_UNKNOWN_IN_HSS = 2
    ILLEGAL_UE = 3
    IMEI_NOT_ACCEPTED = 5
    ILLEGAL_ME = 6
    EPS_SERVICES_NOT_ALLOWED = 7
    EPS_AND_NON_EPS_SERVICES_NOT_ALLOWED = 8
    UE_IDENTITY_CANNOT_BE_DERIVED = 9
    IMPLICITLY_DETACHED = 10
    PLMN_NOT_ALLOWED = 11
    TRACKING_AREA_NOT_ALLOWED = 12
    ROAMING_NOT_ALLOWED_IN_THIS_TRACKING_AREA = 13
    EPS_SERVICES_NOT_ALLOWED_IN_THIS_PLMN = 14
    NO_SUITABLE_CELLS_IN_TRACKING_AREA = 15
    MSC_TEMPORARILY_NOT_REACHABLE = 16
    NETWORK_FAILURE = 17
    CS_DOMAIN_NOT_AVAILABLE = 18
    ESM_FAILURE = 19
    MAC_FAILURE = 20
    SYNCH_FAILURE = 21
    CONGESTION = 22
    UE_SECURITY_CAPABILITIES_MISMATCH = 23
    SECURITY_MODE_REJECTED_UNSPECIFIED = 24
    NOT_AUTHORIZED_FOR_THIS_CSG = 25
    NON_EPS_AUTHENTICATION_UNACCEPTABLE = 26
    REDIRECTION_TO_5GCN_REQUIRED = 31
    REQUESTED_SERVICE_OPTION_NOT_AUTHORIZED = 35
    CS_SERVICE_TEMPORARILY_NOT_AVAILABLE = 39
    NO_EPS_BEARER_CONTEXT_ACTIVATED = 40
    SEVERE_NETWORK_FAILURE = 42
    SEMANTICALLY_INCORRECT_MESSAGE = 95
    INVALID_MANDATORY_INFORMATION = 96
    MESSAGE_TYPE_NON_EXISTENT = 97
    MESSAGE_TYPE_NOT_COMPATIBLE_WITH_PROTOCOL_STATE = 98
    IE_NON_EXISTENT = 99
    CONDITIONAL_IE_ERROR = 100
    MESSAGE_NOT_COMPATIBLE_WITH_PROTOCOL_STATE = 101
    PROTOCOL_ERROR_UNSPECIFIED = 111


def cause_name(value: int) -> str:
    """The cause's name, or ``"UNKNOWN_<n>"``; TS 24.301 Annex A.2 says an unknown cause is
    treated as #111 (or #17 for some procedures): that is the caller's decision."""
    try:
        return EmmCause(value).name
    except ValueError:
        return f"UNKNOWN_{value}"
