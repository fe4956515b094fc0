"""Micro-benchmark of kmed.nas (not a test: prints figures). Run: .venv/bin/python tests/nas/bench_nas.py

Figures are per operation, the best of 7 repeats; on a shared 2-core machine they are noisy.
"""

from __future__ import annotations

import os
import timeit
from collections.abc import Callable

from kmed.nas import esm
from kmed.nas.codec import NasMessage, decode, encode
from kmed.nas.frame import FrameDecoder, FrameType, encode_frame
from kmed.nas.identity import imsi_identity
from kmed.nas.ies import ue_network_capability
from kmed.nas.security import UPLINK, NasSecurityContext


def main() -> None:
    attach = NasMessage("attach_request", {
        "eps_attach_type": 1, "nas_key_set_identifier": 7, "eps_mobile_identity": imsi_identity("001010123456789"),
        "ue_network_capability": ue_network_capability(), "esm_message_container": esm.pdn_connectivity_request(),
        "kme_check": bytes(16),
    })
    auth = NasMessage("authentication_request", {
        "nas_key_set_identifier": 1, "rand": os.urandom(16), "autn": os.urandom(16), "kme_binding_indicator": 2,
    })
    command = NasMessage(
        "kme_provisioning_command", {"kme_scheme": "A", "nonce": bytes(16), "encrypted_kme": bytes(72)}
    )
    attach_pdu, auth_pdu = encode(attach), encode(auth)
    k_int, k_enc = os.urandom(16), os.urandom(16)
    ue, net = NasSecurityContext(1, k_int, k_enc), NasSecurityContext(1, k_int, k_enc)
    stream = b"".join(encode_frame(FrameType.NAS_UPLINK, i, attach_pdu) for i in range(100))

    def roundtrip() -> None:
        net.unprotect(ue.protect(attach_pdu, UPLINK), UPLINK)

    cases: list[tuple[str, Callable[[], object], int]] = [
        ("encode attach_request (with kme_check)", lambda: encode(attach), 1),
        ("decode attach_request", lambda: decode(attach_pdu), 1),
        ("encode authentication_request", lambda: encode(auth), 1),
        ("decode authentication_request", lambda: decode(auth_pdu), 1),
        ("encode kme_provisioning_command", lambda: encode(command), 1),
        ("protect + unprotect, EIA2+EEA2", roundtrip, 1),
        ("FrameDecoder.feed, per frame", lambda: FrameDecoder().feed(stream), 100),
    ]
    for label, fn, per in cases:
        n = 2000
        best = min(timeit.repeat(fn, number=n, repeat=7)) / n / per
        print(f"{label:42s} {best * 1e6:7.2f} µs")


if __name__ == "__main__":
    main()
