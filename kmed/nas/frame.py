"""The UE link frame: a versioned, length-prefixed header multiplexing many UEs on one stream.

Modelled on the Diameter header (RFC 6733 §3: version octet, 24-bit length of the whole
message) and on S1AP's per-UE identifiers (eNB-UE-S1AP-ID, TS 36.413 §9.2.3.4): each frame
names the UE it belongs to, so one TCP connection carries many UEs. Layout (docs/ue-link.md):

    octet 0      version (= 1)
    octets 1-3   length of the whole frame, header included, big endian
    octet 4      frame type (FrameType)
    octet 5      flags (none defined: sent as 0, ignored on receipt)
    octets 6-9   UE id, big endian, chosen by the link client per UE (0 = the link itself)
    octets 10-   payload

Sans-I/O: `encode_frame` builds bytes, `FrameDecoder.feed` turns received bytes into frames.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import IntEnum
from typing import NoReturn

from kmed.records import value_record

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FRAME_FIELDS",
    "HEADER_SIZE",
    "LINK_UE_ID",
    "MAX_LENGTH_FIELD",
    "VERSION",
    "ErrorCause",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameType",
    "ReleaseCause",
    "encode_frame",
    "error_frame",
    "nas_downlink_frame",
    "parse_error_payload",
]

VERSION = 1

# The header, declared once: (field, octets). The struct format below and the Wireshark
# dissector documentation (docs/ue-link.md) follow this table; a test checks they agree.
FRAME_FIELDS: tuple[tuple[str, int], ...] = (
    ("version", 1),
    ("length", 3),
    ("type", 1),
    ("flags", 1),
    ("ue_id", 4),
)
HEADER_SIZE = sum(size for _, size in FRAME_FIELDS)
MAX_LENGTH_FIELD = (1 << 24) - 1
DEFAULT_MAX_FRAME_SIZE = 65536
LINK_UE_ID = 0  # frames about the link itself (LINK_SETUP, link-level ERROR)

# version and length share one 32-bit word, as in Diameter.
_HEADER = struct.Struct(">IBBI")
assert _HEADER.size == HEADER_SIZE


class FrameType(IntEnum):
    """Frame types (octet 4)."""

    LINK_SETUP = 0x01  # client → server, payload: the link's name (UTF-8); like S1 Setup Request
    LINK_SETUP_ACK = 0x02  # server → client, payload: the server's name (UTF-8)
    NAS_UPLINK = 0x10  # UE → network, payload: one NAS PDU (TS 24.301)
    NAS_DOWNLINK = 0x11  # network → UE, payload: one NAS PDU
    UE_RELEASE = 0x20  # either side: the UE's context on the link ends (UE goes idle); payload: ReleaseCause
    ERROR = 0x30  # either side: payload = ErrorCause octet ‖ optional UTF-8 diagnostic


class ErrorCause(IntEnum):
    """Causes carried by an ERROR frame (first payload octet)."""

    FRAME_TOO_LARGE = 1
    UNKNOWN_UE_ID = 2
    MALFORMED = 3
    UNSUPPORTED_VERSION = 4
    UNKNOWN_FRAME_TYPE = 5
    LINK_NOT_SET_UP = 6


class ReleaseCause(IntEnum):
    """Causes carried by a UE_RELEASE frame (optional single payload octet; absent = NORMAL)."""

    NORMAL = 0  # the UE goes idle (end of the procedure)
    DETACH = 1
    NETWORK_ERROR = 2
    LINK_SHUTDOWN = 3


class FrameError(Exception):
    """The byte stream cannot be framed (bad version, bad length): the connection must be closed
    after answering an ERROR frame with `cause` on UE id 0.

    `frames` holds the complete, well-formed frames that came before the bad header in the same
    `FrameDecoder.feed` call: deliver them first (they are the peer's, in order), then answer.
    """

    def __init__(self, cause: ErrorCause, detail: str, frames: Sequence[Frame] = ()) -> None:
        super().__init__(f"{cause.name}: {detail}")
        self.cause = cause
        self.detail = detail
        self.frames: tuple[Frame, ...] = tuple(frames)


@value_record
class Frame:
    """One decoded frame. `type` is the raw octet: compare with `FrameType` members (an unknown
    type is delivered, not refused, so the receiver can answer ERROR UNKNOWN_FRAME_TYPE)."""

    type: int
    ue_id: int
    payload: bytes = b""
    flags: int = 0


def encode_frame(frame_type: int, ue_id: int, payload: bytes = b"", flags: int = 0) -> bytes:
    """The frame's octets. Raises ValueError if a field is out of range or the frame exceeds
    the 24-bit length."""
    length = HEADER_SIZE + len(payload)
    if length > MAX_LENGTH_FIELD:
        raise ValueError(f"frame of {length} octets exceeds the 24-bit length field")
    if not 0 <= frame_type <= 0xFF or not 0 <= flags <= 0xFF:
        raise ValueError("frame type and flags are single octets")
    if not 0 <= ue_id <= 0xFFFFFFFF:
        raise ValueError("ue_id must fit in 32 bits")
    return _HEADER.pack((VERSION << 24) | length, frame_type, flags, ue_id) + payload


_NAS_DOWNLINK_WORD = VERSION << 24


def nas_downlink_frame(ue_id: int, pdu: bytes) -> bytes:
    """``encode_frame(FrameType.NAS_DOWNLINK, ue_id, pdu)`` for the CNN's per-message path: the
    same octets, with only the checks a NAS PDU and a link key's UE id can fail."""
    length = HEADER_SIZE + len(pdu)
    if length > MAX_LENGTH_FIELD:
        raise ValueError(f"frame of {length} octets exceeds the 24-bit length field")
    return _HEADER.pack(_NAS_DOWNLINK_WORD | length, FrameType.NAS_DOWNLINK, 0, ue_id) + pdu


def error_frame(cause: ErrorCause, ue_id: int = LINK_UE_ID, detail: str = "") -> bytes:
    """An ERROR frame: cause octet, then a short UTF-8 diagnostic (never secrets)."""
    return encode_frame(FrameType.ERROR, ue_id, bytes((cause,)) + detail.encode("utf-8")[:200])


def parse_error_payload(payload: bytes) -> tuple[int, str]:
    """(cause, diagnostic) of an ERROR frame's payload; cause 0 if the payload is empty."""
    if not payload:
        return 0, ""
    return payload[0], payload[1:].decode("utf-8", "replace")


class FrameDecoder:
    """Sans-I/O reassembly of frames from a byte stream.

    `feed` returns the complete frames received so far. The decoder keeps at most one
    incomplete frame (never more than `max_frame_size` octets). On a framing error it raises
    `FrameError` (whose `frames` are the good frames of that feed before the bad header: none
    is lost) and stays failed: the stream cannot be resynchronised, close the connection.
    Later feeds raise the same error without frames.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not HEADER_SIZE <= max_frame_size <= MAX_LENGTH_FIELD:
            raise ValueError(f"max_frame_size must be in [{HEADER_SIZE}, {MAX_LENGTH_FIELD}]")
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Octets held for an incomplete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received octets; return the frames they complete, in order."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        unpack = _HEADER.unpack_from
        while end - pos >= HEADER_SIZE:
            word, ftype, flags, ue_id = unpack(buf, pos)
            version = word >> 24
            length = word & 0xFFFFFF
            if version != VERSION:
                self._fail(ErrorCause.UNSUPPORTED_VERSION, f"version {version}, expected {VERSION}", frames)
            if length < HEADER_SIZE:
                self._fail(ErrorCause.MALFORMED, f"length {length} below the header size {HEADER_SIZE}", frames)
            if length > self.max_frame_size:
                self._fail(ErrorCause.FRAME_TOO_LARGE, f"length {length} above the maximum {self.max_frame_size}",
                           frames)
            if end - pos < length:
                break
            frames.append(Frame(ftype, ue_id, bytes(buf[pos + HEADER_SIZE : pos + length]), flags))
            pos += length
        if pos:
            del buf[:pos]
        return frames

    def _fail(self, cause: ErrorCause, detail: str, frames: list[Frame]) -> NoReturn:
        self._buf.clear()
        self._error = FrameError(cause, detail)  # raised again, without frames, by later feeds
        raise FrameError(cause, detail, frames) if frames else self._error
