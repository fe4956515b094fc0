"""The EMM messages kmed speaks, as declarative tables laid out like TS 24.301 clause 8.2.

Each message is its spec table: ordered IEs with IEI (None in the imperative part), format,
presence and the spec's length column (whole IE, in octets, as printed in the tables: "1/2",
"17", "5-12", "5-n"); the codec derives the value-part limits. IE names are the spec's names in
snake case (``eps_mobile_identity``, ``rand``, ``autn``, ``kme_check``...). Optional IEs kmed
does not interpret are declared with a raw value type so that they are skipped, re-encoded and
round-tripped exactly; IEs unknown to a table are skipped per TS 24.301 §9.9.1.

Checked against TS 24.301 V19.6.0 (tables 8.2.x.1) and Release 18 table 9.8.1 (message types);
the two new messages and the two new IEIs are documented in docs/ue-link.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from kmed.nas.ies import (
    IEI_KME_BINDING_INDICATOR,
    IEI_KME_CHECK,
    KME_BINDING,
    KME_SCHEME,
    SPARE_HALF,
    Format,
    Presence,
    ValueType,
    nibble,
    octets,
    uint8,
)

__all__ = ["MESSAGES", "MESSAGES_BY_NAME", "MESSAGES_BY_TYPE", "IESpec", "MessageSpec", "MessageType"]

F, P = Format, Presence


class MessageType(IntEnum):
    """EMM message types, TS 24.301 table 9.8.1, plus kmed's two (docs/ue-link.md)."""

    ATTACH_REQUEST = 0x41
    ATTACH_ACCEPT = 0x42
    ATTACH_COMPLETE = 0x43
    ATTACH_REJECT = 0x44
    DETACH_REQUEST = 0x45
    DETACH_ACCEPT = 0x46
    TRACKING_AREA_UPDATE_REQUEST = 0x48
    TRACKING_AREA_UPDATE_ACCEPT = 0x49
    TRACKING_AREA_UPDATE_COMPLETE = 0x4A
    TRACKING_AREA_UPDATE_REJECT = 0x4B
    AUTHENTICATION_REQUEST = 0x52
    AUTHENTICATION_RESPONSE = 0x53
    AUTHENTICATION_REJECT = 0x54
    IDENTITY_REQUEST = 0x55
    IDENTITY_RESPONSE = 0x56
    AUTHENTICATION_FAILURE = 0x5C
    SECURITY_MODE_COMMAND = 0x5D
    SECURITY_MODE_COMPLETE = 0x5E
    SECURITY_MODE_REJECT = 0x5F
    EMM_STATUS = 0x60
    # kmed: unassigned in TS 24.301 table 9.8.1 (Rel-18/19: 0x6A..0x7F free)
    KME_PROVISIONING_COMMAND = 0x7A
    KME_PROVISIONING_RESPONSE = 0x7B


@dataclass(frozen=True, slots=True)
class IESpec:
    """One row of a message table."""

    name: str
    iei: int | None  # full octet; a type 1 IEI "C-" is written 0xC0
    fmt: Format
    presence: Presence
    length: str  # the spec's length column, whole IE
    vtype: ValueType
    min_len: int = field(init=False)  # value part, octets (0 for half-octet values)
    max_len: int = field(init=False)

    def __post_init__(self) -> None:
        overhead = {F.T: 1, F.V: 0, F.TV: 1, F.LV: 1, F.TLV: 2, F.LV_E: 2, F.TLV_E: 3}[self.fmt]
        if self.length in ("1/2",) or (self.vtype.half and self.fmt is F.TV):
            lo = hi = 0
        else:
            lo_s, _, hi_s = self.length.partition("-")
            lo = int(lo_s) - overhead
            hi = (0xFFFF if self.fmt in (F.LV_E, F.TLV_E) else 0xFF) if hi_s == "n" else int(hi_s or lo_s) - overhead
        object.__setattr__(self, "min_len", lo)
        object.__setattr__(self, "max_len", hi)
        if self.vtype.fixed is not None and not self.vtype.half and not lo <= self.vtype.fixed <= hi:
            raise ValueError(f"{self.name}: value type of {self.vtype.fixed} octets vs length {self.length}")


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """A message table: name (snake case), type, clause, direction (UL to network, DL to UE)."""

    name: str
    message_type: int
    ref: str
    direction: str
    ies: tuple[IESpec, ...]


