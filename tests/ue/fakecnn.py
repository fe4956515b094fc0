"""A scripted CNN on a real loopback socket for the link/client tests: speaks the UE link frames
(kmed.nas.frame) and runs, per UE id, a FakeNetwork through the attach of docs/procedure.md.

It is deliberately small and strict: it checks RES, ME_Rsp and the Security Mode Complete, and
records what it saw so that tests can assert on it. Not the real CNN (kmed.cnn).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, cast

from kmed.crypto import kme
from kmed.nas.codec import NasMessage
from kmed.nas.frame import LINK_UE_ID, FrameDecoder, FrameType, encode_frame
from kmed.nas.ies import KmeBindingIndicator as B
from tests.ue.fakenet import FakeNetwork


@dataclass
class Subscriber:
    """What the fake HSS holds: the KME and each device's public key."""

    kme: bytes | None = None
    public_keys: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # IMEI14 -> (profile, key)
    sqn: int = 32


@dataclass
class Session:
    net: FakeNetwork
    state: str = "idle"
    kme_check: bytes | None = None
    identity: bytes = b""
    imei14: str = ""
    bind_to_new: bytes | None = None
    muted: bool = False


class FakeCnn(asyncio.Protocol):
    """One connection; all connections share ``sub`` and ``log``."""

    def __init__(self, sub: Subscriber, log: list[str], *, mute_after: str | None = None,
                 release_after: str | None = None) -> None:
        self.sub = sub
        self.log = log
        self.mute_after = mute_after  # stop answering after sending this message
        self.release_after = release_after  # send UE_RELEASE right after this message
        self.decoder = FrameDecoder()
        self.sessions: dict[int, Session] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        for f in self.decoder.feed(data):
            if f.type == FrameType.LINK_SETUP:
                self._write(encode_frame(FrameType.LINK_SETUP_ACK, LINK_UE_ID, b"fake-cnn"))
            elif f.type == FrameType.UE_RELEASE:
                self.log.append(f"release {f.ue_id}")
                self.sessions.pop(f.ue_id, None)
            elif f.type == FrameType.NAS_UPLINK:
                s = self.sessions.setdefault(f.ue_id, Session(FakeNetwork(sqn=self.sub.sqn)))
                msg = s.net.read(f.payload)
                self.log.append(f"{f.ue_id} {msg.name}")
                self._handle(f.ue_id, s, msg)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _dl(self, ue_id: int, s: Session, name: str, pdu: bytes) -> None:
        self.sub.sqn = s.net.sqn
        if self.mute_after == "*" or s.muted:
            return
        self._write(encode_frame(FrameType.NAS_DOWNLINK, ue_id, pdu))
        if name == self.mute_after:
            s.muted = True
        if name == self.release_after:
            self._write(encode_frame(FrameType.UE_RELEASE, ue_id, b"\x00"))
            self.sessions.pop(ue_id, None)

    def _auth(self, ue_id: int, s: Session, binding: int, bind_to: bytes | None) -> None:
        s.state = "auth"
        self._dl(ue_id, s, "authentication_request", s.net.auth_request(binding, bind_to))

    def _handle(self, ue_id: int, s: Session, msg: NasMessage) -> None:
        net = s.net
        if msg.name == "attach_request":
            s.identity = msg["eps_mobile_identity"]
            s.kme_check = msg.get("kme_check")
            match = (self.sub.kme is not None and s.kme_check is not None
                     and kme.kme_check(self.sub.kme, s.identity) == s.kme_check)
            s.bind_to_new = None
            if match:
                self._auth(ue_id, s, B.BOUND_TO_CURRENT, self.sub.kme)
            else:
                self._auth(ue_id, s, B.NOT_BOUND, None)
        elif msg.name == "authentication_response":
            assert net.vector is not None and msg["res"] == net.vector.xres
            self._dl(ue_id, s, "security_mode_command", net.smc())
        elif msg.name == "authentication_failure":
            if msg["emm_cause"] == 21:
                from kmed.crypto import aka

                assert net.vector is not None
                net.sqn = aka.verify_auts(net.k, bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf"),
                                          net.vector.rand, msg["auts"])
                self._auth(ue_id, s, B.NOT_BOUND, None)
        elif msg.name == "security_mode_complete":
            s.imei14 = _imeisv14(msg["imeisv"])
            matched = s.kme_check is not None and self.sub.kme is not None and s.bind_to_new is None and (
                kme.kme_check(self.sub.kme, s.identity) == s.kme_check)
            if s.bind_to_new is not None:
                self.sub.kme = s.bind_to_new  # step 12-13: ULR with the KME
                self._dl(ue_id, s, "attach_accept", net.attach_accept())
            elif matched:
                self._dl(ue_id, s, "attach_accept", net.attach_accept())
            else:
                profile_key = self.sub.public_keys.get(s.imei14)
                if profile_key is None:
                    self._dl(ue_id, s, "attach_reject", net.attach_reject(6))
                    return
                s.state = "kme"
                self._dl(ue_id, s, "kme_provisioning_command", net.kme_command(profile_key[1], profile_key[0]))
        elif msg.name == "kme_provisioning_response":
            assert net.new_kme is not None
            if msg["me_rsp"] != kme.me_rsp(net.new_kme, net.nonce):
                self._dl(ue_id, s, "attach_reject", net.attach_reject(6))
                return
            s.bind_to_new = net.new_kme
            self._auth(ue_id, s, B.BOUND_TO_NEW, net.new_kme)
        elif msg.name == "attach_complete":
            s.state = "done"


def _imeisv14(value: Any) -> str:
    digits = f"{value[0] >> 4:x}" + "".join(f"{b & 0xF:x}{b >> 4:x}" for b in value[1:])
    return digits.rstrip("f")[:14]


@contextlib.asynccontextmanager
async def serve(sub: Subscriber, log: list[str], **kw: Any) -> Any:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FakeCnn(sub, log, **kw), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
