"""The NAS-like UE link: frames, NAS EPS messages (TS 24.301) and NAS security.

Modules: `frame` (UE link framing), `messages`/`ies` (declarative TS 24.301 tables),
`codec` (encode/decode), `identity` (mobile identities), `esm` (minimal ESM containers),
`causes` (EMM causes), `security` (EIA2/EEA2, NAS COUNT, replay refusal). docs/ue-link.md.
"""

from kmed.nas.causes import EmmCause
from kmed.nas.codec import NasDecodeError, NasEncodeError, NasMessage, decode, encode
from kmed.nas.identity import guti_identity, imei_identity, imeisv_identity, imsi_identity, parse_mobile_identity
from kmed.nas.messages import MessageType

__all__ = [
    "EmmCause",
    "MessageType",
    "NasDecodeError",
    "NasEncodeError",
    "NasMessage",
    "decode",
    "encode",
    "guti_identity",
    "imei_identity",
    "imeisv_identity",
    "imsi_identity",
    "parse_mobile_identity",
]