def _ie(name: str, iei: int | None, fmt: Format, presence: Presence, length: str, vtype: ValueType) -> IESpec:
    return IESpec(name, iei, fmt, presence, length, vtype)


def _spare() -> IESpec:
    return _ie("spare_half_octet", None, F.V, P.M, "1/2", SPARE_HALF)


# --- value types (TS 24.301 §9.9 clause numbers) ---------------------------------------------
KSI = nibble("NAS key set identifier", "9.9.3.21")
EPS_ATTACH_TYPE = nibble("EPS attach type", "9.9.3.11", bits=3)
EPS_ATTACH_RESULT = nibble("EPS attach result", "9.9.3.10", bits=3)
EPS_UPDATE_TYPE = nibble("EPS update type", "9.9.3.14")
EPS_UPDATE_RESULT = nibble("EPS update result", "9.9.3.13", bits=3)
DETACH_TYPE = nibble("Detach type", "9.9.3.7")
IDENTITY_TYPE_2 = nibble("Identity type 2", "9.9.3.17", bits=3)
IMEISV_REQUEST = nibble("IMEISV request", "9.9.3.18", bits=3)
TYPE1 = nibble("type 1 IE value", "9.9")
EPS_MOBILE_IDENTITY = octets("EPS mobile identity", "9.9.3.12")
MOBILE_IDENTITY = octets("Mobile identity", "9.9.2.3")
UE_NETWORK_CAPABILITY = octets("UE network capability", "9.9.3.34")
UE_SECURITY_CAPABILITY = octets("UE security capability", "9.9.3.36")
ESM_CONTAINER = octets("ESM message container", "9.9.3.15")
TAI_LIST = octets("Tracking area identity list", "9.9.3.33")
RAND = octets("Authentication parameter RAND", "9.9.3.3", fixed=16)
AUTN = octets("Authentication parameter AUTN", "9.9.3.2", fixed=16)
RES = octets("Authentication response parameter", "9.9.3.4")
AUTS = octets("Authentication failure parameter", "9.9.3.1", fixed=14)
EMM_CAUSE = uint8("EMM cause", "9.9.3.9")
GPRS_TIMER = uint8("GPRS timer", "9.9.3.16")
NAS_SECURITY_ALGORITHMS = uint8("NAS security algorithms", "9.9.3.23")
RAW = octets("value part (not interpreted by kmed)", "9.9")
KME_CHECK = octets("KME_Check", "kmed", fixed=16)
NONCE_128 = octets("Nonce (128 bits)", "kmed", fixed=16)
ME_RSP = octets("ME_Rsp", "kmed", fixed=16)
ENCRYPTED_KME = octets("Encrypted KME (ECIES output, TS 33.501 C.3)", "kmed")

_kme_check = _ie("kme_check", IEI_KME_CHECK, F.TLV, P.O, "18", KME_CHECK)

