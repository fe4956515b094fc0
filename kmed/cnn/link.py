"""The CNN side of the UE link (docs/ue-link.md §1): one asyncio Protocol per connection.

Framing is :class:`kmed.nas.frame.FrameDecoder` (sans-I/O); this module only routes frames:
LINK_SETUP is answered with LINK_SETUP_ACK, NAS_UPLINK and UE_RELEASE go to the owner (the
daemon, which feeds the state machine), and everything else gets the ERROR frame the link
rules ask for. A stream that cannot be framed is answered ERROR on UE id 0 and closed; a bad
frame for one UE never disturbs the others. Writes made during one event-loop iteration are
coalesced into one ``transport.write`` (thousands of UEs share a few connections).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, cast

from kmed.nas.frame import (
    LINK_UE_ID,
    ErrorCause,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    encode_frame,
    error_frame,
    parse_error_payload,
)

__all__ = ["LinkOwner", "UeLinkConnection"]


class LinkOwner(Protocol):
    """What a connection reports to (the daemon)."""

    def link_up(self, conn: UeLinkConnection) -> None:
        """LINK_SETUP received and acknowledged."""

    def nas_uplink(self, conn: UeLinkConnection, ue_id: int, pdu: bytes) -> None:
        """A NAS PDU from UE ``ue_id``."""

    def ue_released(self, conn: UeLinkConnection, ue_id: int, reason: str) -> None:
        """The UE's context on the link ended (UE_RELEASE or an ERROR frame for it)."""

    def link_down(self, conn: UeLinkConnection, reason: str) -> None:
        """The connection closed."""

    def link_event(self, conn: UeLinkConnection, event: str, **fields: object) -> None:
        """Something to log about the link (bad frames, errors); never a secret."""


class UeLinkConnection(asyncio.Protocol):
    """One UE link connection. ``number`` names it in link keys and logs."""

    def __init__(self, owner: LinkOwner, number: int, name: str, max_frame_size: int) -> None:
        self.owner = owner
        self.number = number
        self.name = name  # ours, sent in LINK_SETUP_ACK
        self.peer_name: str | None = None
        self.peer: str = "?"
        self.setup_done = False
        self.frames_in = 0
        self.frames_out = 0
        self.bad_frames = 0
        self._decoder = FrameDecoder(max_frame_size)
        self._transport: asyncio.Transport | None = None
        self._wbuf: list[bytes] = []
        self._flush_scheduled = False
        self._closed = False

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        addr = transport.get_extra_info("peername")
        if isinstance(addr, tuple) and len(addr) >= 2:
            self.peer = f"{addr[0]}:{addr[1]}"

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            self._deliver(exc.frames)  # the good frames before the bad header are the peer's: serve them
            if self._closed:
                return
            self.bad_frames += 1
            self.owner.link_event(self, "link_framing_error", cause=exc.cause.name, detail=exc.detail)
            self.send(error_frame(exc.cause, LINK_UE_ID, exc.detail))
            self.close("framing error")
            return
        self._deliver(frames)

    def _deliver(self, frames: Sequence[Frame]) -> None:
        owner = self.owner
        for frame in frames:
            self.frames_in += 1
            ftype, ue_id = frame.type, frame.ue_id
            if ftype == FrameType.NAS_UPLINK:
                if not self.setup_done:
                    self._refuse(ErrorCause.LINK_NOT_SET_UP, ue_id, "send LINK_SETUP first")
                elif ue_id == LINK_UE_ID:
                    self._refuse(ErrorCause.MALFORMED, ue_id, "NAS on UE id 0")
                else:
                    owner.nas_uplink(self, ue_id, frame.payload)
            elif ftype == FrameType.UE_RELEASE:
                if self.setup_done and ue_id != LINK_UE_ID:
                    owner.ue_released(self, ue_id, "released by the UE")
            elif ftype == FrameType.LINK_SETUP:
                self.peer_name = frame.payload.decode("utf-8", "replace")[:200]
                self.send(encode_frame(FrameType.LINK_SETUP_ACK, LINK_UE_ID, self.name.encode("utf-8")))
                if not self.setup_done:
                    self.setup_done = True
                    owner.link_up(self)
            elif ftype == FrameType.ERROR:
                cause, detail = parse_error_payload(frame.payload)
                owner.link_event(self, "link_error_received", ue_id=ue_id, cause=cause, detail=detail[:200])
                if ue_id == LINK_UE_ID:
                    self.close(f"ERROR from the link client: cause {cause}")
                    return
                owner.ue_released(self, ue_id, f"ERROR frame from the link client (cause {cause})")
            else:  # unknown, or a type only the CNN sends
                self._refuse(ErrorCause.UNKNOWN_FRAME_TYPE, ue_id, f"frame type {ftype} not accepted here")

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._wbuf.clear()
        if not self._closed:
            self._closed = True
            self.owner.link_down(self, f"connection lost: {exc}" if exc else "connection closed")

    # --- sending ---------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue one frame; the queue is written once per event-loop iteration."""
        if self._transport is None or self._closed:
            return
        self._wbuf.append(data)
        self.frames_out += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        t = self._transport
        if t is None or not self._wbuf:
            return
        data = b"".join(self._wbuf) if len(self._wbuf) > 1 else self._wbuf[0]
        self._wbuf.clear()
        if not t.is_closing():
            t.write(data)

    def _refuse(self, cause: ErrorCause, ue_id: int, detail: str) -> None:
        self.bad_frames += 1
        self.owner.link_event(self, "link_frame_refused", ue_id=ue_id, cause=cause.name, detail=detail)
        self.send(error_frame(cause, ue_id, detail))

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._closed

    def close(self, reason: str) -> None:
        """Flush what is queued and close; the owner hears ``link_down`` once."""
        if self._closed:
            return
        self._flush()
        self._closed = True
        if self._transport is not None:
            self._transport.close()
        self.owner.link_down(self, reason)
