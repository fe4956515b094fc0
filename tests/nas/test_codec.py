"""NAS EMM codec: known-answer PDUs written from TS 24.301, round trips of every table, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmed.nas import esm
from kmed.nas.causes import EmmCause
from kmed.nas.codec import NasDecodeError, NasEncodeError, NasMessage, decode, encode, message_spec
from kmed.nas.identity import imsi_identity
from kmed.nas.ies import (
    KME_SCHEME,
    KmeBindingIndicator,
    ValueType,
    ue_network_capability,
)
from kmed.nas.messages import KME_BINDING, MESSAGES, IESpec, MessageType

RAND = bytes(range(0x10, 0x20))
AUTN = bytes(range(0xA0, 0xB0))
KME_CHECK = bytes(range(16))

# TS 24.301 §8.2.4 Attach Request, octet by octet (figure/table 8.2.4.1, §9.9.3.11/21/12/34/15):
ATTACH_REQUEST_PDU = bytes.fromhex(
    "07"  # security header type 0 | EMM PD 7 (§9.2, §9.3.1)
    "41"  # message type: attach request (table 9.8.1)
    "71"  # NAS KSI 7 "no key" (bits 8-5) | EPS attach type 1 "EPS attach" (bits 4-1)
    "08" "09101010325476 98".replace(" ", "")  # EPS mobile identity: IMSI 001010123456789, odd, type 1
    + "02" "e060"  # UE network capability: EEA0-2, EIA1-2
    "0004" "0201d011"  # ESM container (LV-E): PDN CONNECTIVITY REQUEST, PTI 1, IPv4, initial
    "3c10" + KME_CHECK.hex()  # KME_Check TLV, IEI 0x3C (kmed)
)

# TS 24.301 §8.2.7 Authentication Request (§9.9.3.21, §9.9.3.3, §9.9.3.2) + KME binding indicator:
AUTH_REQUEST_PDU = bytes.fromhex(
    "07" "52"
    "01"  # spare half octet (bits 8-5) | NAS KSI 1 (bits 4-1)
    + RAND.hex()  # RAND, V 16
    + "10" + AUTN.hex()  # AUTN, LV 17
    + "3d0102"  # KME binding indicator TLV, IEI 0x3D (kmed): bound to new KME
)


def test_attach_request_known_answer() -> None:
    msg = NasMessage(
        "attach_request",
        {
            "eps_attach_type": 1,
            "nas_key_set_identifier": 7,
            "eps_mobile_identity": imsi_identity("001010123456789"),
            "ue_network_capability": ue_network_capability((0, 1, 2), (1, 2)),
            "esm_message_container": esm.pdn_connectivity_request(pti=1),
            "kme_check": KME_CHECK,
        },
    )
    assert encode(msg) == ATTACH_REQUEST_PDU
    assert decode(ATTACH_REQUEST_PDU) == msg


def test_authentication_request_known_answer() -> None:
    msg = NasMessage(
        "authentication_request",
        {"nas_key_set_identifier": 1, "rand": RAND, "autn": AUTN, "kme_binding_indicator": 2},
    )
    assert encode(msg) == AUTH_REQUEST_PDU
    decoded = decode(AUTH_REQUEST_PDU)
    assert decoded.ies == msg.ies
    assert decoded["kme_binding_indicator"] is KmeBindingIndicator.BOUND_TO_NEW
    assert decoded.message_type == MessageType.AUTHENTICATION_REQUEST


# --- round trips of every table ------------------------------------------------------------------


def _half_values(vt: ValueType) -> list[Any]:
    if vt is KME_SCHEME:
        return ["A", "B"]
    values = []
    for v in range(16):
        try:
            if vt.decode(vt.encode(v)) == v:
                values.append(v)
        except ValueError:
            pass
    return values


def _value_strategy(ie: IESpec) -> st.SearchStrategy[Any]:
    vt = ie.vtype
    if vt.half:
        return st.sampled_from(_half_values(vt))
    if vt is KME_BINDING:
        return st.sampled_from(list(KmeBindingIndicator))
    if vt.fixed == 1 and ie.min_len == 1 and ie.max_len == 1 and vt.name != "value part (not interpreted by kmed)":
        return st.integers(0, 255)
    lo, hi = ie.min_len, min(ie.max_len, ie.min_len + 40)
    return st.binary(min_size=lo, max_size=hi)


@st.composite
def _messages(draw: st.DrawFn) -> NasMessage:
    spec = draw(st.sampled_from(MESSAGES))
    values: dict[str, Any] = {}
    for ie in spec.ies:
        if ie.name == "spare_half_octet":
            continue
        if ie.iei is None or draw(st.booleans()):
            values[ie.name] = draw(_value_strategy(ie))
    return NasMessage(spec.name, values)


@settings(max_examples=300)
@given(_messages())
def test_roundtrip_every_message(msg: NasMessage) -> None:
    pdu = encode(msg)
    assert decode(pdu) == msg


def test_every_table_has_distinct_ieis_and_names() -> None:
    for spec in MESSAGES:
        ieis = [ie.iei for ie in spec.ies if ie.iei is not None]
        assert len(ieis) == len(set(ieis)), spec.name
        names = [ie.name for ie in spec.ies if ie.name != "spare_half_octet"]
        assert len(names) == len(set(names)), spec.name


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", range(2, len(AUTH_REQUEST_PDU) - 3))
def test_truncated_mandatory_part(cut: int) -> None:
    with pytest.raises(NasDecodeError) as info:
        decode(AUTH_REQUEST_PDU[:cut])
    assert info.value.cause is EmmCause.INVALID_MANDATORY_INFORMATION


def test_truncated_optional_ie_is_ignored() -> None:
    # §7.7: a syntactically incorrect optional IE is treated as absent
    msg = decode(AUTH_REQUEST_PDU[:-1])
    assert "kme_binding_indicator" not in msg


def test_too_short_and_not_emm_are_ignored_silently() -> None:
    for pdu in (b"", b"\x07", b"\x02\x01\xd0\x11"):
        with pytest.raises(NasDecodeError) as info:
            decode(pdu)
        assert info.value.respond is False


def test_unknown_message_type() -> None:
    with pytest.raises(NasDecodeError) as info:
        decode(b"\x07\x47")
    assert info.value.cause is EmmCause.MESSAGE_TYPE_NON_EXISTENT and info.value.respond


def test_bad_mandatory_length() -> None:
    pdu = bytearray(AUTH_REQUEST_PDU)
    pdu[19] = 15  # AUTN length must be 16
    with pytest.raises(NasDecodeError) as info:
        decode(bytes(pdu))
    assert info.value.cause is EmmCause.INVALID_MANDATORY_INFORMATION


def test_missing_mandatory_ie() -> None:
    with pytest.raises(NasDecodeError) as info:
        decode(b"\x07\x53")  # authentication response without RES
    assert info.value.cause is EmmCause.INVALID_MANDATORY_INFORMATION


def test_unknown_optional_ies_are_skipped() -> None:
    extra = bytes.fromhex("3f0199" "b1" "7f0002aabb")  # unknown TLV, type 1, TLV-E
    msg = decode(AUTH_REQUEST_PDU + extra)
    assert msg["kme_binding_indicator"] is KmeBindingIndicator.BOUND_TO_NEW


def test_unknown_comprehension_required_ie() -> None:
    with pytest.raises(NasDecodeError) as info:
        decode(AUTH_REQUEST_PDU + bytes.fromhex("0e0100"))
    assert info.value.cause is EmmCause.INVALID_MANDATORY_INFORMATION


def test_repeated_optional_ie_keeps_the_first() -> None:
    msg = decode(AUTH_REQUEST_PDU + bytes.fromhex("3d0101"))
    assert msg["kme_binding_indicator"] is KmeBindingIndicator.BOUND_TO_NEW


def test_ciphered_pdu_needs_a_context() -> None:
    with pytest.raises(NasDecodeError) as info:
        decode(bytes.fromhex("27") + bytes(5) + b"\x99\x99")
    assert info.value.respond is False


def test_integrity_protected_pdu_decodes_inner_message() -> None:
    pdu = bytes.fromhex("17" "01020304" "05") + AUTH_REQUEST_PDU
    msg = decode(pdu)
    assert msg.name == "authentication_request"
    assert (msg.security_header_type, msg.mac, msg.sequence_number) == (1, b"\x01\x02\x03\x04", 5)


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_random_bytes_only_raise_nas_decode_error(data: bytes) -> None:
    try:
        decode(data)
    except NasDecodeError as exc:
        assert isinstance(exc.cause, EmmCause)


@settings(max_examples=300)
@given(st.sampled_from(MESSAGES), st.binary(max_size=60))
def test_random_bodies_only_raise_nas_decode_error(spec: Any, body: bytes) -> None:
    try:
        decode(bytes((0x07, spec.message_type)) + body)
    except NasDecodeError as exc:
        assert isinstance(exc.cause, EmmCause)


# --- encode errors ---------------------------------------------------------------------------------


def test_encode_errors() -> None:
    with pytest.raises(NasEncodeError):
        encode(NasMessage("no_such_message"))
    with pytest.raises(NasEncodeError):
        encode(NasMessage("authentication_response", {}))
    with pytest.raises(NasEncodeError):
        encode(NasMessage("authentication_response", {"res": b"\x00" * 3}))  # RES is 4..16 octets
    with pytest.raises(NasEncodeError):
        encode(NasMessage("authentication_response", {"res": bytes(8), "typo": 1}))
    with pytest.raises(NasEncodeError):
        encode(NasMessage("kme_provisioning_command", {"kme_scheme": "C", "nonce": bytes(16), "encrypted_kme": b"x"}))
    assert message_spec("attach_request").message_type == 0x41


def test_none_means_absent_for_optional_ies() -> None:
    msg = NasMessage("authentication_failure", {"emm_cause": 21, "auts": None})
    assert encode(msg) == bytes.fromhex("075c15")
    assert decode(encode(msg)).ies == {"emm_cause": 21}