# IEs that Attach Request (§8.2.4) and TAU Request (§8.2.29) both carry, in the same order
# (between them: device properties and old GUTI type, in an order of their own per message).
_REQUEST_MS_IES = (
    _ie("ms_network_capability", 0x31, F.TLV, P.O, "4-10", RAW),
    _ie("old_location_area_identification", 0x13, F.TV, P.O, "6", RAW),
    _ie("tmsi_status", 0x90, F.TV, P.O, "1", TYPE1),
    _ie("mobile_station_classmark_2", 0x11, F.TLV, P.O, "5", RAW),
    _ie("mobile_station_classmark_3", 0x20, F.TLV, P.O, "2-34", RAW),
    _ie("supported_codecs", 0x40, F.TLV, P.O, "5-n", RAW),
    _ie("additional_update_type", 0xF0, F.TV, P.O, "1", TYPE1),
    _ie("voice_domain_preference_and_ue_usage_setting", 0x5D, F.TLV, P.O, "3", RAW),
)
_REQUEST_LATER_IES = (
    _ie("ms_network_feature_support", 0xC0, F.TV, P.O, "1", TYPE1),
    _ie("tmsi_based_nri_container", 0x10, F.TLV, P.O, "4", RAW),
    _ie("t3324_value", 0x6A, F.TLV, P.O, "3", RAW),
    _ie("t3412_extended_value", 0x5E, F.TLV, P.O, "3", RAW),
    _ie("extended_drx_parameters", 0x6E, F.TLV, P.O, "3", RAW),
    _ie("ue_additional_security_capability", 0x6F, F.TLV, P.O, "6", RAW),
    _ie("ue_status", 0x6D, F.TLV, P.O, "3", RAW),
    _ie("additional_information_requested", 0x17, F.TV, P.O, "2", RAW),
    _ie("n1_ue_network_capability", 0x32, F.TLV, P.O, "3-15", RAW),
    _ie("ue_radio_capability_id_availability", 0x34, F.TLV, P.O, "3", RAW),
    _ie("requested_wus_assistance_information", 0x35, F.TLV, P.O, "3", RAW),
    _ie("drx_parameter_in_nb_s1_mode", 0x36, F.TLV, P.O, "3", RAW),
    _ie("requested_imsi_offset", 0x38, F.TLV, P.O, "4", RAW),
)

# IEs that Attach Accept (§8.2.1) and TAU Accept (§8.2.26) both carry, in the same order.
_ACCEPT_IES = (
    _ie("location_area_identification", 0x13, F.TV, P.O, "6", RAW),
    _ie("ms_identity", 0x23, F.TLV, P.O, "7-10", MOBILE_IDENTITY),
    _ie("emm_cause", 0x53, F.TV, P.O, "2", EMM_CAUSE),
    _ie("t3402_value", 0x17, F.TV, P.O, "2", GPRS_TIMER),
    _ie("t3423_value", 0x59, F.TV, P.O, "2", GPRS_TIMER),
    _ie("equivalent_plmns", 0x4A, F.TLV, P.O, "5-47", RAW),
    _ie("emergency_number_list", 0x34, F.TLV, P.O, "5-50", RAW),
    _ie("eps_network_feature_support", 0x64, F.TLV, P.O, "3-5", RAW),
    _ie("additional_update_result", 0xF0, F.TV, P.O, "1", TYPE1),
    _ie("t3412_extended_value", 0x5E, F.TLV, P.O, "3", RAW),
    _ie("t3324_value", 0x6A, F.TLV, P.O, "3", RAW),
    _ie("extended_drx_parameters", 0x6E, F.TLV, P.O, "3", RAW),
)

