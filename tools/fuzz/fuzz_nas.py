#!/usr/bin/env python3
"""atheris: ``kmed.nas.codec.decode`` and NAS unprotect on any octets (tools/fuzz/README.md).

Properties: decode raises only NasDecodeError; what decodes re-encodes to a PDU that decodes to
the same message; ``NasSecurityContext.unprotect`` raises only NasSecurityError and accepts
nothing that the matching context did not protect.
"""

from __future__ import annotations

import atheris
import common

with atheris.instrument_imports():
    from kmed.nas import esm
    from kmed.nas.codec import NasDecodeError, NasMessage, decode, encode
    from kmed.nas.identity import imsi_identity
    from kmed.nas.ies import ue_network_capability
    from kmed.nas.security import UPLINK, NasSecurityContext, NasSecurityError

KEYS = (bytes(range(16)), bytes(range(16, 32)))


def test_one_input(data: bytes) -> None:
    try:
        msg = decode(data)
    except NasDecodeError:
        msg = None
    if msg is not None:
        again = decode(encode(NasMessage(msg.name, dict(msg.ies))))
        assert again.name == msg.name and again.ies == msg.ies
    ctx = NasSecurityContext(1, *KEYS)
    try:
        plain = ctx.unprotect(data, UPLINK)
    except NasSecurityError:
        return
    # a MAC verified: only possible for what this key protected (never for random octets)
    raise AssertionError(f"random octets passed the MAC check: {data.hex()} -> {plain.hex()}")


def seeds() -> list[bytes]:
    attach = encode(NasMessage("attach_request", {
        "eps_attach_type": 1, "nas_key_set_identifier": 7, "eps_mobile_identity": imsi_identity("001010000000001"),
        "ue_network_capability": ue_network_capability((0, 2), (2,)),
        "esm_message_container": esm.pdn_connectivity_request(), "kme_check": bytes(16)}))
    rsp = encode(NasMessage("kme_provisioning_response", {"me_rsp": bytes(16)}))
    other = NasSecurityContext(1, bytes(16), bytes(16))
    return [attach, rsp, other.protect(rsp, UPLINK), encode(NasMessage("authentication_failure",
                                                                       {"emm_cause": 21, "auts": bytes(14)}))]


if __name__ == "__main__":
    common.fuzz(test_one_input, seeds)
