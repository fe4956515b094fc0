"""Minimal ESM messages for the ESM message containers of Attach (TS 24.301 §8.3).

kmed has no user plane: these exist so that Attach Request/Accept/Complete carry the ESM
messages a real network expects (and Wireshark or pycrate decode them), nothing more.
"""

from __future__ import annotations

import ipaddress

__all__ = [
    "ESM_PD",
    "activate_default_bearer_accept",
    "activate_default_bearer_request",
    "apn_octets",
    "pdn_connectivity_request",
]

ESM_PD = 0x2  # TS 24.007 §11.2.3.1.1
_PDN_CONNECTIVITY_REQUEST = 0xD0
_ACTIVATE_DEFAULT_REQUEST = 0xC1
_ACTIVATE_DEFAULT_ACCEPT = 0xC2
PDN_TYPE_IPV4 = 1  # TS 24.301 §9.9.4.10
REQUEST_TYPE_INITIAL = 1  # TS 24.301 §9.9.4.14


def pdn_connectivity_request(pti: int = 1, pdn_type: int = PDN_TYPE_IPV4) -> bytes:
    """PDN CONNECTIVITY REQUEST (§8.3.20): EBI 0, the PTI, request type "initial request" and
    the PDN type (high nibble), no optional IEs."""
    if not 1 <= pti <= 254:
        raise ValueError("PTI must be in 1..254 (TS 24.007 11.2.3.1a)")
    return bytes((ESM_PD, pti, _PDN_CONNECTIVITY_REQUEST, (pdn_type << 4) | REQUEST_TYPE_INITIAL))


def apn_octets(apn: str) -> bytes:
    """An APN in the label encoding of TS 23.003 §9.1 (length-prefixed labels)."""
    out = bytearray()
    for label in apn.split("."):
        raw = label.encode("ascii")
        if not 1 <= len(raw) <= 63:
            raise ValueError("APN labels are 1 to 63 characters")
        out.append(len(raw))
        out += raw
    if len(out) > 100:
        raise ValueError("APN longer than 100 octets")
    return bytes(out)


def activate_default_bearer_request(
    ebi: int = 5, pti: int = 1, apn: str = "internet", ipv4: str = "10.45.0.2", qci: int = 9
) -> bytes:
    """ACTIVATE DEFAULT EPS BEARER CONTEXT REQUEST (§8.3.6): EPS QoS (QCI only), APN and an
    IPv4 PDN address."""
    if not 5 <= ebi <= 15:
        raise ValueError("EPS bearer identity must be 5..15")
    apn_value = apn_octets(apn)
    address = bytes((PDN_TYPE_IPV4,)) + ipaddress.IPv4Address(ipv4).packed
    return (
        bytes(((ebi << 4) | ESM_PD, pti, _ACTIVATE_DEFAULT_REQUEST, 1, qci, len(apn_value)))
        + apn_value
        + bytes((len(address),))
        + address
    )


def activate_default_bearer_accept(ebi: int = 5) -> bytes:
    """ACTIVATE DEFAULT EPS BEARER CONTEXT ACCEPT (§8.3.4), PTI 0, no optional IEs."""
    if not 5 <= ebi <= 15:
        raise ValueError("EPS bearer identity must be 5..15")
    return bytes(((ebi << 4) | ESM_PD, 0, _ACTIVATE_DEFAULT_ACCEPT))