# --- TS 24.301 clause 8.2 tables ---------------------------------------------------------------
MESSAGES: tuple[MessageSpec, ...] = (
    MessageSpec("attach_request", MessageType.ATTACH_REQUEST, "8.2.4", "UL", (
        _ie("eps_attach_type", None, F.V, P.M, "1/2", EPS_ATTACH_TYPE),
        _ie("nas_key_set_identifier", None, F.V, P.M, "1/2", KSI),
        _ie("eps_mobile_identity", None, F.LV, P.M, "5-12", EPS_MOBILE_IDENTITY),
        _ie("ue_network_capability", None, F.LV, P.M, "3-14", UE_NETWORK_CAPABILITY),
        _ie("esm_message_container", None, F.LV_E, P.M, "5-n", ESM_CONTAINER),
        _ie("old_p_tmsi_signature", 0x19, F.TV, P.O, "4", RAW),
        _ie("additional_guti", 0x50, F.TLV, P.O, "13", EPS_MOBILE_IDENTITY),
        _ie("last_visited_registered_tai", 0x52, F.TV, P.O, "6", RAW),
        _ie("drx_parameter", 0x5C, F.TV, P.O, "3", RAW),
        *_REQUEST_MS_IES,
        _ie("device_properties", 0xD0, F.TV, P.O, "1", TYPE1),
        _ie("old_guti_type", 0xE0, F.TV, P.O, "1", TYPE1),
        *_REQUEST_LATER_IES,
        _ie("ue_determined_plmn_with_disaster_condition", 0x26, F.TLV, P.O, "5", RAW),
        _kme_check,
    )),
    MessageSpec("attach_accept", MessageType.ATTACH_ACCEPT, "8.2.1", "DL", (
        _ie("eps_attach_result", None, F.V, P.M, "1/2", EPS_ATTACH_RESULT),
        _spare(),
        _ie("t3412_value", None, F.V, P.M, "1", GPRS_TIMER),
        _ie("tai_list", None, F.LV, P.M, "7-97", TAI_LIST),
        _ie("esm_message_container", None, F.LV_E, P.M, "5-n", ESM_CONTAINER),
        _ie("guti", 0x50, F.TLV, P.O, "13", EPS_MOBILE_IDENTITY),
        *_ACCEPT_IES,
        _ie("dcn_id", 0x65, F.TLV, P.O, "4", RAW),
        _ie("sms_services_status", 0xE0, F.TV, P.O, "1", TYPE1),
        _ie("non_3gpp_nw_provided_policies", 0xD0, F.TV, P.O, "1", TYPE1),
        _ie("t3448_value", 0x6B, F.TLV, P.O, "3", RAW),
        _ie("network_policy", 0xC0, F.TV, P.O, "1", TYPE1),
        _ie("t3447_value", 0x6C, F.TLV, P.O, "3", RAW),
        _ie("extended_emergency_number_list", 0x7A, F.TLV_E, P.O, "7-65538", RAW),
        _ie("ciphering_key_data", 0x7C, F.TLV_E, P.O, "35-2291", RAW),
        _ie("ue_radio_capability_id", 0x66, F.TLV, P.O, "3-n", RAW),
        _ie("ue_radio_capability_id_deletion_indication", 0xB0, F.TV, P.O, "1", TYPE1),
    )),
    MessageSpec("attach_complete", MessageType.ATTACH_COMPLETE, "8.2.2", "UL", (
        _ie("esm_message_container", None, F.LV_E, P.M, "5-n", ESM_CONTAINER),
    )),
    MessageSpec("attach_reject", MessageType.ATTACH_REJECT, "8.2.3", "DL", (
        _ie("emm_cause", None, F.V, P.M, "1", EMM_CAUSE),
        _ie("esm_message_container", 0x78, F.TLV_E, P.O, "6-n", ESM_CONTAINER),
        _ie("t3346_value", 0x5F, F.TLV, P.O, "3", RAW),
        _ie("t3402_value", 0x16, F.TLV, P.O, "3", RAW),
        _ie("extended_emm_cause", 0xA0, F.TV, P.O, "1", TYPE1),
    )),
    MessageSpec("detach_request", MessageType.DETACH_REQUEST, "8.2.11.1", "UL", (
        _ie("detach_type", None, F.V, P.M, "1/2", DETACH_TYPE),
        _ie("nas_key_set_identifier", None, F.V, P.M, "1/2", KSI),
        _ie("eps_mobile_identity", None, F.LV, P.M, "5-12", EPS_MOBILE_IDENTITY),
    )),
    MessageSpec("detach_accept", MessageType.DETACH_ACCEPT, "8.2.10.1", "DL", ()),
    MessageSpec("tracking_area_update_request", MessageType.TRACKING_AREA_UPDATE_REQUEST, "8.2.29", "UL", (
        _ie("eps_update_type", None, F.V, P.M, "1/2", EPS_UPDATE_TYPE),
        _ie("nas_key_set_identifier", None, F.V, P.M, "1/2", KSI),
        _ie("old_guti", None, F.LV, P.M, "12", EPS_MOBILE_IDENTITY),
        _ie("non_current_native_nas_key_set_identifier", 0xB0, F.TV, P.O, "1", TYPE1),
        _ie("gprs_ciphering_key_sequence_number", 0x80, F.TV, P.O, "1", TYPE1),
        _ie("old_p_tmsi_signature", 0x19, F.TV, P.O, "4", RAW),
        _ie("additional_guti", 0x50, F.TLV, P.O, "13", EPS_MOBILE_IDENTITY),
        _ie("nonce_ue", 0x55, F.TV, P.O, "5", RAW),
        _ie("ue_network_capability", 0x58, F.TLV, P.O, "4-15", UE_NETWORK_CAPABILITY),
        _ie("last_visited_registered_tai", 0x52, F.TV, P.O, "6", RAW),
        _ie("drx_parameter", 0x5C, F.TV, P.O, "3", RAW),
        _ie("ue_radio_capability_information_update_needed", 0xA0, F.TV, P.O, "1", TYPE1),
        _ie("eps_bearer_context_status", 0x57, F.TLV, P.O, "4", RAW),
        *_REQUEST_MS_IES,
        _ie("old_guti_type", 0xE0, F.TV, P.O, "1", TYPE1),
        _ie("device_properties", 0xD0, F.TV, P.O, "1", TYPE1),
        *_REQUEST_LATER_IES,
        _ie("ue_request_type", 0x29, F.TLV, P.O, "3", RAW),
        _ie("paging_restriction", 0x28, F.TLV, P.O, "3-5", RAW),
        _ie("unavailability_information", 0x30, F.TLV, P.O, "3-9", RAW),
        _ie("ue_determined_plmn_with_disaster_condition", 0x26, F.TLV, P.O, "5", RAW),
        _kme_check,
    )),
    MessageSpec("tracking_area_update_accept", MessageType.TRACKING_AREA_UPDATE_ACCEPT, "8.2.26", "DL", (
        _ie("eps_update_result", None, F.V, P.M, "1/2", EPS_UPDATE_RESULT),
        _spare(),
        _ie("t3412_value", 0x5A, F.TV, P.O, "2", GPRS_TIMER),
        _ie("guti", 0x50, F.TLV, P.O, "13", EPS_MOBILE_IDENTITY),
        _ie("tai_list", 0x54, F.TLV, P.O, "8-98", TAI_LIST),
        _ie("eps_bearer_context_status", 0x57, F.TLV, P.O, "4", RAW),
        *_ACCEPT_IES,
        _ie("header_compression_configuration_status", 0x68, F.TLV, P.O, "4", RAW),
        _ie("dcn_id", 0x65, F.TLV, P.O, "4", RAW),
        _ie("sms_services_status", 0xE0, F.TV, P.O, "1", TYPE1),
        _ie("non_3gpp_nw_policies", 0xD0, F.TV, P.O, "1", TYPE1),
        _ie("t3448_value", 0x6B, F.TLV, P.O, "3", RAW),
        _ie("network_policy", 0xC0, F.TV, P.O, "1", TYPE1),
        _ie("t3447_value", 0x6C, F.TLV, P.O, "3", RAW),
        _ie("extended_emergency_number_list", 0x7A, F.TLV_E, P.O, "7-65538", RAW),
        _ie("ciphering_key_data", 0x7C, F.TLV_E, P.O, "35-2291", RAW),
        _ie("ue_radio_capability_id", 0x66, F.TLV, P.O, "3-n", RAW),
        _ie("ue_radio_capability_id_deletion_indication", 0xB0, F.TV, P.O, "1", TYPE1),
    )),
    MessageSpec("tracking_area_update_complete", MessageType.TRACKING_AREA_UPDATE_COMPLETE, "8.2.27", "UL", ()),
    MessageSpec("tracking_area_update_reject", MessageType.TRACKING_AREA_UPDATE_REJECT, "8.2.28", "DL", (
        _ie("emm_cause", None, F.V, P.M, "1", EMM_CAUSE),
        _ie("t3346_value", 0x5F, F.TLV, P.O, "3", RAW),
        _ie("extended_emm_cause", 0xA0, F.TV, P.O, "1", TYPE1),
        _ie("t3402_value", 0x16, F.TLV, P.O, "3", RAW),
    )),
    MessageSpec("authentication_request", MessageType.AUTHENTICATION_REQUEST, "8.2.7", "DL", (
        _ie("nas_key_set_identifier", None, F.V, P.M, "1/2", KSI),
        _spare(),
        _ie("rand", None, F.V, P.M, "16", RAND),
        _ie("autn", None, F.LV, P.M, "17", AUTN),
        _ie("kme_binding_indicator", IEI_KME_BINDING_INDICATOR, F.TLV, P.O, "3", KME_BINDING),
    )),
    MessageSpec("authentication_response", MessageType.AUTHENTICATION_RESPONSE, "8.2.8", "UL", (
        _ie("res", None, F.LV, P.M, "5-17", RES),
    )),
    MessageSpec("authentication_reject", MessageType.AUTHENTICATION_REJECT, "8.2.6", "DL", ()),
    MessageSpec("authentication_failure", MessageType.AUTHENTICATION_FAILURE, "8.2.5", "UL", (
        _ie("emm_cause", None, F.V, P.M, "1", EMM_CAUSE),
        _ie("auts", 0x30, F.TLV, P.O, "16", AUTS),
    )),
    MessageSpec("identity_request", MessageType.IDENTITY_REQUEST, "8.2.18", "DL", (
        _ie("identity_type", None, F.V, P.M, "1/2", IDENTITY_TYPE_2),
        _spare(),
    )),
    MessageSpec("identity_response", MessageType.IDENTITY_RESPONSE, "8.2.19", "UL", (
        _ie("mobile_identity", None, F.LV, P.M, "4-10", MOBILE_IDENTITY),
    )),
    MessageSpec("security_mode_command", MessageType.SECURITY_MODE_COMMAND, "8.2.20", "DL", (
        _ie("selected_nas_security_algorithms", None, F.V, P.M, "1", NAS_SECURITY_ALGORITHMS),
        _ie("nas_key_set_identifier", None, F.V, P.M, "1/2", KSI),
        _spare(),
        _ie("replayed_ue_security_capabilities", None, F.LV, P.M, "3-6", UE_SECURITY_CAPABILITY),
        _ie("imeisv_request", 0xC0, F.TV, P.O, "1", IMEISV_REQUEST),
        _ie("replayed_nonce_ue", 0x55, F.TV, P.O, "5", RAW),
        _ie("nonce_mme", 0x56, F.TV, P.O, "5", RAW),
        _ie("hash_mme", 0x4F, F.TLV, P.O, "10", RAW),
        _ie("replayed_ue_additional_security_capability", 0x6F, F.TLV, P.O, "6", RAW),
        _ie("ue_radio_capability_id_request", 0xD0, F.TV, P.O, "1", TYPE1),
    )),
    MessageSpec("security_mode_complete", MessageType.SECURITY_MODE_COMPLETE, "8.2.21", "UL", (
        _ie("imeisv", 0x23, F.TLV, P.O, "11", MOBILE_IDENTITY),
        _ie("replayed_nas_message_container", 0x79, F.TLV_E, P.O, "3-n", RAW),
        _ie("ue_radio_capability_id", 0x66, F.TLV, P.O, "3-n", RAW),
    )),
    MessageSpec("security_mode_reject", MessageType.SECURITY_MODE_REJECT, "8.2.22", "UL", (
        _ie("emm_cause", None, F.V, P.M, "1", EMM_CAUSE),
    )),
    MessageSpec("emm_status", MessageType.EMM_STATUS, "8.2.14", "both", (
        _ie("emm_cause", None, F.V, P.M, "1", EMM_CAUSE),
    )),
    # kmed's messages (docs/ue-link.md): seed steps 6 and 8.
    MessageSpec("kme_provisioning_command", MessageType.KME_PROVISIONING_COMMAND, "kmed", "DL", (
        _ie("kme_scheme", None, F.V, P.M, "1/2", KME_SCHEME),
        _spare(),
        _ie("nonce", None, F.V, P.M, "16", NONCE_128),
        _ie("encrypted_kme", None, F.LV_E, P.M, "3-n", ENCRYPTED_KME),
    )),
    MessageSpec("kme_provisioning_response", MessageType.KME_PROVISIONING_RESPONSE, "kmed", "UL", (
        _ie("me_rsp", None, F.V, P.M, "16", ME_RSP),
    )),
)

MESSAGES_BY_NAME: dict[str, MessageSpec] = {m.name: m for m in MESSAGES}
MESSAGES_BY_TYPE: dict[int, MessageSpec] = {m.message_type: m for m in MESSAGES}
