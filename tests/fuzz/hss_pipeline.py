"""The HSS's request path without sockets, as ``kmed hss`` runs it: octets into the sans-I/O
Diameter peer (opened by a CER from the allowed MME), requests to the S6a handlers over a real
SQLite store, their writes committed before the answer is encoded, every answer decoded again.

Used by the fuzz tests and the atheris harness (tools/fuzz/fuzz_hss.py).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmed.crypto import ecies
from kmed.diameter import codec
from kmed.diameter import dictionary as d
from kmed.diameter.message import Message
from kmed.diameter.node import LocalNode
from kmed.diameter.peer import DeliverRequest, Peer, Role, Send
from kmed.hss.s6a import S6aHandlers
from kmed.hss.sqlite_store import SqliteStore

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
AMF = b"\x80\x00"
MME = "mme.localdomain"
REALM = "localdomain"
PLMN = bytes.fromhex("00f110")

#: Subscribers, devices and pairs of the fuzzed HSS (docs/hss.md step 0).
IMSI_A = "001010000000001"  # allowed with IMEI_A (profile A)
IMSI_B = "001010000000002"  # allowed with IMEI_B (profile B)
IMEI_A = "356938035643809"
IMEI_B = "356938035643817"
IMEI_NO_DEVICE = "356938035643825"  # valid Luhn, no key registered
SUBSCRIBERS = (IMSI_A, IMSI_B)
DEVICES = {IMEI_A: "A", IMEI_B: "B"}
PAIRS = {(IMSI_A, IMEI_A), (IMSI_B, IMEI_B)}


@dataclass
class Issued:
    """A KME this HSS issued (an AIA of seed step 4), for ULRs to send back."""

    imsi: str
    imei: str
    kme: bytes
    token: bytes


@dataclass
class HssUnderTest:
    """Store, handlers and an opened responder peer. ``serve(octets)`` returns the answers."""

    root: Path
    store: SqliteStore = field(init=False)
    handlers: S6aHandlers = field(init=False)
    peer: Peer = field(init=False)
    token_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    private_keys: dict[str, bytes] = field(default_factory=dict)
    issued: list[Issued] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self.store = SqliteStore(self.root / "hss.sqlite", synchronous="normal")
        for imsi in SUBSCRIBERS:
            self.store.add_subscriber(imsi, K, OPC, AMF, 0)
        for imei, profile in DEVICES.items():
            private, public = ecies.generate_keypair(profile)
            self.private_keys[imei] = private
            self.store.add_device(imei, profile, public)
        for imsi, imei in PAIRS:
            self.store.allow_pair(imsi, imei)
        self.handlers = S6aHandlers(self.store, self.token_key, "hss.localdomain", REALM)
        self.new_peer()

    def new_peer(self) -> None:
        """A fresh connection from the MME, through the capabilities exchange."""
        node = LocalNode("hss.localdomain", REALM, host_ip_addresses=("127.0.0.1",))
        self.peer = Peer(node, Role.RESPONDER, allowed_peers=(MME,))
        self.peer.start(0.0)
        cer = Message.request("CER", d.APP_COMMON, [
            ("Origin-Host", MME), ("Origin-Realm", REALM), ("Host-IP-Address", "127.0.0.1"),
            ("Vendor-Id", d.VENDOR_3GPP), ("Product-Name", "fuzz"),
            ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)]),
        ], hop_by_hop=1, end_to_end=1)
        self.peer.data_received(codec.encode(cer), 0.0)
        assert self.peer.is_open

    def serve(self, octets: bytes) -> list[Message]:
        """Feed ``octets``; answer every request as the daemon does; the answers, decoded.
        A peer closed by bad input is replaced (the next connection)."""
        answers: list[Message] = []
        for action in self.peer.data_received(octets, 1.0):
            if isinstance(action, DeliverRequest):
                self.requests += 1
                out = self.handlers.handle(action.message, MME)
                answer = out.answer
                if out.writes:
                    applied = self.store.apply(out.writes)
                    if out.refused is not None and not all(applied):
                        answer = out.refused
                if out.reserved is not None:
                    self.handlers.ledger.settle(out.reserved)
                for sent in self.peer.send_answer(answer):
                    assert isinstance(sent, Send)
                    answers.append(codec.decode(sent.data))
            elif isinstance(action, Send):
                answers.append(codec.decode(action.data))
        if not self.peer.is_open:
            self.new_peer()
        return answers

    def kme_held(self, imsi: str) -> Any:
        sub = self.store.subscriber(imsi, True)
        return sub.kme if sub is not None else None

    def close(self) -> None:
        self.store.close()


def open_hss() -> HssUnderTest:
    """An HSS in a new temporary directory (``close_hss`` removes it)."""
    return HssUnderTest(Path(tempfile.mkdtemp(prefix="kmed-fuzz-hss-")))


def close_hss(hss: HssUnderTest) -> None:
    hss.close()
    shutil.rmtree(hss.root, ignore_errors=True)
