"""The UE side of the UE link (docs/ue-link.md): one TCP connection carrying many UEs.

Like an eNodeB's S1 connection, a :class:`UeLink` multiplexes UEs by UE id
(:mod:`kmed.nas.frame`): after the LINK_SETUP / LINK_SETUP_ACK exchange, each UE registered
with :meth:`UeLink.add_ue` gets a UE id and a :class:`UeEndpoint` that receives its NAS PDUs and
its release. Per UE the link keeps one dict entry: no task, no thread, no socket, so the load
harness runs thousands of UEs over a few links.

Uplink frames are coalesced: those sent while a downlink segment is handled go out in one
write at its end, and those sent from other callbacks in one write per event-loop iteration
(``call_soon``). The byte stream is the same; only the number of ``send`` system calls (each
of which, on loopback, also runs the receiver's TCP input path) falls.

The module is the thin asyncio edge: framing is :class:`kmed.nas.frame.FrameDecoder`
(sans-I/O), and what a UE does with its PDUs is the UE's business (:mod:`kmed.ue.procedure`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from typing import Protocol, cast

from kmed.config import Endpoint
from kmed.nas.frame import (
    DEFAULT_MAX_FRAME_SIZE,
    LINK_UE_ID,
    ErrorCause,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    ReleaseCause,
    encode_frame,
    error_frame,
    parse_error_payload,
)

__all__ = ["LinkError", "UeEndpoint", "UeLink"]

_MAX_UE_ID = 0xFFFFFFFF


class LinkError(Exception):
    """The link could not be set up or is gone (message names the peer, never a secret)."""


class UeEndpoint(Protocol):
    """What the link delivers to one UE."""

    def nas_received(self, pdu: bytes) -> None:
        """A NAS PDU arrived for this UE (NAS_DOWNLINK)."""

    def released(self, cause: int, reason: str) -> None:
        """The UE's context on the link ended: UE_RELEASE from the network (``cause`` a
        :class:`ReleaseCause`), an ERROR frame for this UE, or the link went down. The UE is
        removed from the link before this is called."""


class UeLink(asyncio.Protocol):
    """One UE link connection (client side). Create it with :meth:`connect`."""

    def __init__(self, name: str, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.name = name
        self.peer_name: str | None = None
        self._decoder = FrameDecoder(max_frame_size)
        self._ues: dict[int, UeEndpoint] = {}
        self._ids = itertools.count(1)
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out: list[bytes] = []  # frames not yet written (see the module docstring)
        self._flush_scheduled = False
        self._receiving = False
        self._setup: asyncio.Future[str] | None = None
        self._closed: asyncio.Future[None] | None = None
        self.close_reason: str | None = None
        self.frames_in = 0
        self.frames_out = 0

    # --- set-up and tear-down ------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        endpoint: Endpoint,
        *,
        name: str = "kmed-ue",
        timeout: float = 5.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> UeLink:
        """Connect to the CNN at ``endpoint`` (tcp:// only) and run LINK_SETUP; :class:`LinkError`
        when refused, not answered within ``timeout`` seconds, or answered with ERROR."""
        if endpoint.transport != "tcp":
            raise LinkError(f"{endpoint}: the UE link client speaks tcp:// only")
        loop = asyncio.get_running_loop()
        link = cls(name, max_frame_size)
        link._setup = loop.create_future()
        link._closed = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: link, endpoint.host, endpoint.port)
                link._send(encode_frame(FrameType.LINK_SETUP, LINK_UE_ID, name.encode("utf-8")))
                link.peer_name = await link._setup
        except TimeoutError:
            link.close()
            raise LinkError(f"{endpoint}: no LINK_SETUP_ACK within {timeout:g} s") from None
        except OSError as exc:
            link.close()
            raise LinkError(f"{endpoint}: {exc.strerror or exc}") from None
        return link

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    @property
    def ue_count(self) -> int:
        return len(self._ues)

    def close(self) -> None:
        """Close the connection (after writing the frames sent so far); every UE still on the
        link is released (LINK_SHUTDOWN)."""
        if self._transport is not None:
            self._flush()
            self._transport.close()

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await asyncio.shield(self._closed)

    # --- UEs -----------------------------------------------------------------------------------

    def add_ue(self, endpoint: UeEndpoint) -> int:
        """Register a UE; returns its UE id (never 0, unique on this link)."""
        if not self.is_open:
            raise LinkError(f"link {self.name}: not connected")
        if len(self._ues) >= _MAX_UE_ID:
            raise LinkError(f"link {self.name}: no UE id left")
        while True:
            ue_id = next(self._ids)
            if ue_id > _MAX_UE_ID:
                self._ids = itertools.count(1)
                continue
            if ue_id not in self._ues:
                break
        self._ues[ue_id] = endpoint
        return ue_id

    def send_nas(self, ue_id: int, pdu: bytes) -> None:
        """Send one NAS PDU for ``ue_id`` (NAS_UPLINK); silently dropped when the link is down
        (the UE learns it from :meth:`UeEndpoint.released`)."""
        self._send(encode_frame(FrameType.NAS_UPLINK, ue_id, pdu))

    def release_ue(self, ue_id: int, cause: ReleaseCause = ReleaseCause.NORMAL) -> None:
        """The UE goes idle: send UE_RELEASE and forget the UE (no ``released`` callback)."""
        if self._ues.pop(ue_id, None) is not None:
            self._send(encode_frame(FrameType.UE_RELEASE, ue_id, bytes((cause,))))

    def forget_ue(self, ue_id: int) -> None:
        """Forget the UE without telling the network (e.g. it vanished: issue 5 test (e))."""
        self._ues.pop(ue_id, None)

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it: no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self._receiving = True  # frames sent meanwhile go out in one write at the end
        try:
            self._on_data(data)
        finally:
            self._receiving = False
            if self._out:
                self._flush()

    def _on_data(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            # the well-formed frames before the bad header are the CNN's, in order: serve them
            if self._deliver(exc.frames) and self._transport is not None:
                self._send(error_frame(exc.cause, LINK_UE_ID, exc.detail))
                self._abort(f"framing error from the CNN: {exc}")
            return
        self._deliver(frames)

    def _deliver(self, frames: Sequence[Frame]) -> bool:
        """Handle received frames in order; False when one of them ended the link."""
        for frame in frames:
            self.frames_in += 1
            ftype, ue_id = frame.type, frame.ue_id
            if ftype == FrameType.NAS_DOWNLINK:
                ue = self._ues.get(ue_id)
                if ue is not None:
                    ue.nas_received(frame.payload)
                elif ue_id != LINK_UE_ID:
                    self._send(error_frame(ErrorCause.UNKNOWN_UE_ID, ue_id, "no such UE on this link"))
            elif ftype == FrameType.UE_RELEASE:
                ue = self._ues.pop(ue_id, None)
                if ue is not None:
                    cause = frame.payload[0] if frame.payload else ReleaseCause.NORMAL
                    ue.released(cause, "released by the network")
            elif ftype == FrameType.ERROR:
                cause, detail = parse_error_payload(frame.payload)
                if ue_id == LINK_UE_ID:
                    self._abort(f"link ERROR from the CNN: cause {cause} {detail}".rstrip())
                    return False
                ue = self._ues.pop(ue_id, None)
                if ue is not None:
                    why = f"ERROR frame from the CNN: cause {cause} {detail}".rstrip()
                    ue.released(ReleaseCause.NETWORK_ERROR, why)
            elif ftype == FrameType.LINK_SETUP_ACK:
                if self._setup is not None and not self._setup.done():
                    self._setup.set_result(frame.payload.decode("utf-8", "replace"))
            else:
                self._send(error_frame(ErrorCause.UNKNOWN_FRAME_TYPE, ue_id, f"frame type {ftype}"))
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._out = []
        reason = self.close_reason or (f"connection lost: {exc}" if exc else "connection closed")
        self.close_reason = reason
        if self._setup is not None and not self._setup.done():
            self._setup.set_exception(LinkError(f"link {self.name}: {reason} before LINK_SETUP_ACK"))
            with contextlib.suppress(BaseException):
                self._setup.exception()  # consumed here when connect() already gave up
        ues, self._ues = self._ues, {}
        for ue in ues.values():
            ue.released(ReleaseCause.LINK_SHUTDOWN, reason)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    # --- internals -----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        """Queue one frame; written by :meth:`_flush` (end of ``data_received`` or next loop turn)."""
        t = self._transport
        if t is not None and not t.is_closing():
            self._out.append(data)
            self.frames_out += 1
            if not self._receiving and not self._flush_scheduled and self._loop is not None:
                self._flush_scheduled = True
                self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        """Write the queued frames in one ``write``."""
        out = self._out
        if not out:
            return
        self._out = []
        t = self._transport
        if t is not None and not t.is_closing():
            t.write(out[0] if len(out) == 1 else b"".join(out))

    def _abort(self, reason: str) -> None:
        self.close_reason = reason
        if self._transport is not None:
            self._flush()
            self._transport.close()
