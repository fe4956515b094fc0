"""Message boundaries on the two kmed links, so that a fault hits a whole message (sans-I/O).

- Diameter (RFC 6733 §3): the header's version octet and 24-bit length, read by
  :func:`kmed.diameter.codec.frame_length`.
- UE link (docs/ue-link.md): the frame header of :mod:`kmed.nas.frame`, read by its
  :class:`~kmed.nas.frame.FrameDecoder`.

A :class:`Splitter` turns received octets into :class:`Message` items, each with the exact
octets received and whether the fault policy may touch it (:func:`faultable`, ``scope``):

- ``application`` (the default) models a *relay or radio* losing messages: only S6a messages
  (Diameter application id ≠ 0) and NAS frames (NAS_UPLINK / NAS_DOWNLINK) are faulted. The
  base protocol (CER/CEA, DWR/DWA, DPR/DPA: hop by hop, RFC 6733 §2.1) and the link's own
  frames (LINK_SETUP, UE_RELEASE, ERROR: S1AP-like, carried by SCTP) are never lost in
  those models; losing them would test a transport that is not there.
- ``all``: every message may be faulted (harsher; e.g. a lost CEA).

A stream that cannot be framed raises :class:`FramingError` carrying the octets not yet
delivered; the proxy then forwards that direction untouched, so that the endpoint answers the
bad stream as it would without a proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.nas import frame as uelink

__all__ = [
    "LINKS",
    "SCOPES",
    "DiameterSplitter",
    "FramingError",
    "Message",
    "Splitter",
    "UeLinkSplitter",
    "splitter_for",
]

LINKS: Final = ("diameter", "uelink")
SCOPES: Final = ("application", "all")

#: UE link frame types that carry NAS (the radio part of the model).
_NAS_FRAMES = frozenset({uelink.FrameType.NAS_UPLINK, uelink.FrameType.NAS_DOWNLINK})


@dataclass(frozen=True, slots=True)
class Message:
    """One whole message as received: its octets, whether faults apply, a short label for logs."""

    data: bytes
    faultable: bool
    label: str


class FramingError(Exception):
    """The stream cannot be framed; ``pending`` holds the octets not yet delivered as messages
    (whole messages before the bad one, from the same :meth:`Splitter.feed`, included)."""

    def __init__(self, detail: str, pending: bytes) -> None:
        super().__init__(detail)
        self.pending = pending


class Splitter:
    """Base class: buffers octets, returns whole messages (:meth:`feed`)."""

    def __init__(self, scope: str = "application") -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        self.scope = scope
        self._raw = bytearray()  # octets received and not yet delivered in a Message

    @property
    def buffered(self) -> int:
        return len(self._raw)

    def feed(self, data: bytes) -> list[Message]:
        raise NotImplementedError

    def _fail(self, detail: str) -> FramingError:
        pending = bytes(self._raw)
        self._raw.clear()
        return FramingError(detail, pending)


class DiameterSplitter(Splitter):
    """Diameter messages by :func:`kmed.diameter.codec.frame_length`."""

    def __init__(self, scope: str = "application", max_size: int = codec.DEFAULT_MAX_SIZE) -> None:
        super().__init__(scope)
        self.max_size = max_size

    def feed(self, data: bytes) -> list[Message]:
        raw = self._raw
        raw += data
        out: list[Message] = []
        pos = 0
        while True:
            try:
                length = codec.frame_length(raw[pos : pos + 4], self.max_size)
            except codec.DecodeError as exc:
                # Messages already split from this feed are not delivered: all of it goes raw.
                raise self._fail(f"Diameter framing: {exc}") from None
            if length is None or len(raw) - pos < length:
                break
            msg = bytes(raw[pos : pos + length])
            pos += length
            out.append(self._message(msg))
        del raw[:pos]
        return out

    def _message(self, msg: bytes) -> Message:
        # RFC 6733 §3: octet 4 flags (R = 0x80), octets 5-7 command code, 8-11 application id.
        is_request = bool(msg[4] & 0x80)
        code = int.from_bytes(msg[5:8], "big")
        app = int.from_bytes(msg[8:12], "big")
        faultable = self.scope == "all" or app != d.APP_COMMON
        return Message(msg, faultable, d.command_abbrev(code, is_request))


class UeLinkSplitter(Splitter):
    """UE link frames by :class:`kmed.nas.frame.FrameDecoder` (the octets are re-encoded
    identically by :func:`kmed.nas.frame.encode_frame`)."""

    def __init__(self, scope: str = "application", max_size: int = uelink.DEFAULT_MAX_FRAME_SIZE) -> None:
        super().__init__(scope)
        self._decoder = uelink.FrameDecoder(max_size)

    def feed(self, data: bytes) -> list[Message]:
        raw = self._raw
        raw += data
        try:
            frames = self._decoder.feed(data)
        except uelink.FrameError as exc:
            raise self._fail(f"UE link framing: {exc}") from None
        out: list[Message] = []
        pos = 0
        for f in frames:
            octets = uelink.encode_frame(f.type, f.ue_id, f.payload, f.flags)
            pos += len(octets)
            faultable = self.scope == "all" or f.type in _NAS_FRAMES
            try:
                name = uelink.FrameType(f.type).name
            except ValueError:
                name = f"type-{f.type}"
            out.append(Message(octets, faultable, f"{name} ue {f.ue_id}"))
        del raw[:pos]
        return out


def splitter_for(link: str, scope: str = "application", max_size: int | None = None) -> Splitter:
    """A fresh splitter for ``link`` (``diameter`` or ``uelink``)."""
    if link == "diameter":
        return DiameterSplitter(scope, max_size or codec.DEFAULT_MAX_SIZE)
    if link == "uelink":
        return UeLinkSplitter(scope, max_size or uelink.DEFAULT_MAX_FRAME_SIZE)
    raise ValueError(f"link must be one of {', '.join(LINKS)}, not {link!r}")
